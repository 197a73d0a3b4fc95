"""The detector core on PyTorch (``backend: {type: torch}``, and ``tensorrt`` with the engine as
the network): the whole batch on the GPU.

Same contract as :class:`~.core.FrameDetector` (frames in, one ``Detections`` or ``FrameError``
per frame out), but the JPEGs are decoded by nvJPEG on the device and letterbox, network (FP16,
CUDA graphs) and NMS run there too (:class:`~.gpu.GpuDetector`). The torch network runs Darknet
models (the bundled YOLOv3-tiny, or a cfg + weights pair); a TensorRT engine
(:func:`tensorrt_frame_detector`) runs ONNX models in its place.

Bad frames are caught before the GPU sees them: the JPEG header is read on the CPU (size checked
against the frame's metadata, pixel bound); if nvJPEG still fails on a batch, frames are decoded
one by one so only the broken ones become errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simplejpeg

from vsa.schemas import Detections

from .backends.config import TorchConfig
from .core import FrameInput, to_message
from .darknet import parse_network, read_weights
from .jpeg import FrameError, jpeg_complete
from .postprocess import SelectionParams

if TYPE_CHECKING:
    from .backends.tensorrt_backend import TensorRTEngine


class TorchFrameDetector:
    """Runs a Darknet model with :class:`~.gpu.GpuDetector` over batches of JPEG frames."""

    def __init__(
        self,
        detector: Any,
        class_names: Sequence[str],
        model_id: str,
        input_size: tuple[int, int],
        max_frame_pixels: int | None = None,
    ) -> None:
        self.detector = detector
        self._class_names = tuple(class_names)
        self.model_id = model_id
        self.input_size = input_size
        self.max_frame_pixels = max_frame_pixels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    def check(self, frame: FrameInput) -> None:
        """Header checks on the CPU: a JPEG, the size its metadata says, not too many pixels."""
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(frame.jpeg)
        except ValueError as exc:
            raise FrameError(f"corrupt JPEG: {exc}") from exc
        if not jpeg_complete(frame.jpeg):
            raise FrameError("corrupt JPEG: truncated (no end-of-image marker after the scan)")
        if (width, height) != (frame.meta.width, frame.meta.height):
            raise FrameError(
                f"frame of unexpected size: JPEG is {width}x{height}, metadata says "
                f"{frame.meta.width}x{frame.meta.height}"
            )
        if self.max_frame_pixels is not None and width * height > self.max_frame_pixels:
            raise FrameError(f"frame of {width}x{height} exceeds {self.max_frame_pixels} pixels")

    def detect(self, frames: Sequence[FrameInput]) -> list[Detections | FrameError]:
        """One result per frame, in order."""
        results: list[Detections | FrameError | None] = [None] * len(frames)
        good: list[int] = []
        for index, frame in enumerate(frames):
            try:
                self.check(frame)
                good.append(index)
            except FrameError as exc:
                results[index] = exc
        started = time.perf_counter()
        images = self._decode([frames[i] for i in good], good, results)
        decoded = time.perf_counter()
        kept = [i for i in good if results[i] is None]
        found = self.detector.detect_images(images) if images else []
        share = {
            "decode": (decoded - started) * 1000 / max(len(kept), 1),
            "detect": (time.perf_counter() - decoded) * 1000 / max(len(kept), 1),
        }
        for index, arrays in zip(kept, found, strict=True):
            frame = frames[index]
            results[index] = to_message(
                frame.meta, frame.ref, arrays, self._class_names, self.model_id, share
            )
        return [r if r is not None else FrameError("not processed") for r in results]

    def _decode(
        self,
        frames: Sequence[FrameInput],
        slots: Sequence[int],
        results: list[Detections | FrameError | None],
    ) -> list[Any]:
        """nvJPEG the batch; on failure one by one, marking frames that do not decode."""
        if not frames:
            return []
        try:
            return list(self.detector.decode([f.jpeg for f in frames]))
        except RuntimeError:
            images = []
            for frame, slot in zip(frames, slots, strict=True):
                try:
                    images.extend(self.detector.decode([frame.jpeg]))
                except RuntimeError as exc:
                    results[slot] = FrameError(f"corrupt JPEG (nvJPEG): {exc}")
            return images


def load_torch_detector(
    cfg: Path,
    weights: Path,
    class_names: Sequence[str],
    model_id: str,
    input_size: tuple[int, int],
    params: SelectionParams,
    config: TorchConfig,
    max_frame_pixels: int | None,
) -> TorchFrameDetector:
    """Build the torch network from Darknet files and wrap it; imports torch only here."""
    from .gpu import DarknetTorch, GpuDetector

    network = parse_network(cfg.read_text(), str(cfg), input_size)
    model = DarknetTorch(network, read_weights(weights.read_bytes(), network, str(weights)))
    on_cuda = config.device.startswith("cuda")
    detector = GpuDetector(
        model.eval(),
        input_size,
        params,
        device=config.device,
        half=config.half and on_cuda,
        cuda_graphs=on_cuda,
    )
    return TorchFrameDetector(detector, class_names, model_id, input_size, max_frame_pixels)


def tensorrt_frame_detector(
    engine: TensorRTEngine,
    params: SelectionParams,
    model_id: str,
    max_frame_pixels: int | None,
) -> TorchFrameDetector:
    """The GPU path with a TensorRT engine as its network: nvJPEG decode, letterbox and NMS as
    for torch, the forward pass by the engine (float32 in and out; FP16/INT8 inside it, so no
    ``half`` here, and no CUDA graphs: the engine runs on its own stream)."""
    from .backends.tensorrt_backend import TensorRTNetwork
    from .gpu import GpuDetector

    detector = GpuDetector(
        TensorRTNetwork(engine),
        engine.input_size,
        params,
        device=str(engine.device),
        half=False,
        cuda_graphs=False,
    )
    return TorchFrameDetector(
        detector, engine.model.class_names, model_id, engine.input_size, max_frame_pixels
    )
