"""Captioner pieces: rate limit, scaled decoding, thumbnails, and the BLIP backend on a tiny
randomly initialised BLIP saved to a temporary folder (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from vsa.schemas import MAX_THUMBNAIL_BYTES, FrameRef, Keyframe
from vsa.services.captioner.backends import BlipCaptioner, CaptionerError, CaptionInput
from vsa.services.captioner.describe import DescribeOptions
from vsa.services.captioner.frames import decode_small, thumbnail
from vsa.services.captioner.ratelimit import CameraRateLimit


def test_rate_limit_per_camera_with_burst_and_refill() -> None:
    limit = CameraRateLimit(per_minute=6, burst=2)  # one token every 10 s
    assert [limit.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limit.allow("b", 0.0)  # cameras do not share a budget
    assert not limit.allow("a", 5.0)
    assert limit.allow("a", 10.5)
    assert not limit.allow("a", 11.0)
    assert limit.allow("a", 100.0)
    assert CameraRateLimit(per_minute=0).allow("a", 0.0)


def noisy_jpeg(width: int, height: int, quality: int = 95) -> bytes:
    rng = np.random.default_rng(0)
    return bytes(
        simplejpeg.encode_jpeg(rng.integers(0, 255, (height, width, 3), np.uint8), quality)
    )


@pytest.mark.parametrize(
    ("size", "small"),
    [((1920, 1080), (480, 270)), ((768, 576), (384, 288)), ((320, 240), (320, 240))],
)
def test_decode_small_picks_the_largest_scale_within_bounds(
    size: tuple[int, int], small: tuple[int, int]
) -> None:
    frame = decode_small(noisy_jpeg(*size), max_width=480)
    assert (frame.pixels.shape[1], frame.pixels.shape[0]) == small
    assert frame.original_size == size


def test_decode_small_refuses_garbage() -> None:
    with pytest.raises(ValueError, match=r"."):
        decode_small(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_thumbnail_always_fits() -> None:
    noise = decode_small(noisy_jpeg(1920, 1080)).pixels  # worst case for JPEG size
    thumb = thumbnail(noise, max_width=320)
    assert len(thumb) <= MAX_THUMBNAIL_BYTES
    assert thumb.startswith(b"\xff\xd8\xff")
    _, width, _, _ = simplejpeg.decode_jpeg_header(thumb)
    assert width <= 320


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BLIP of the real architecture, a few layers wide, saved offline."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("blip")
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "person",
        "walking",
        "car",
        "red",
        "street",
        "on",
        "the",
        "left",
        "white",
        "people",
        "two",
        "in",
        "of",
        "and",
    ]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizer(str(folder / "vocab.txt"))
    image_processor = transformers.BlipImageProcessor(size={"height": 64, "width": 64})
    transformers.BlipProcessor(
        image_processor=image_processor, tokenizer=tokenizer
    ).save_pretrained(folder)
    small = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 37,
    }
    config = transformers.BlipConfig(
        text_config={
            **small,
            "vocab_size": len(words),
            "bos_token_id": 2,
            "pad_token_id": 0,
            "sep_token_id": 3,
            "eos_token_id": 3,
            "max_position_embeddings": 64,
        },
        vision_config={**small, "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )
    import torch

    torch.manual_seed(0)  # the random weights, and so the generated words, are reproducible
    transformers.BlipForConditionalGeneration(config).save_pretrained(folder)
    return folder


def _keyframe() -> Keyframe:
    ref = FrameRef(topic="frames", partition=0, offset=1, camera_id="c", frame_seq=1)
    return Keyframe(camera_id="c", frame_seq=1, frame=ref, capture_ts=1.8e9, reason="periodic")


def test_blip_backend_batches_images_and_keeps_the_scene(tiny_blip: Path) -> None:
    captioner = BlipCaptioner(tiny_blip, DescribeOptions(), device="cpu", max_new_tokens=5)
    image = decode_small(noisy_jpeg(320, 240)).pixels
    items = [
        CaptionInput(_keyframe(), image, (320, 240), None),
        CaptionInput(_keyframe(), None, None, None),
        CaptionInput(_keyframe(), image, (320, 240), None),
    ]
    out = captioner.caption(items)
    assert len(out) == 3
    assert out[1].text.endswith("No objects in view.")  # no image: scene text only
    for described in (out[0], out[2]):
        assert described.text.endswith("No objects in view.")
        assert len(described.text) > len(out[1].text)  # a generated sentence in front
    assert captioner.name.startswith("blip:")


def test_blip_backend_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match=r"config\.json"):
        BlipCaptioner(tmp_path, DescribeOptions(), device="cpu")
