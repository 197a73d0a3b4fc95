"""Issue 15 point 6: ``vsa <service> --print-config`` shows values, masked secrets and sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsa.cli import main


@pytest.mark.parametrize("service", ["detector", "tracker", "captioner"])
def test_print_config_shows_sources_and_masks_secrets(
    service: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("max_batch: 16\n")
    monkeypatch.setenv(f"VSA_{service.upper()}_MAX_WAIT_MS", "55")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2-secret")
    assert main([service, "--config", str(config), "--print-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "max_batch = 16  (config file)" in lines
    assert "max_wait_ms = 55  (env)" in lines
    assert any(x.startswith("metrics_port = ") and x.endswith("(default)") for x in lines)
    assert "kafka.sasl_password = **********  (env)" in lines
    assert not any("hunter2-secret" in line for line in lines)


def test_ingest_print_config_blames_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--camera", "gate=rtsp://u:pw1234@h/x", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "pw1234" not in out
    assert "rtsp://***@h/x" in out
    assert any(
        line.startswith("cameras = ") and line.endswith("(flag)") for line in out.splitlines()
    )


def test_indexer_print_config_masks_the_opensearch_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "os-secret-4711")
    monkeypatch.setenv("OPENSEARCH_URL", "http://admin:url-secret-42@127.0.0.1:9")
    monkeypatch.setenv("VSA_INDEXER_HNSW__EF_SEARCH", "77")
    assert main(["indexer", "--print-config"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "opensearch.password = **********  (env)" in lines
    assert "opensearch.url = http://***@127.0.0.1:9  (env)" in lines
    assert "hnsw.ef_search = 77  (env)" in lines
    assert "max_batch = 256  (default)" in lines
    assert "os-secret-4711" not in out
    assert "url-secret-42" not in out


def test_search_api_print_config_blames_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("rrf_rank_constant: 30\n")
    assert main(["search-api", "--config", str(config), "--port", "0", "--print-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "api_port = 0  (flag)" in lines
    assert "rrf_rank_constant = 30  (config file)" in lines
    assert "api_host = 127.0.0.1  (default)" in lines
