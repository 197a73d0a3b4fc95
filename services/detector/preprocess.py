"""Letterboxing a batch of frames into model input, and mapping boxes back to the frames.

Pure numpy. Each image is scaled by one factor (aspect ratio kept) to fit the network input,
resized bilinearly (half-pixel centres, as OpenCV's INTER_LINEAR), centred, and the border filled
with grey ``PAD_VALUE``. The batch records each image's scale and offset so that
:func:`boxes_to_image` inverts :func:`boxes_to_network` exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from .records import DetectionArrays

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

#: Grey of the letterbox border, in 0..255 units (the value Ultralytics models are trained with).
PAD_VALUE = 114
#: Total stride of YOLO networks: input sides must be multiples of it.
STRIDE = 32

#: Resizes ``(h, w, 3)`` uint8 RGB to ``(height, width, 3)`` float32 in 0..255 (bilinear,
#: half-pixel centres): :func:`resize_bilinear`, or a faster implementation of the same maths.
Resizer = Callable[[U8, int, int], F32]


@dataclass(frozen=True, eq=False)
class LetterboxBatch:
    """Model input for a batch of images and how each image was placed in it.

    Attributes:
        pixels: ``(n, 3, H, W)`` float32, RGB, 0..1: the model input.
        scales: ``(n, 2)`` float64 ``(sx, sy)``, network pixels per image pixel; equal up to
            the rounding of the resized size to whole pixels.
        pads: ``(n, 2)`` int64 ``(left, top)``: where each resized image starts, network pixels.
        image_sizes: ``(n, 2)`` int64 ``(width, height)`` of the original images, pixels.
    """

    pixels: F32
    scales: F64
    pads: I64
    image_sizes: I64

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


def _check_image(image: npt.NDArray[np.generic], index: int) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image {index}: expected (height, width, 3) uint8 RGB, got {image.shape} {image.dtype}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image {index} is empty: {image.shape}")


def fitted_size(height: int, width: int, net_size: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of an image scaled to fit ``net_size`` ``(H, W)``, aspect kept."""
    ratio = min(net_size[0] / height, net_size[1] / width)
    fitted_h = min(net_size[0], max(1, int(np.floor(height * ratio + 0.5))))
    fitted_w = min(net_size[1], max(1, int(np.floor(width * ratio + 0.5))))
    return fitted_h, fitted_w


def _sample_positions(source: int, target: int) -> tuple[I64, I64, F32]:
    """Per output pixel: the two source pixels it blends and the weight of the second."""
    position = (np.arange(target) + 0.5) * (source / target) - 0.5
    position = np.clip(position, 0, source - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, source - 1)
    return low, high, (position - low).astype(np.float32)


def resize_bilinear(image: U8, height: int, width: int) -> F32:
    """Resize ``(h, w, 3)`` uint8 to ``(height, width, 3)`` float32 in 0..255, bilinearly.

    Half-pixel centres as OpenCV's INTER_LINEAR; strong downscaling aliases as it does.
    """
    if image.shape[:2] == (height, width):
        return image.astype(np.float32)
    y_low, y_high, y_weight = _sample_positions(image.shape[0], height)
    x_low, x_high, x_weight = _sample_positions(image.shape[1], width)
    upper = image[y_low].astype(np.float32)
    rows = upper + (image[y_high].astype(np.float32) - upper) * y_weight[:, None, None]
    left = rows[:, x_low]
    return left + (rows[:, x_high] - left) * x_weight[None, :, None]


