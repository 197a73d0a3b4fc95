"""Frame sampling, output size and reconnect back-off of the ingest service."""

import itertools
import random

import pytest

from vsa.services.ingest.pacing import Backoff, FpsSampler, fit_size


def _kept(sampler: FpsSampler, times: list[float]) -> list[float]:
    return [t for t in times if sampler.keep(t)]


def test_sampler_keeps_everything_without_target() -> None:
    times = [i / 25 for i in range(50)]
    assert _kept(FpsSampler(None), times) == times


def test_sampler_drops_evenly_from_25_to_10_fps() -> None:
    times = [i / 25 for i in range(250)]  # 10 s of a 25 fps source
    kept = _kept(FpsSampler(10.0), times)
    assert len(kept) == 100
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert min(gaps) >= 0.08 - 1e-9
    assert max(gaps) <= 0.12 + 1e-9


def test_sampler_keeps_all_when_source_is_slower_than_target() -> None:
    times = [i / 5 for i in range(20)]
    assert _kept(FpsSampler(10.0), times) == times


def test_sampler_restarts_when_time_goes_back() -> None:
    sampler = FpsSampler(2.0)
    first = _kept(sampler, [i / 10 for i in range(20)])
    second = _kept(sampler, [i / 10 for i in range(20)])  # the file looped
    assert first == second == [0.0, 0.5, 1.0, 1.5]


def test_sampler_skips_ahead_after_a_gap() -> None:
    sampler = FpsSampler(1.0)
    assert _kept(sampler, [0.0, 0.5, 10.0, 10.5, 11.0]) == [0.0, 10.0, 11.0]


@pytest.mark.parametrize(
    ("size", "bounds", "expected"),
    [
        ((768, 576), (None, None), (768, 576)),
        ((3840, 2160), (1920, None), (1920, 1080)),
        ((3840, 2160), (None, 720), (1280, 720)),
        ((1080, 1920), (1280, 1280), (720, 1280)),  # portrait
        ((641, 479), (None, None), (640, 478)),  # odd sizes round down to even for 4:2:0
        ((640, 480), (1280, 1280), (640, 480)),  # never upscales
    ],
)
def test_fit_size(
    size: tuple[int, int], bounds: tuple[int | None, int | None], expected: tuple[int, int]
) -> None:
    assert fit_size(*size, *bounds) == expected


def test_backoff_grows_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    ceilings = [min(4.0, 0.5 * 2**i) for i in range(10)]
    assert all(d <= c + 1e-9 for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[5:]) > 2.0  # later attempts reach well past the first delay
    backoff.reset()
    assert backoff.next_delay() == 0.5
