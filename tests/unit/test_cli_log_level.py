"""Issue 15 point 6: an invalid log level is one clear line and exit 2, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsa.cli import main


def test_bad_log_level_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD", "assets"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'LOUD' from --log-level" in err[0]
    assert "Traceback" not in err[0]


def test_bad_log_level_env_is_blamed_on_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VSA_LOG_LEVEL", "chatty")
    assert main(["assets"]) == 2
    assert "'chatty' from VSA_LOG_LEVEL" in capsys.readouterr().err


def test_bad_flag_value_is_blamed_on_the_command_line(tmp_path: Path) -> None:
    from vsa.runtime.settings import ConfigError, load_settings
    from vsa.services.detector.config import DetectorSettings

    with pytest.raises(ConfigError) as caught:
        load_settings(DetectorSettings, None, conf_threshold=2.0)
    assert "conf_threshold" in str(caught.value)
    assert "(from command-line arguments)" in str(caught.value)
    config = tmp_path / "detector.yaml"
    config.write_text("max_batch: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(DetectorSettings, config)
    assert "max_batch: " in str(caught.value)
    assert f"(from {config})" in str(caught.value)


def test_misspelt_service_variable_is_reported_with_a_suggestion() -> None:
    from vsa.runtime.settings import unknown_env
    from vsa.services.detector.config import DetectorSettings

    environ = {
        "VSA_DETECTOR_MAXBATCH": "8",
        "VSA_DETECTOR_MAX_BATCH": "8",
        "VSA_DETECTOR_KAFKA__EXTRA": "{}",
        "VSA_DETECTOR_ZZZ": "1",
        "VSA_LOG_LEVEL": "INFO",
        "KAFKA_WHATEVER": "x",
    }
    assert unknown_env(DetectorSettings, environ) == [
        ("VSA_DETECTOR_MAXBATCH", "VSA_DETECTOR_MAX_BATCH"),
        ("VSA_DETECTOR_ZZZ", None),
    ]


def test_unknown_variable_is_one_structured_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from vsa.runtime.settings import load_settings
    from vsa.services.detector.config import DetectorSettings

    monkeypatch.setenv("VSA_DETECTOR_MAXBATCH", "8")
    with caplog.at_level("WARNING", logger="vsa.settings"):
        load_settings(DetectorSettings)
    records = [r for r in caplog.records if r.getMessage() == "unknown_setting_variable"]
    assert len(records) == 1
    assert records[0].__dict__["did_you_mean"] == "VSA_DETECTOR_MAX_BATCH"


def test_records_go_to_the_stderr_of_the_moment_not_a_closed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CLI command run in-process sets logging up while a test runner's stderr is in place;
    that stream is closed later, and records logged afterwards must still be written (they
    failed with "I/O operation on closed file" in a CI run)."""
    import io
    import logging

    from vsa.runtime.logs import event, setup_logging

    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging("unit", "INFO")
    event(logging.getLogger("unit"), "first_event")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    errors: list[BaseException] = []
    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(logging.Handler, "handleError", lambda _h, _r: errors.append(Exception()))
    event(logging.getLogger("unit"), "second_event", camera_id="cam-1")
    assert errors == []
    assert "second_event" in second.getvalue()
    assert "cam-1" in second.getvalue()


def test_metrics_port_in_use_is_one_clear_error() -> None:
    """A service whose metrics port is taken says which setting moves it (a CI run saw `vsa
    ingest` end in a bind traceback when another process had the port)."""
    import socket

    from vsa.runtime.metrics import Health, ServiceMetrics, serve_http
    from vsa.runtime.settings import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            serve_http(ServiceMetrics("ingest"), Health(), "127.0.0.1", port)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "VSA_INGEST_METRICS_PORT=<port>" in message
    assert "in use" in message
