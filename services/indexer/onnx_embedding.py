"""int8 sentence embeddings on ONNX Runtime (``embedding.precision: int8``).

The configured sentence-transformers model (a BERT-style transformer, mean pooling, normalisation)
is exported once to ONNX with the pooling and the normalisation inside the graph, its MatMul
weights quantised to int8 per output channel (ONNX Runtime dynamic quantisation: activations are
quantised on the fly per batch), and cached under ``<cache>/models/embedding/<key>/``. The key
hashes the model's weights and configuration and the recipe, so a different model or recipe
builds a new file. On a CPU with AVX512-VNNI this runs ~2.8x faster than fp32 torch; vectors stay
within cosine ~0.99 of fp32 (BENCHMARKS.md, "indexer"). Activations are quantised with one range
per batch, so a text's vector also moves a little with its batch mates (cosine >= 0.98 between
the same caption embedded alone and in a batch): replays rewrite documents with nearly, not
exactly, the same vector.

The weights use 7 bits (``reduce_range``, values in [-64, 64]) for the reason the detector's do
(:mod:`vsa.runtime.int8_cpu`): on x86 CPUs without VNNI ONNX Runtime adds pairs of uint8 x int8
products into a saturating 16-bit integer, which 8-bit weights overflow. Measured on the same 12
texts, native (VNNI) against QEMU's AVX2-only EPYC: 8-bit weights moved vectors by up to cosine
0.010 between the two CPUs, 7-bit weights by 0.0004 (what differs there is float rounding in
the layers that stay float). Against fp32 the 7-bit model keeps cosine ~0.99, as 8 bits did.

Loading needs no torch or transformers (10+ s of imports on a small machine): the tokenizer is
the model's ``tokenizer.json`` run by the ``tokenizers`` library, and the ONNX file is loaded by
ONNX Runtime, so ``vsa search`` answers in about a second (BENCHMARKS.md, "vsa search").

Build it ahead of time (images with a read-only root) with ``vsa indexer --prepare-model``;
otherwise the first start builds it (~10-20 s) and later starts load it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vsa.runtime.logs import event
from vsa.runtime.settings import ConfigError

from .embedder import Vectors, _offline, encode_unique, model_path, ready
from .settings import EmbeddingSettings

log = logging.getLogger("vsa.indexer.embedder")

# Changing how the file is made (export, opset, quantisation options) must change this.
RECIPE: Final = "int8-dynamic-per-channel-7bit-opset17-v2"
INT8_FILE: Final = "model-int8.onnx"
#: Remembers each weights file's key by its size and modification time (hashing ~90 MB of
#: weights costs ~0.3-0.5 s at every start otherwise).
KEYS_FILE: Final = "keys.json"
_HASHED: Final = ("config.json", "modules.json", "1_Pooling/config.json")
_WEIGHTS: Final = ("model.safetensors", "pytorch_model.bin")


def model_key(path: Path) -> str:
    """Hash of the model's weights and configuration files and of :data:`RECIPE`."""
    digest = hashlib.sha256(RECIPE.encode())
    names = [n for n in _HASHED if (path / n).is_file()]
    names += [n for n in _WEIGHTS if (path / n).is_file()][:1]
    if not any(n in names for n in _WEIGHTS):
        raise ConfigError(f"{path} has no model.safetensors or pytorch_model.bin to export")
    for name in names:
        digest.update(name.encode())
        with (path / name).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]


def _weights_stamp(path: Path) -> str:
    """The weights file's absolute path, size and modification time, as one string."""
    weights = next((path / n for n in _WEIGHTS if (path / n).is_file()), path / _WEIGHTS[0])
    stat = weights.stat()
    return f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{RECIPE}"


def remembered_key(path: Path, folder: Path) -> str:
    """:func:`model_key`, read from ``folder/keys.json`` when the weights file has the size and
    modification time it had when hashed; otherwise hashed and written there (best effort: a
    read-only cache only costs the hash)."""
    memo_file = folder / KEYS_FILE
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    stamp = _weights_stamp(path)
    if isinstance(memo, dict) and isinstance(memo.get(stamp), str):
        return str(memo[stamp])
    key = model_key(path)
    memo = {**(memo if isinstance(memo, dict) else {}), stamp: key}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as out:
            json.dump(memo, out)
        os.replace(out.name, memo_file)
    except OSError as exc:
        log.debug("embedding key not remembered in %s: %s", folder, exc)
    return key


def int8_model_path(path: Path, cache_root: Path | None = None) -> Path:
    """Where the int8 ONNX of the model at ``path`` is cached (it may not exist yet)."""
    if cache_root is None:
        from vsa.assets import cache_dir

        cache_root = cache_dir()
    folder = cache_root / "models" / "embedding"
    return folder / remembered_key(path, folder) / INT8_FILE


