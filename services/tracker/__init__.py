"""tracker: multi-object tracking, alert rules and keyframe decisions per camera.

The pure parts (no Kafka, no Faust):

- ``core/``: the ByteTrack-class tracker: ``step(state, detections, capture_ts, frame_seq,
  config) -> (state, outputs)`` on columnar arrays, a batched Kalman filter, per-camera
  :class:`~vsa.services.tracker.core.TrackerState` that encodes to bytes exactly;
- ``rules/``: zone intrusion, line crossing, loitering and crowding with cooldowns and
  deterministic alert ids; camera configs checked against the detector's classes;
- ``keyframes.py``: which frames the captioner should describe, and why;
- ``camera.py``: one camera's whole state (:class:`~vsa.services.tracker.camera.CameraState`,
  the value of the tracker's Faust table) and ``process()``: a ``Detections`` message in, the
  ``Tracks`` message, alerts and keyframe out (``outputs.py`` builds their JSON directly);
- ``handler.py``: a batch of detections records → outputs, dead letters and state writes;
  ``offsets.py``: the guard against records the stream skipped;
- ``replay.py`` and ``cli.py``: ``vsa track FILE.jsonl`` replays detections offline;
- ``golden.py``: the golden-file tests' replay, check and ``--update``.

The service (``vsa tracker``): ``config.py`` (``TrackerSettings``, ``VSA_TRACKER_*``),
``service.py`` (the Faust app: agent, state table, produce-then-write ordering, metrics),
``rulebook.py`` (rules from the YAML file and the camera-config topic), ``metrics.py``.
"""
