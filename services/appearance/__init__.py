"""Appearance embeddings of object crops (MobileNetV2, ImageNet features) for the tracker's
re-attachment after occlusion and the object index's image-to-image search."""

from .embedder import (
    AppearanceEmbedder,
    AppearanceError,
    AppearanceSettings,
    appearance_onnx,
    build_appearance_embedder,
    crops,
)
from .network import EMBEDDING_DIMS

__all__ = [
    "EMBEDDING_DIMS",
    "AppearanceEmbedder",
    "AppearanceError",
    "AppearanceSettings",
    "appearance_onnx",
    "build_appearance_embedder",
    "crops",
]
