"""Issue 15 point 8: the time of day in a caption is the camera's: its camera-config's
``timezone``, else the captioner's setting, else the host's time zone (no longer UTC)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from vsa.runtime.settings import ConfigError, load_settings
from vsa.schemas import CameraConfig, FrameRef, Keyframe, SchemaError
from vsa.services.captioner.config import CaptionerSettings
from vsa.services.captioner.describe import DescribeOptions, time_of_day
from vsa.services.captioner.scene import describe

#: 2026-01-01 13:00 UTC: afternoon in London, night (22:00) in Tokyo, morning (08:00) in New York.
ONE_PM_UTC = 1_767_272_400.0


def keyframe(camera_id: str = "cam-1") -> Keyframe:
    ref = FrameRef(topic="frames", partition=0, offset=7, camera_id=camera_id, frame_seq=42)
    return Keyframe(
        camera_id=camera_id,
        frame_seq=42,
        frame=ref,
        capture_ts=ONE_PM_UTC,
        reason="periodic",
        objects=[],
    )


@pytest.fixture
def host_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone set to Asia/Tokyo (TZ), restored afterwards."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_camera_config_time_zone_wins() -> None:
    config = CameraConfig(camera_id="cam-1", timezone="America/New_York")
    text = describe(keyframe(), None, config, DescribeOptions(timezone="Asia/Tokyo")).text
    assert text.startswith("Morning. ")


def test_without_one_the_captioner_setting_applies() -> None:
    config = CameraConfig(camera_id="cam-1")
    assert describe(keyframe(), None, config, DescribeOptions(timezone="Asia/Tokyo")).text == (
        "Night. No objects in view."
    )
    assert describe(keyframe(), None, None, DescribeOptions(timezone="UTC")).text.startswith(
        "Afternoon. "
    )


@pytest.mark.usefixtures("host_in_tokyo")
def test_by_default_the_host_time_zone_applies_not_utc() -> None:
    assert CaptionerSettings().timezone is None
    options = DescribeOptions(timezone=CaptionerSettings().timezone)
    assert describe(keyframe(), None, None, options).text.startswith("Night. ")
    assert time_of_day(ONE_PM_UTC, None) == "Night"
    assert time_of_day(ONE_PM_UTC, "UTC") == "Afternoon"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Europe/Pariss", "../etc/passwd", ""])
def test_an_unknown_camera_time_zone_is_refused_naming_camera_and_field(name: str) -> None:
    with pytest.raises(SchemaError, match=r"camera 'gate'.*timezone"):
        CameraConfig.from_dict({"camera_id": "gate", "timezone": name})


def test_an_unknown_captioner_time_zone_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VSA_CAPTIONER_TIMEZONE", "Europe/Pariss")
    with pytest.raises(ConfigError, match=r"timezone.*unknown time zone 'Europe/Pariss'"):
        load_settings(CaptionerSettings)
    monkeypatch.setenv("VSA_CAPTIONER_TIMEZONE", "Europe/Paris")
    assert load_settings(CaptionerSettings).timezone == "Europe/Paris"


def test_vsa_cameras_sets_the_time_zone_and_refuses_an_unknown_one() -> None:
    from vsa.cli import build_parser
    from vsa.operate.cameras import _config_from_args

    def config(*flags: str) -> CameraConfig:
        args = build_parser().parse_args(["cameras", "add", "gate", *flags])
        return _config_from_args(args, None)

    assert config("--timezone", "Europe/Paris").timezone == "Europe/Paris"
    assert config().timezone is None
    with pytest.raises(ConfigError, match=r"command-line arguments.*timezone"):
        config("--timezone", "Europe/Pariss")
