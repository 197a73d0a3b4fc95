"""The web console's files and how they are served (the browser tests are in
tests/integration/test_console.py): nothing is loaded from outside the server, every file a page
names is shipped (and declared as package data), the pages sit next to the API without hiding any
of its paths, and ``vsa console`` refuses the API-key mode a browser cannot use."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vsa.cli import main
from vsa.services.api.app import create_app, mount_console
from vsa.services.api.parts import ApiParts
from vsa.services.console.cli import STATIC

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("index.html", "alerts.html", "cameras.html")
#: Links of the pages that are not files of the console: its own pages and the API's docs.
NOT_FILES = {"./", "docs"}


class References(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(page: str) -> list[str]:
    parser = References()
    parser.feed((STATIC / page).read_text())
    return parser.urls


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_only_files_of_the_console(page: str) -> None:
    urls = references(page)
    assert "console.js" in urls
    assert "console.css" in urls
    for url in urls:
        assert not re.match(r"^([a-z]+:)?//", url), f"{page} loads {url} from elsewhere"
        if url.startswith("data:") or url in NOT_FILES:
            continue
        assert (STATIC / url).is_file(), f"{page} names {url}, which is not shipped"


def test_no_file_reaches_the_internet() -> None:
    files = sorted(STATIC.iterdir())
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for path in files:
        text = path.read_text()
        found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
        assert not found, f"{path.name} names {found}"
        assert "@import" not in text, path.name


def test_the_files_are_package_data() -> None:
    config = (ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+; the project runs on 3.10)
    package_data = config.split("[tool.setuptools.package-data]")[1].split("\n[")[0]
    assert re.search(r'^"vsa\.services\.console" = \[.*"static/\*".*\]$', package_data, re.M)


class NoSearch:
    """A searcher for paths that never search."""

    class client:  # noqa: N801 (the attribute readiness reads)
        @staticmethod
        def ping(request_timeout: float = 0) -> bool:
            return True


def test_console_is_served_next_to_the_api() -> None:
    app = create_app(ApiParts(NoSearch()))  # type: ignore[arg-type]
    mount_console(app, STATIC)
    client = TestClient(app)
    for path, title in (("/", "Search"), ("/alerts.html", "Alerts"), ("/cameras.html", "Cameras")):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert f"<title>{title} · vsa console</title>" in page.text
    assert "javascript" in client.get("/console.js").headers["content-type"]
    assert client.get("/console.css").headers["content-type"].startswith("text/css")
    # The API's paths still answer as the API: JSON, its own errors.
    assert client.get("/healthz").json() == {"ok": True}
    history = client.get("/alerts")
    assert history.status_code == 503
    assert "alert history" in history.json()["error"]
    assert client.get("/openapi.json").json()["info"]["title"] == "vsa"
    assert client.get("/no-such-page.html").status_code == 404


def test_console_refuses_the_api_key_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VSA_API_AUTH__MODE", "api_key")
    monkeypatch.setenv("VSA_API_AUTH__API_KEY", "k" * 24)
    assert main(["console", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "VSA_API_AUTH__MODE=basic" in error
    assert "k" * 24 not in error


def test_the_guide_shows_every_page_in_small_pictures() -> None:
    guide = (ROOT / "docs" / "console.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", guide)
    assert {"console/search.png", "console/alerts.png", "console/cameras.png"} <= set(pictures)
    for picture in pictures:
        path = ROOT / "docs" / picture
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        assert path.stat().st_size < 200_000, f"{picture}: keep committed pictures under 200 KB"
