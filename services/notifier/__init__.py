"""notifier: forwards alerts to people's systems, a webhook (HTTP POST of the alert's JSON) and
MQTT (the convention of NVR users: Frigate, Home Assistant, Node-RED).

- ``core``: pure: retry schedule, what an HTTP status means, the delivery loop over an injected
  send and wait, MQTT topic names, the camera/kind filter;
- ``webhook`` / ``mqtt``: the two sinks (one attempt each; the core retries);
- ``config``: ``NotifierSettings`` (``VSA_NOTIFIER_*``); ``service``: the runner on the shared
  batch loop (an alert that no retry delivers goes to ``dlq.notifier``); ``cli``: ``vsa notifier``.
"""
