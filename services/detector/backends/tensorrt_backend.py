"""TensorRT backend: an engine built from the ONNX model, cached on disk, run on torch tensors.

Building (the first start for a given model, GPU, TensorRT version, precision and batch
profile; minutes): TensorRT's ONNX parser fills an explicit-batch network (the only kind in
TensorRT 10), the builder config allows FP16 kernels (and INT8 ones, with scales from an entropy
calibrator fed letterboxed frames), one optimisation profile covers batches 1..``max_batch``
tuned for ``opt_batch``, and the serialised engine is written to the cache under its key (see
:mod:`.tensorrt_plan`). Later starts deserialise that file; a file that does not deserialise
(truncated, or written by another TensorRT build) is rebuilt, with a log line.

Running: input and output buffers are torch CUDA tensors. The execution context gets their
shapes and addresses and runs with ``execute_async_v3`` on a CUDA stream of its own that first
waits for the caller's stream, which then waits for it: no host synchronisation until the
caller reads the result.

TensorRT 10 API choices: FP16 and INT8 are asked for with ``BuilderFlag`` ("weak typing",
deprecated since 10.12) and INT8 scales come from ``IInt8EntropyCalibrator2`` (implicit
quantisation, deprecated since 10.1 in favour of models with Q/DQ nodes). Both work throughout
10.x and are gone in 11, hence the pin to 10: the calibrated path needs nothing but FP32 ONNX
and frames, where explicit quantisation would need a Q/DQ model TensorRT accepts (int8, zero
point 0), which the project's ONNX Runtime INT8 model (uint8, asymmetric) is not.

Not run anywhere yet: neither the dev machine nor the team's GPU machine has TensorRT.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsa.runtime.logs import event

from ..gpu import darknet_rows
from ..layout import ModelInfo
from ..preprocess import PAD_VALUE
from .base import F32, BackendError, check_batch
from .config import TensorRTConfig
from .tensorrt_plan import (
    CALIBRATION_BATCH,
    BatchProfile,
    CalibrationFeed,
    GpuInfo,
    batch_pieces,
    batch_profile,
    calibration_cache_file,
    calibration_source,
    cuda_device,
    engine_cache_dir,
    engine_file,
    engine_key,
    file_sha256,
    import_tensorrt,
    load_calibration_frames,
    plan_onnx,
    read_calibration_cache,
    write_atomically,
)

log = logging.getLogger("vsa.detector.tensorrt")


@functools.cache
def _logger(trt: Any) -> Any:
    # One logger for every builder and runtime: TensorRT keeps the first one it is given.
    return trt.Logger(trt.Logger.WARNING)


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    try:
        return torch.from_numpy(np.empty(0, trt.nptype(dtype))).dtype
    except (TypeError, KeyError, ValueError) as exc:
        raise BackendError(f"TensorRT tensor type {dtype} has no torch equivalent") from exc


class TensorRTEngine:
    """A TensorRT engine for one detection ONNX model on one CUDA device.

    Args:
        path: The ONNX model (``darknet`` or ``ultralytics`` layout, float32).
        config: Precision, batch profile, caches.
        max_batch: Most images per engine call (the profile's max); larger inputs to
            :meth:`run` are cut into calls of at most this many.

    Attributes:
        model: Layout, input size, class names.
        profile: The batch sizes the engine takes.
        device: Its CUDA device.
        engine_path: The cache file it was loaded from or written to.
        from_cache: Whether it was loaded from ``engine_path`` rather than built.
        ready_s: Seconds it took to load or build.

    Raises:
        BackendError: tensorrt does not import, no CUDA device, the model is unusable, or
            TensorRT cannot build it.
    """

    def __init__(self, path: Path, config: TensorRTConfig, max_batch: int) -> None:
        self._trt = import_tensorrt()
        self.device = torch.device(cuda_device(config.device_id))
        self._plan = plan_onnx(path)
        try:
            self.profile = batch_profile(self._plan.fixed_batch, config.opt_batch, max_batch)
        except ValueError as exc:
            raise BackendError(f"{path}: {exc}") from exc
        self.model: ModelInfo = self._plan.model
        started = time.perf_counter()
        with torch.cuda.device(self.device):
            self._runtime = self._trt.Runtime(_logger(self._trt))
            self._engine, self.engine_path, self.from_cache = self._load_or_build(path, config)
            self._context = self._engine.create_execution_context()
        self.ready_s = time.perf_counter() - started
        self._check_io(path)
        self._dtypes = {
            name: _torch_dtype(self._trt, self._engine.get_tensor_dtype(name))
            for name in (self._plan.input_name, *self._plan.output_names)
        }
        self._stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        return self.model.input_size

    def _load_or_build(self, path: Path, config: TensorRTConfig) -> tuple[Any, Path, bool]:
        onnx_sha256 = file_sha256(path)
        cache_dir = engine_cache_dir(config)
        properties = torch.cuda.get_device_properties(self.device)
        gpu = GpuInfo(properties.name, (properties.major, properties.minor))
        key = engine_key(
            onnx_sha256,
            gpu,
            str(self._trt.__version__),
            config.precision,
            self.profile,
            self.input_size,
            calibration_source(config),
        )
        file = engine_file(cache_dir, path, config.precision, key)
        if file.is_file():
            engine, problem = self._deserialize(file.read_bytes())
            if engine is not None:
                event(log, "tensorrt_engine_loaded", model=str(path), engine=str(file))
                return engine, file, True
            event(
                log,
                "tensorrt_engine_rebuild",
                logging.WARNING,
                engine=str(file),
                reason=f"cached engine does not deserialise: {problem}",
            )
        calibration = calibration_cache_file(config, cache_dir, onnx_sha256)
        serialized = self._build(path, config, calibration)
        try:
            write_atomically(file, serialized)
        except OSError as exc:  # a read-only cache costs a rebuild at each start, not the start
            event(
                log, "tensorrt_engine_not_cached", logging.WARNING, engine=str(file), error=str(exc)
            )
        engine, problem = self._deserialize(serialized)
        if engine is None:
            raise BackendError(f"{path}: TensorRT built an engine it cannot load: {problem}")
        return engine, file, False

    def _deserialize(self, data: bytes) -> tuple[Any | None, str]:
        """The engine, or None and why (TensorRT returns None, or raises in some versions)."""
        try:
            engine = self._runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # pybind11 raises TensorRT's errors as plain exceptions
            return None, str(exc)
        return engine, "" if engine is not None else "see TensorRT's log above"

    def _build(self, path: Path, config: TensorRTConfig, calibration: Path) -> bytes:
        trt = self._trt
        builder = trt.Builder(_logger(trt))
        network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
        parser = trt.OnnxParser(network, _logger(trt))  # owns the weights: kept until built
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"{path}: TensorRT's ONNX parser refused the model: {errors}")
        build_config = builder.create_builder_config()
        build_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
        build_config.set_flag(trt.BuilderFlag.FP16)
        build_config.add_optimization_profile(self._profile(builder, self.profile))
        calibrator = None
        if config.precision == "int8":
            size = self._plan.fixed_batch or CALIBRATION_BATCH
            calibrator = _calibrator(trt, config, self.input_size, size, calibration, self.device)
            build_config.set_flag(trt.BuilderFlag.INT8)
            build_config.int8_calibrator = calibrator
            build_config.set_calibration_profile(
                self._profile(builder, BatchProfile(size, size, size))
            )
        event(log, "tensorrt_engine_building", model=str(path), precision=config.precision)
        started = time.perf_counter()
        serialized = builder.build_serialized_network(network, build_config)
        if calibrator is not None and calibrator.error is not None:
            raise calibrator.error
        if serialized is None:
            raise BackendError(f"{path}: TensorRT could not build an engine (see its log above)")
        event(log, "tensorrt_engine_built", model=str(path), seconds=time.perf_counter() - started)
        return bytes(memoryview(serialized))

    def _profile(self, builder: Any, profile: BatchProfile) -> Any:
        shapes = builder.create_optimization_profile()
        shapes.set_shape(self._plan.input_name, *profile.shapes(self.input_size))
        return shapes

    def _check_io(self, path: Path) -> None:
        engine = self._engine
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        expected = {self._plan.input_name, *self._plan.output_names}
        if names != expected:
            raise BackendError(
                f"{path}: the engine's tensors {sorted(names)} are not the model's inputs and "
                f"outputs {sorted(expected)}"
            )

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor) -> torch.Tensor:
        """The first output (float32, on this device) for ``pixels`` ``[N, 3, H, W]``, RGB 0..1,
        on any device; more than ``profile.max_batch`` images take several engine calls."""
        with torch.cuda.device(self.device):
            pixels = pixels.to(self.device, self._dtypes[self._plan.input_name]).contiguous()
            outputs = [
                self._execute(pixels[start:stop], size)
                for start, stop, size in batch_pieces(pixels.shape[0], self.profile)
            ]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _execute(self, batch: torch.Tensor, run_size: int) -> torch.Tensor:
        count = batch.shape[0]
        if run_size > count:  # a fixed-batch engine: pad with letterbox grey
            padding = batch.new_full((run_size - count, *batch.shape[1:]), PAD_VALUE / 255)
            batch = torch.cat([batch, padding])
        context, input_name = self._context, self._plan.input_name
        if not context.set_input_shape(input_name, tuple(batch.shape)):
            raise RuntimeError(f"TensorRT refused input shape {tuple(batch.shape)}")
        context.set_tensor_address(input_name, batch.data_ptr())
        outputs = {}
        for name in self._plan.output_names:
            shape = tuple(context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
            context.set_tensor_address(name, outputs[name].data_ptr())
        # Buffers come from the caller's stream; it waits for ours before it reuses them.
        caller = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(caller)
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log)")
        caller.wait_stream(self._stream)
        return outputs[self._plan.output_names[0]][:count].float()


def _calibrator(
    trt: Any,
    config: TensorRTConfig,
    net_size: tuple[int, int],
    batch_size: int,
    cache: Path,
    device: torch.device,
) -> Any:
    """An entropy calibrator reading ``cache`` when it exists, else fed letterboxed frames."""
    feed = CalibrationFeed(
        lambda: load_calibration_frames(config.calibration_frames), net_size, batch_size
    )

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.error: BackendError | None = None  # raised after the build: TensorRT eats it
            self._on_device: torch.Tensor | None = None  # alive until the next batch

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = feed.next_batch()
            except BackendError as exc:
                self.error = exc
                return None
            if batch is None:
                return None
            self._on_device = torch.from_numpy(batch).to(device)
            torch.cuda.synchronize(device)  # TensorRT reads it on a stream of its own
            return [int(self._on_device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return read_calibration_cache(cache)

        def write_calibration_cache(self, data: Any) -> None:
            try:
                write_atomically(cache, bytes(memoryview(data)))
            except OSError as exc:
                event(log, "calibration_cache_not_written", logging.WARNING, error=str(exc))
                return
            event(log, "calibration_cache_written", path=str(cache))

    return EntropyCalibrator()


class TensorRTBackend:
    """:class:`~.base.DetectorBackend` over a :class:`TensorRTEngine`: numpy in and out, for
    the CPU letterbox and postprocessing of :class:`~..core.FrameDetector` (``vsa detect``).
    The service runs :attr:`engine` inside the GPU path instead (:class:`TensorRTNetwork`)."""

    def __init__(self, path: Path, config: TensorRTConfig, max_batch: int) -> None:
        self.engine = TensorRTEngine(path, config, max_batch)

    @property
    def name(self) -> str:
        return "tensorrt"

    @property
    def model(self) -> ModelInfo:
        return self.engine.model

    @property
    def input_size(self) -> tuple[int, int]:
        return self.engine.input_size

    def infer(self, batch: F32) -> F32:
        """Raw model output for ``batch`` ``(n, 3, H, W)`` float32 RGB 0..1."""
        check_batch(batch, self.input_size, self.model.path)
        output = self.engine.run(torch.from_numpy(np.ascontiguousarray(batch)))
        return np.asarray(output.cpu().numpy(), np.float32)

    def warmup(self) -> None:
        """One inference on a grey batch of the profile's smallest size."""
        height, width = self.input_size
        self.infer(np.full((self.engine.profile.min_batch, 3, height, width), 0.5, np.float32))


class TensorRTNetwork(nn.Module):
    """The engine as the network of :class:`~..gpu.GpuDetector`: letterboxed pixels in,
    ``darknet`` rows out (Ultralytics outputs rearranged by :func:`~..gpu.darknet_rows`)."""

    def __init__(self, engine: TensorRTEngine) -> None:
        super().__init__()
        self.engine = engine

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return darknet_rows(self.engine.run(pixels), self.engine.model.layout)
