"""captioner: describes sampled keyframes.

- ``describe`` / ``scene``: the default scene describer (pure: counts, colours measured on the
  objects' pixels, motion, position, zones, alerts, time of day);
- ``backends``: the backend interface, the scene captioner and BLIP from a local folder;
- ``frames``: reading keyframe JPEGs back from the frames topic, scaled decoding, thumbnails;
- ``ratelimit``: per-camera caption budget; ``service``: the Kafka runner; ``cli``: commands.
"""