def _canvas_size(
    fitted: Sequence[tuple[int, int]], net_size: tuple[int, int], stride: int | None
) -> tuple[int, int]:
    if stride is None:
        return net_size
    if net_size[0] % stride or net_size[1] % stride:
        raise ValueError(f"net_size {net_size} must be multiples of stride {stride}")
    height = max(h for h, _ in fitted)
    width = max(w for _, w in fitted)
    return -(-height // stride) * stride, -(-width // stride) * stride


def letterbox(
    images: Sequence[U8],
    net_size: tuple[int, int],
    stride: int | None = None,
    resize: Resizer = resize_bilinear,
) -> LetterboxBatch:
    """Scale, centre and pad a batch of RGB images into one model input.

    Args:
        images: ``(h, w, 3)`` uint8 RGB images; sizes may differ.
        net_size: ``(H, W)`` network input in pixels: the size of the output when ``stride``
            is None (models with a fixed input), else the largest it may be.
        stride: When given, shrink the canvas to the smallest multiples of ``stride`` that
            hold every scaled image: less padding and less compute for models with dynamic
            input sizes. Every image is still scaled to fit ``net_size``.
        resize: The bilinear resize to use (see :data:`Resizer`); the numpy one by default.

    Returns:
        The batch; ``pixels`` is ``(n, 3, H', W')`` float32 0..1.
    """
    if not images:
        raise ValueError("letterbox needs at least one image")
    for index, image in enumerate(images):
        _check_image(image, index)
    fitted = [fitted_size(image.shape[0], image.shape[1], net_size) for image in images]
    canvas_h, canvas_w = _canvas_size(fitted, net_size, stride)
    pixels = np.full((len(images), 3, canvas_h, canvas_w), PAD_VALUE / 255, np.float32)
    scales = np.zeros((len(images), 2), np.float64)
    pads = np.zeros((len(images), 2), np.int64)
    for index, (image, (height, width)) in enumerate(zip(images, fitted, strict=True)):
        left, top = (canvas_w - width) // 2, (canvas_h - height) // 2
        resized = resize(image, height, width) * np.float32(1 / 255)
        pixels[index, :, top : top + height, left : left + width] = resized.transpose(2, 0, 1)
        scales[index] = (width / image.shape[1], height / image.shape[0])
        pads[index] = (left, top)
    sizes = np.array([(image.shape[1], image.shape[0]) for image in images], np.int64)
    return LetterboxBatch(pixels, scales, pads, sizes)


def with_source_scales(
    batch: LetterboxBatch, source_sizes: Sequence[tuple[int, int]], downscales: Sequence[float]
) -> LetterboxBatch:
    """The batch re-expressed against the images the letterboxed ones were decoded from.

    When a JPEG of ``(width, height)`` is decoded at a reduced scale ``s`` (libjpeg's DCT
    scaling: 1/2, 1/4, 1/8; decoded pixel ``i`` covers source pixels ``[i/s, (i+1)/s)``), the
    network sees the source at ``letterbox scale * s``. The returned batch carries those
    combined scales and the source sizes, so :func:`boxes_to_image` maps boxes straight to
    source pixels, clipped to the source image.

    Args:
        batch: Letterbox of the decoded images.
        source_sizes: ``(width, height)`` of each source image, pixels.
        downscales: Decoded pixels per source pixel for each image (1.0: decoded at full size).
    """
    if len(source_sizes) != len(batch) or len(downscales) != len(batch):
        raise ValueError(f"need one source size and downscale per image of {len(batch)}")
    factors = np.asarray(downscales, np.float64)
    if np.any(factors <= 0) or np.any(factors > 1):
        raise ValueError(f"downscales must be within (0, 1], got {list(downscales)}")
    sizes = np.asarray(source_sizes, np.int64).reshape(len(batch), 2)
    if not np.array_equal(np.ceil(sizes * factors[:, None]), batch.image_sizes):
        raise ValueError(
            f"decoded sizes {batch.image_sizes.tolist()} are not the source sizes "
            f"{sizes.tolist()} scaled by {list(downscales)} (rounded up)"
        )
    return replace(batch, scales=batch.scales * factors[:, None], image_sizes=sizes)


def _box_transform(batch: LetterboxBatch, index: int) -> tuple[F64, F64]:
    """``(4,)`` scale and offset applied to ``x1, y1, x2, y2`` of image ``index``."""
    scale: F64 = np.tile(batch.scales[index], 2)
    pad: F64 = np.tile(batch.pads[index], 2).astype(np.float64)
    return scale, pad


def boxes_to_network(xyxy: F32, batch: LetterboxBatch, index: int) -> F32:
    """Map ``(k, 4)`` boxes in pixels of image ``index`` to network-input pixels."""
    scale, pad = _box_transform(batch, index)
    mapped: F64 = xyxy.astype(np.float64) * scale + pad
    return mapped.astype(np.float32)


def boxes_to_image(xyxy: F32, batch: LetterboxBatch, index: int) -> F32:
    """Map ``(k, 4)`` boxes in network-input pixels back to pixels of image ``index``.

    The exact inverse of :func:`boxes_to_network`, then clipped to the image
    (``0..width``, ``0..height``): boxes reaching into the padding end at the image border.
    """
    scale, pad = _box_transform(batch, index)
    mapped: F64 = (xyxy.astype(np.float64) - pad) / scale
    width, height = batch.image_sizes[index]
    limits = np.array([width, height, width, height], np.float64)
    return np.clip(mapped, 0, limits).astype(np.float32)


def detections_to_images(
    detections: Sequence[DetectionArrays], batch: LetterboxBatch
) -> list[DetectionArrays]:
    """New records with each image's boxes mapped from network to image pixels."""
    if len(detections) != len(batch):
        raise ValueError(f"{len(detections)} detection records for a batch of {len(batch)}")
    return [
        DetectionArrays(boxes_to_image(found.xyxy, batch, index), found.scores, found.class_ids)
        for index, found in enumerate(detections)
    ]
