"""The web console (``vsa console``): search with thumbnails, live alerts and cameras, as plain
HTML, JavaScript and CSS in ``static/`` (package data; nothing is fetched from the internet),
served by the HTTP API's own process (:mod:`vsa.services.api`) at ``/``, next to the API it
calls with relative URLs.

- ``static/index.html``: search (query, filters, thumbnails, the full frame with boxes, more like
  this);
- ``static/alerts.html``: the alert history, then live alerts over server-sent events;
- ``static/cameras.html``: every camera's state, rates and last alert;
- ``cli``: the ``vsa console`` command.
"""
