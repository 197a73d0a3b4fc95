"""The PyTorch path: a Darknet network as a torch module, and a whole-batch GPU detector.

:class:`GpuDetector` keeps a batch on the GPU from JPEG bytes to boxes: nvJPEG decodes the
JPEGs (torchvision's ``decode_jpeg(device="cuda")``, one batched call), the letterbox resizes and
pads on the GPU, the network runs in FP16 (channels-last, optionally replayed from a CUDA graph
per batch size), and the threshold, class-aware NMS and the mapping back to image pixels run on
the GPU too. Only the final boxes cross back to the host.

The module imports torch at import time; the rest of the detector never imports it, so CPU-only
installs work without torch being usable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

from .darknet import (
    LEAKY_ALPHA,
    Conv,
    ConvParams,
    DarknetNetwork,
    MaxPool,
    Route,
    Upsample,
    Yolo,
)
from .layout import ULTRALYTICS_BOX, ULTRALYTICS_FIRST_CLASS, OutputLayout
from .postprocess import SelectionParams
from .preprocess import PAD_VALUE
from .records import DetectionArrays


class _Head(nn.Module):
    """Decodes one YOLO head ``[N, A*(5+C), H, W]`` into ``[N, H*W*A, 5+C]`` (darknet layout)."""

    def __init__(self, head: Yolo, grid_h: int, grid_w: int, net_h: int, net_w: int) -> None:
        super().__init__()
        self.anchors_n, self.cell = len(head.anchors), 5 + head.classes
        self.grid_h, self.grid_w = grid_h, grid_w
        self.scale = head.scale_x_y
        gy, gx = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
        self.grid: torch.Tensor
        self.stride: torch.Tensor
        self.anchors: torch.Tensor
        self.register_buffer("grid", torch.stack([gx, gy], -1)[:, :, None, :].float())
        self.register_buffer("stride", torch.tensor([net_w / grid_w, net_h / grid_h]))
        self.register_buffer("anchors", torch.tensor(head.anchors, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, self.anchors_n, self.cell, self.grid_h, self.grid_w)
        x = x.permute(0, 3, 4, 1, 2)  # N, H, W, A, 5+C
        offset = torch.sigmoid(x[..., 0:2])
        if self.scale != 1.0:
            offset = offset * self.scale - (self.scale - 1) / 2
        centre = (offset + self.grid) * self.stride
        size = torch.exp(x[..., 2:4]) * self.anchors
        scores = torch.sigmoid(x[..., 4:])
        out = torch.cat([centre, size, scores], -1)
        return out.reshape(x.shape[0], -1, self.cell)


class DarknetTorch(nn.Module):
    """A parsed Darknet network (see :mod:`.darknet`) as a torch module.

    Input ``[N, 3, H, W]`` RGB 0..1 at the network size; output ``[N, boxes, 5 + classes]`` in
    the same darknet layout and row order as the converted ONNX model.
    """

    def __init__(self, network: DarknetNetwork, params: dict[int, ConvParams]) -> None:
        super().__init__()
        self.network = network
        self.layers = nn.ModuleList(
            self._build(i, layer, params) for i, layer in enumerate(network.layers)
        )

    def _build(self, index: int, layer: object, params: dict[int, ConvParams]) -> nn.Module:
        if isinstance(layer, Conv):
            conv = nn.Conv2d(
                params[index].weight.shape[1] * layer.groups,
                layer.filters,
                layer.size,
                layer.stride,
                layer.padding,
                groups=layer.groups,
                bias=True,
            )
            conv.weight.data = torch.from_numpy(params[index].weight.copy())
            conv.bias.data = torch.from_numpy(params[index].bias.copy())  # type: ignore[union-attr]
            activations = {
                "leaky": nn.LeakyReLU(LEAKY_ALPHA),
                "relu": nn.ReLU(),
                "logistic": nn.Sigmoid(),
                "linear": nn.Identity(),
            }
            return nn.Sequential(conv, activations[layer.activation])
        if isinstance(layer, Yolo):
            grid = self.network.shapes[index - 1]
            net = self.network.input_shape
            return _Head(layer, grid.height, grid.width, net.height, net.width)
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        heads: list[torch.Tensor] = []
        for layer, module in zip(self.network.layers, self.layers, strict=True):
            if isinstance(layer, MaxPool):
                before = layer.padding // 2
                x = F.pad(x, (before, layer.padding - before) * 2, value=-math.inf)
                x = F.max_pool2d(x, layer.size, layer.stride)
            elif isinstance(layer, Route):
                x = self._route(layer, outputs)
            elif isinstance(layer, Upsample):
                x = F.interpolate(x, scale_factor=layer.stride, mode="nearest")
            elif isinstance(layer, Yolo):
                heads.append(module(x))
            else:
                x = module(x)
            outputs.append(x)
        return torch.cat(heads, 1)

    def _route(self, layer: Route, outputs: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for index in layer.layers:
            part = outputs[index]
            if layer.groups > 1:
                width = part.shape[1] // layer.groups
                part = part[:, width * layer.group_id : width * (layer.group_id + 1)]
            parts.append(part)
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


@dataclass(frozen=True)
class GpuLetterbox:
    """A letterboxed batch on the GPU: ``pixels [N,3,H,W]``, per image ``scale (N,2)`` (sx, sy),
    ``pad (N,2)`` (left, top) in pixels and ``size (N,2)`` (width, height) of the original."""

    pixels: torch.Tensor
    scale: torch.Tensor
    pad: torch.Tensor
    size: torch.Tensor


def letterbox_gpu(
    images: Sequence[torch.Tensor], net_size: tuple[int, int], dtype: torch.dtype
) -> GpuLetterbox:
    """Letterbox CHW uint8 images (on one device) into ``[N, 3, H, W]`` of ``dtype``, 0..1.

    Images of equal size are resized together in one call; padding is 114 like the CPU path.
    """
    net_h, net_w = net_size
    device = images[0].device
    pixels = torch.full((len(images), 3, net_h, net_w), PAD_VALUE / 255, dtype=dtype, device=device)
    scale = torch.empty((len(images), 2), dtype=torch.float32)
    pad = torch.empty((len(images), 2), dtype=torch.float32)
    size = torch.empty((len(images), 2), dtype=torch.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault((int(image.shape[1]), int(image.shape[2])), []).append(index)
    for (height, width), members in groups.items():
        ratio = min(net_h / height, net_w / width)
        new_h, new_w = round(height * ratio), round(width * ratio)
        top, left = (net_h - new_h) // 2, (net_w - new_w) // 2
        batch = torch.stack([images[i] for i in members]).to(dtype)
        resized = F.interpolate(batch, size=(new_h, new_w), mode="bilinear", align_corners=False)
        pixels[members, :, top : top + new_h, left : left + new_w] = resized / 255
        scale[members] = torch.tensor([new_w / width, new_h / height])
        pad[members] = torch.tensor([float(left), float(top)])
        size[members] = torch.tensor([float(width), float(height)])
    return GpuLetterbox(pixels, scale.to(device), pad.to(device), size.to(device))


def darknet_rows(output: torch.Tensor, layout: OutputLayout) -> torch.Tensor:
    """A model output as the ``darknet`` rows :func:`select_gpu` reads, ``[N, boxes, 5 + C]``.

    ``darknet`` outputs pass unchanged. ``ultralytics`` ``[N, 4 + C, anchors]`` is transposed
    and given an objectness of 1, so that objectness x class score is its class score.
    """
    if layout == "darknet":
        return output
    rows = output.transpose(1, 2)
    objectness = rows.new_ones((*rows.shape[:2], 1))
    return torch.cat(
        [rows[..., ULTRALYTICS_BOX], objectness, rows[..., ULTRALYTICS_FIRST_CLASS:]], -1
    )


def select_gpu(
    output: torch.Tensor, boxes_to: GpuLetterbox, params: SelectionParams
) -> list[DetectionArrays]:
    """Threshold, class-aware NMS per image and top-k on the GPU; boxes in image pixels."""
    from torchvision.ops import batched_nms

    count, _, cell = output.shape
    scores_all = output[..., 5:].float() * output[..., 4:5].float()
    best, labels = scores_all.max(-1)
    mask = best > params.conf_threshold
    if params.classes is not None:
        allowed = torch.tensor(params.classes, device=output.device)
        mask &= torch.isin(labels, allowed)
    image_ids, anchor_ids = mask.nonzero(as_tuple=True)
    scores = best[image_ids, anchor_ids]
    labels = labels[image_ids, anchor_ids]
    cxcywh = output[image_ids, anchor_ids, :4].float()
    xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
    keep = batched_nms(xyxy, scores, image_ids * (cell - 5) + labels, params.iou_threshold)
    image_ids, xyxy, scores, labels = image_ids[keep], xyxy[keep], scores[keep], labels[keep]
    pad = boxes_to.pad[image_ids].repeat(1, 2)
    scale = boxes_to.scale[image_ids].repeat(1, 2)
    limit = boxes_to.size[image_ids].repeat(1, 2)
    xyxy = torch.minimum(((xyxy - pad) / scale).clamp(min=0), limit)
    return _split(image_ids, xyxy, scores, labels, count, params.max_det)


def _split(
    image_ids: torch.Tensor,
    xyxy: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    max_det: int,
) -> list[DetectionArrays]:
    # batched_nms returns indices sorted by score, so the first max_det of each image are its best.
    ids = image_ids.cpu().numpy()
    boxes, conf, cls = xyxy.cpu().numpy(), scores.cpu().numpy(), labels.cpu().numpy()
    out = []
    for image in range(count):
        rows = np.flatnonzero(ids == image)[:max_det]
        out.append(DetectionArrays(boxes[rows], conf[rows], cls[rows]))
    return out


class GpuDetector:
    """JPEG bytes in, detections out, the whole batch on one CUDA device.

    Args:
        model: The network (e.g. :class:`DarknetTorch`), darknet output layout.
        net_size: ``(H, W)`` network input in pixels.
        params: Thresholds and limits.
        half: FP16 weights and activations (tensor cores); False keeps FP32.
        cuda_graphs: Replay the network from a CUDA graph captured once per batch size: removes
            the per-layer launch overhead that dominates small batches.
    """

    def __init__(
        self,
        model: nn.Module,
        net_size: tuple[int, int],
        params: SelectionParams,
        device: str = "cuda",
        half: bool = True,
        cuda_graphs: bool = True,
    ) -> None:
        self.dtype = torch.float16 if half else torch.float32
        self.device = torch.device(device)
        self.model = model.to(self.device, self.dtype).eval()
        self.model = self.model.to(memory_format=torch.channels_last)
        self.net_size = net_size
        self.params = params
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def decode(self, jpegs: Sequence[bytes]) -> list[torch.Tensor]:
        """nvJPEG-decode a batch into CHW uint8 RGB tensors on the device (one batched call)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        return list(images)

    @torch.inference_mode()
    def infer(self, pixels: torch.Tensor) -> torch.Tensor:
        """Run the network on a letterboxed batch (graph replay when enabled)."""
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        if not self.cuda_graphs:
            return self.model(pixels)  # type: ignore[no-any-return]
        n = pixels.shape[0]
        if n not in self._graphs:
            self._graphs[n] = self._capture(pixels)
        graph, static_in, static_out = self._graphs[n]
        static_in.copy_(pixels)
        graph.replay()
        return static_out

    def _capture(
        self, sample: torch.Tensor
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = sample.clone()
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up outside the graph (cudnn picks its algorithms)
                self.model(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out

    @torch.inference_mode()
    def detect_images(self, images: Sequence[torch.Tensor]) -> list[DetectionArrays]:
        """Detections for decoded CHW uint8 images already on the device."""
        batch = letterbox_gpu(images, self.net_size, self.dtype)
        return select_gpu(self.infer(batch.pixels), batch, self.params)

    def detect_jpegs(self, jpegs: Sequence[bytes]) -> list[DetectionArrays]:
        """Detections for a batch of JPEGs, boxes in each image's own pixels."""
        return self.detect_images(self.decode(jpegs))

    def _decode_on_side_stream(
        self, jpegs: Sequence[bytes], stream: torch.cuda.Stream
    ) -> tuple[list[torch.Tensor], torch.cuda.Event]:
        with torch.cuda.stream(stream):
            images = self.decode(jpegs)
            done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            done.record(stream)
        return images, done

    def detect_many(self, batches: Iterable[Sequence[bytes]]) -> Iterator[list[DetectionArrays]]:
        """Like :meth:`detect_jpegs` over a stream of batches, decoding batch i+1 (nvJPEG, on a
        second CUDA stream, in a helper thread) while batch i runs through the network.

        Decoding is the slowest stage for large JPEGs, so overlapping it with the network and
        NMS raises throughput towards the decoder's own rate. Results come in input order.
        """
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvjpeg") as pool:
            pending: Future[tuple[list[torch.Tensor], torch.cuda.Event]] | None = None
            for jpegs in batches:
                upcoming = pool.submit(self._decode_on_side_stream, jpegs, stream)
                if pending is not None:
                    yield self._finish(pending)
                pending = upcoming
            if pending is not None:
                yield self._finish(pending)

    def _finish(
        self, pending: Future[tuple[list[torch.Tensor], torch.cuda.Event]]
    ) -> list[DetectionArrays]:
        images, done = pending.result()
        current = torch.cuda.current_stream()
        current.wait_event(done)
        for image in images:  # memory made on the side stream is used on this one
            image.record_stream(current)
        return self.detect_images(images)