def check_pooling(path: Path) -> None:
    """The int8 graph computes mean pooling and normalisation: refuse other model layouts."""
    modules = json.loads((path / "modules.json").read_text())
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(
        k not in ("Transformer", "Pooling", "Normalize") for k in kinds
    ):
        raise ConfigError(
            f"embedding.precision int8 supports Transformer+Pooling(+Normalize) models; "
            f"{path / 'modules.json'} lists {kinds}"
        )
    pooling_dir = next(m.get("path", "") for m in modules if str(m.get("type")).endswith("Pooling"))
    pooling = json.loads((path / pooling_dir / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(
            f"embedding.precision int8 supports mean pooling only; "
            f"{path / pooling_dir} uses {modes}"
        )


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder at a time per folder (several indexer processes may start together)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_int8_model(path: Path, cache_root: Path | None = None) -> Path:
    """Return the cached int8 ONNX of the model at ``path``, building it first if needed."""
    check_pooling(path)
    target = int8_model_path(path, cache_root)
    if target.is_file():
        return target
    try:
        with _locked(target.parent):
            if not target.is_file():
                _build(path, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the int8 embedding model to {target.parent} ({exc}); build it where "
            "the cache is writable with `vsa indexer --prepare-model`, or set VSA_CACHE_DIR"
        ) from exc
    return target


def _build(path: Path, target: Path) -> None:
    """Export to ONNX (fp32) in a temporary folder, quantise, move the result into place."""
    started = time.perf_counter()
    event(log, "embedding_int8_building", model=str(path), into=str(target.parent))
    with tempfile.TemporaryDirectory(prefix="export-", dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        export_onnx(path, fp32)
        partial = Path(tmp) / INT8_FILE
        quantize_int8(fp32, partial)
        os.replace(partial, target)
    event(
        log,
        "embedding_int8_built",
        path=str(target),
        mb=round(target.stat().st_size / 1e6, 1),
        build_s=round(time.perf_counter() - started, 1),
    )


def export_onnx(path: Path, out: Path) -> None:
    """The model with mean pooling and normalisation as one fp32 ONNX graph (batch, tokens)."""
    _offline()
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    names = list(tokenizer.model_input_names)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        """The transformer, then mean pooling over real tokens and L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = model

        def forward(self, *inputs: Any) -> Any:
            feeds = dict(zip(names, inputs, strict=True))
            hidden = self.transformer(**feeds).last_hidden_state
            mask = feeds["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    sample = tokenizer(
        ["a person in red near the gate", "a car"], padding=True, return_tensors="pt"
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    # The exporter's warnings are about graph patterns this model does not hit; the result is
    # checked against the fp32 model in tests/unit/test_indexer_embedding.py.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(),
            tuple(sample[name] for name in names),
            str(out),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(fp32: Path, out: Path, reduce_range: bool = True) -> None:
    """int8 weights per output channel: 7 bits (``reduce_range``, the recipe), or 8 (tests)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns on the root logger about pre-processing
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
        )
    finally:
        root.setLevel(level)


#: ONNX input name -> the field of a ``tokenizers`` encoding that feeds it.
ENCODING_FIELDS: Final = {
    "input_ids": "ids",
    "attention_mask": "attention_mask",
    "token_type_ids": "type_ids",
}


def max_seq_length(path: Path) -> int:
    """Tokens a text is truncated to: the model's ``max_seq_length`` (256 when not given)."""
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def load_tokenizer(path: Path, max_length: int) -> Any:
    """The model's fast tokenizer from its ``tokenizer.json``, truncating at ``max_length``
    tokens and padding each batch to its longest text, as sentence-transformers does."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json"
    if not file.is_file():
        raise ConfigError(
            f"embedding.precision int8 needs the model's fast tokenizer {file}; save the "
            "tokenizer with transformers (save_pretrained) into the model folder"
        )
    tokenizer = Tokenizer.from_file(str(file))
    padding = tokenizer.padding or {}
    pad_token = str(padding.get("pad_token") or _special_token(path, "pad_token") or "[PAD]")
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ConfigError(f"{file}: the padding token {pad_token!r} is not in its vocabulary")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(
        pad_id=pad_id, pad_token=pad_token, pad_type_id=int(padding.get("pad_type_id", 0))
    )
    return tokenizer


def _special_token(path: Path, name: str) -> str | None:
    file = path / "special_tokens_map.json"
    if not file.is_file():
        return None
    value = json.loads(file.read_text()).get(name)
    return str(value["content"] if isinstance(value, dict) else value) if value else None


class OnnxEmbedder:
    """The int8 ONNX model on ONNX Runtime's CPU provider; batches sorted by length so a batch
    pads little. Safe to call from several threads. Loads without torch or transformers once
    the int8 file is in the cache."""

    precision = "int8"

    def __init__(self, settings: EmbeddingSettings, cache_root: Path | None = None) -> None:
        if settings.device != "cpu":
            raise ConfigError("embedding.precision int8 runs on the CPU only")
        started = time.perf_counter()
        path = model_path(settings)
        onnx_path = ensure_int8_model(path, cache_root)
        import onnxruntime as ort

        self._tokenizer: Any = load_tokenizer(path, max_seq_length(path))
        options = ort.SessionOptions()
        if settings.threads is not None:
            options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        # Idle ONNX Runtime threads spin by default, taking CPU from the Kafka consumer, the
        # bulk writer and (on small machines) OpenSearch: 400 vs 283 docs/s on 2 cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = [name for name in self._inputs if name not in ENCODING_FIELDS]
        if unknown:
            raise ConfigError(f"{onnx_path}: inputs {unknown} are not tokenizer outputs")
        self._batch_size = settings.batch_size
        self.dims = int(self._session.get_outputs()[0].shape[1])
        ready(self, onnx_path, "cpu", started)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``: (n, 384) float32 rows of unit length; (0, 384) for no texts."""
        return encode_unique(texts, self.dims, self._forward)

    def _forward(self, texts: list[str]) -> NDArray[Any]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in rows])
            feeds = {
                name: np.array([getattr(e, ENCODING_FIELDS[name]) for e in encodings], np.int64)
                for name in self._inputs
            }
            out[rows] = self._session.run(None, feeds)[0]
        return out
