"""The HTTP API (``vsa search-api``): FastAPI + uvicorn, OpenAPI at /docs and /openapi.json.

- ``settings``: ``ApiSettings`` (``VSA_API_``: credentials, the Kafka side);
- ``params``: URL parameters into validated queries (pure);
- ``models``: request and response bodies (topic models reused);
- ``live``: the live alert stream (alerts topic → server-sent events, no consumer group);
- ``cameras``: camera-config plus rates and counts per camera;
- ``frames``: a frame by its reference, optionally with its tracked boxes drawn;
- ``auth``, ``metrics``, ``routes``, ``app``: the FastAPI app; ``server``, ``service``: serving it.
"""
