"""Appearance embeddings of object crops (MobileNetV2, ImageNet features) for the tracker's
re-attachment after occlusion and the objects index's image-to-image search.

- :mod:`.settings`: :class:`~.settings.AppearanceSettings` and the vector size (light to import);
- :mod:`.embedder`: crops, the ONNX Runtime and torch backends, the embedder's factory;
- :mod:`.network`: MobileNetV2 read from the weights (layer plan, ONNX graph, torch executor).
"""
