"""Decoding frame JPEGs, at a reduced size when the network input is much smaller.

libjpeg(-turbo) can run its inverse DCT at 1/2, 1/4 or 1/8 scale, producing a smaller image for
far less work than a full decode followed by a resize (a 1080p frame for a 416 network decodes
at 1/4 scale, 480×270). Other factors (5/8, 3/4...) exist but are slower than a full decode, so
only powers of two are used, and only while the decoded image is still at least as large as the
image will be inside the network input: the network sees the same detail, never an upscale.

Decoded pixel ``i`` at scale ``1/2**k`` covers source pixels ``[i * 2**k, (i + 1) * 2**k)``, so
boxes map back to the source exactly by that factor
(:func:`~vsa.services.detector.preprocess.with_source_scales`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simplejpeg

from .preprocess import fitted_size

U8 = npt.NDArray[np.uint8]

#: Largest DCT downscale used: 1/2**3 = 1/8, libjpeg's smallest.
MAX_DCT_SHIFT = 3


class FrameError(ValueError):
    """A frame cannot be used: corrupt JPEG, unexpected size, too many pixels."""


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """An RGB image decoded from a JPEG, possibly at a reduced scale.

    Attributes:
        image: ``(h, w, 3)`` uint8 RGB, ``h = ceil(height / 2**shift)``, same for ``w``.
        width: Width of the JPEG itself (the source), pixels.
        height: Height of the JPEG itself, pixels.
        shift: The image was decoded at scale ``1 / 2**shift`` (0: full size).
    """

    image: U8
    width: int
    height: int
    shift: int = 0

    @property
    def downscale(self) -> float:
        """Decoded pixels per source pixel: ``1 / 2**shift``."""
        return 1.0 / (1 << self.shift)

    @classmethod
    def full(cls, image: U8) -> DecodedFrame:
        """An image decoded (by anything) at its full size."""
        return cls(image, int(image.shape[1]), int(image.shape[0]), 0)


def _scaled(size: int, shift: int) -> int:
    """``ceil(size / 2**shift)``: libjpeg's size of a dimension decoded at that scale."""
    return -(-size // (1 << shift))


def decode_shift(width: int, height: int, net_size: tuple[int, int]) -> int:
    """Largest ``k <= 3`` such that the image decoded at ``1/2**k`` still covers its place in
    a ``net_size`` ``(H, W)`` letterbox; 0 when the network input is not much smaller."""
    fitted_h, fitted_w = fitted_size(height, width, net_size)
    shift = 0
    while (
        shift < MAX_DCT_SHIFT
        and _scaled(width, shift + 1) >= fitted_w
        and _scaled(height, shift + 1) >= fitted_h
    ):
        shift += 1
    return shift


def jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG's last scan is followed by its end-of-image marker (FF D9).

    A truncated file fails this: nvJPEG on the GPU decodes it without an error (grey where the
    data stops), unlike libjpeg on the CPU, so the GPU path checks it first. In entropy-coded
    data a 0xFF byte is always stuffed (FF 00) or a restart marker, so an FF D9 with a scan
    (FF DA) before it and none after it can only be the image's end; a truncated file with an
    EXIF thumbnail finds the thumbnail's FF D9, with the main scan after it. Bytes a camera
    appends after the end do no harm.
    """
    end = data.rfind(b"\xff\xd9")  # at the very end for a whole frame: ~1 us, not a scan
    return end >= 0 and data.find(b"\xff\xda", 0, end) >= 0 and data.find(b"\xff\xda", end) < 0


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a JPEG from its header, without decoding it.

    Raises:
        FrameError: the data is not a readable JPEG header.
    """
    try:
        height, width, _colorspace, _subsampling = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise FrameError(f"corrupt JPEG: {exc}") from exc
    return int(width), int(height)


def decode_frame(
    data: bytes,
    expected_size: tuple[int, int] | None = None,
    net_size: tuple[int, int] | None = None,
    max_pixels: int | None = None,
) -> DecodedFrame:
    """Decode a JPEG to RGB, checking its size, at a reduced scale where that is lossless for
    the network.

    Args:
        data: The JPEG bytes.
        expected_size: ``(width, height)`` the frame's metadata claims; None skips the check.
        net_size: Network input ``(H, W)``; when given, decode at the smallest power-of-two
            scale that still covers the letterboxed size (see :func:`decode_shift`).
        max_pixels: Refuse JPEGs with more pixels than this before decoding them.

    Raises:
        FrameError: corrupt or truncated JPEG, a size other than ``expected_size``, too many
            pixels, or a decoded image of a size libjpeg should not have produced.
    """
    width, height = jpeg_size(data)
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise FrameError(
            f"frame of unexpected size: the JPEG is {width}x{height}, its headers say "
            f"{expected_size[0]}x{expected_size[1]}"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise FrameError(f"frame of {width}x{height} exceeds max_frame_pixels={max_pixels}")
    shift = decode_shift(width, height, net_size) if net_size is not None else 0
    image = _decode(data, (_scaled(height, shift), _scaled(width, shift)), shift)
    return DecodedFrame(image, width, height, shift)


def _decode(data: bytes, wanted: tuple[int, int], shift: int) -> U8:
    """Decode at scale ``1/2**shift``, which must give ``wanted`` ``(h, w)``; FrameError if not."""
    try:
        image = simplejpeg.decode_jpeg(
            data,
            colorspace="RGB",
            min_height=wanted[0],
            min_width=wanted[1],
            min_factor=float(1 << shift),
            strict=True,
        )
    except ValueError as exc:
        raise FrameError(f"corrupt JPEG: {exc}") from exc
    if image.shape != (*wanted, 3):
        raise FrameError(f"JPEG decoded to {image.shape}, expected {(*wanted, 3)}")
    decoded: U8 = image
    return decoded
