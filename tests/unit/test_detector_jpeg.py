"""Decoding frame JPEGs: size checks, corrupt data, DCT downscaling and exact box mapping."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg

from vsa.services.detector.jpeg import (
    FrameError,
    decode_frame,
    decode_shift,
    jpeg_complete,
    jpeg_size,
)
from vsa.services.detector.preprocess import (
    boxes_to_image,
    boxes_to_network,
    fitted_size,
    letterbox,
    with_source_scales,
)
from vsa.services.detector.resize import OrtResizer

NET = (416, 416)


def _jpeg(height: int, width: int, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return simplejpeg.encode_jpeg(image, quality=90)


@pytest.mark.parametrize(
    ("size", "shift"),
    [
        ((768, 576), 0),  # vtest: 384 wide at 1/2 would be less than the 416 it fills
        ((832, 624), 1),  # exactly twice the letterboxed 416x312
        ((830, 624), 0),  # one pixel short of it
        ((1920, 1080), 2),  # 480x270 still covers 416x234
        ((3840, 2160), 3),  # 480x270 at 1/8, libjpeg's smallest
        ((1080, 1920), 2),  # portrait
        ((200, 100), 0),  # small images are scaled up, never decoded smaller
    ],
)
def test_decode_shift_never_goes_below_the_network_size(size: tuple[int, int], shift: int) -> None:
    assert decode_shift(size[0], size[1], NET) == shift


def test_decoded_size_is_the_jpeg_scaled_by_a_power_of_two() -> None:
    data = _jpeg(1081, 1923)
    frame = decode_frame(data, expected_size=(1923, 1081), net_size=NET)
    assert frame.shift == 2
    assert frame.image.shape == (271, 481, 3)  # ceil(1081 / 4), ceil(1923 / 4)
    assert (frame.width, frame.height) == (1923, 1081)
    full = decode_frame(data, expected_size=(1923, 1081))
    assert full.shift == 0
    assert full.image.shape == (1081, 1923, 3)


def test_size_other_than_the_headers_is_refused() -> None:
    with pytest.raises(FrameError, match="frame of unexpected size: the JPEG is 80x64"):
        decode_frame(_jpeg(64, 80), expected_size=(64, 80))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"not a jpeg at all",
        lambda data: data[:200] + bytes(100) + data[300:],  # zeros in the middle
        lambda data: b"",
    ],
    ids=["truncated", "garbage", "zeroed", "empty"],
)
def test_corrupt_jpegs_are_refused(damage: object) -> None:
    data = damage(_jpeg(64, 80))  # type: ignore[operator]
    with pytest.raises(FrameError, match="corrupt JPEG"):
        decode_frame(data, expected_size=(80, 64), net_size=NET)


def test_too_many_pixels_are_refused_before_decoding() -> None:
    with pytest.raises(FrameError, match="exceeds max_frame_pixels=1000"):
        decode_frame(_jpeg(64, 80), max_pixels=1000)
    assert jpeg_size(_jpeg(64, 80)) == (80, 64)


@pytest.mark.parametrize("size", [(1923, 1081), (3840, 2160), (1080, 1920), (832, 624)])
def test_boxes_map_back_exactly_through_a_downscaled_decode(size: tuple[int, int]) -> None:
    width, height = size
    frame = decode_frame(_jpeg(height, width), expected_size=size, net_size=NET)
    assert frame.shift > 0
    decoded = letterbox([frame.image], NET, resize=OrtResizer())
    batch = with_source_scales(decoded, [size], [frame.downscale])
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 1, (50, 2, 2)) * np.array([width, height])
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
    back = boxes_to_image(boxes_to_network(boxes, batch, 0), batch, 0)
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-3 * max(size))
    # The source's far corner lands on the far corner of the image inside the letterbox, up to
    # libjpeg's partial last block (under one network pixel).
    far = boxes_to_network(np.array([[0, 0, width, height]], np.float32), batch, 0)[0]
    left, top = batch.pads[0]
    fitted_h, fitted_w = fitted_size(height, width, NET)
    assert (far[0], far[1]) == (left, top)
    assert abs(far[2] - left - fitted_w) < 1
    assert abs(far[3] - top - fitted_h) < 1


def test_source_scales_must_match_the_decoded_sizes() -> None:
    batch = letterbox([np.zeros((271, 481, 3), np.uint8)], NET)
    with pytest.raises(ValueError, match="not the source sizes"):
        with_source_scales(batch, [(1920, 1080)], [0.5])
    with pytest.raises(ValueError, match=r"within \(0, 1\]"):
        with_source_scales(batch, [(1923, 1081)], [2.0])
    assert with_source_scales(batch, [(1923, 1081)], [0.25]).image_sizes.tolist() == [[1923, 1081]]


def test_ort_resize_matches_the_numpy_reference() -> None:
    from vsa.services.detector.preprocess import resize_bilinear

    image = np.random.default_rng(2).integers(0, 256, (577, 769, 3), dtype=np.uint8)
    resizer = OrtResizer()
    for height, width in [(312, 416), (416, 555), (577, 769)]:
        np.testing.assert_allclose(
            resizer(image, height, width), resize_bilinear(image, height, width), atol=0.02
        )


def test_truncation_is_seen_without_decoding() -> None:
    """nvJPEG decodes a truncated JPEG without complaint, so the GPU path checks for the end
    marker first: every cut of a real frame fails, the whole frame (with bytes appended after
    its end, as some cameras do) passes."""
    data = _jpeg(120, 160, seed=3)
    assert jpeg_complete(data)
    assert jpeg_complete(data + bytes(40))
    for cut in range(1, len(data) - 1, 97):
        assert not jpeg_complete(data[:cut]), cut
    assert not jpeg_complete(data[:-1])
    assert not jpeg_complete(b"")
    # An EXIF thumbnail (a whole JPEG in an APP1 segment before the main scan) has its own end
    # marker: it must not make a truncated main image look whole.
    thumb = b"Exif\x00\x00" + _jpeg(8, 8, seed=5)
    app1 = b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    with_thumb = data[:2] + app1 + data[2:]
    assert simplejpeg.decode_jpeg_header(with_thumb)[:2] == (120, 160)
    assert jpeg_complete(with_thumb)
    assert not jpeg_complete(with_thumb[: len(with_thumb) * 2 // 3])


def test_gpu_path_refuses_a_truncated_frame_before_decoding() -> None:
    from vsa.schemas import FrameMeta, FrameRef
    from vsa.services.detector.core import FrameInput
    from vsa.services.detector.torch_core import TorchFrameDetector

    data = _jpeg(120, 160, seed=4)
    meta = FrameMeta(
        camera_id="gate", frame_seq=1, capture_ts=1.7e9, width=160, height=120, source="file"
    )
    ref = FrameRef(topic="frames", partition=0, offset=1, camera_id="gate", frame_seq=1)
    core = TorchFrameDetector(None, ("person",), "test", NET)
    core.check(FrameInput(meta, ref, data))  # the whole frame passes
    with pytest.raises(FrameError, match="truncated"):
        core.check(FrameInput(meta, ref, data[: len(data) * 2 // 3]))
