"""The web console in a real browser: Debian's chromium driven by Playwright (launched from
/usr/bin/chromium; Playwright's own browser downloads are never used), against ``vsa console``
run as a process on the real Kafka and OpenSearch.

One module fixture builds everything once (keyframes of the sample clip in a frames topic with
the detector's boxes as tracks, their captions indexed, alerts in the history, camera configs)
and starts ``vsa console`` with HTTP basic auth, as it is served to others. Every case opens its
own page with the user name and password given (as typed into the browser's dialog; the browser
then sends them with every request, images and the live stream included), waits on the page's
own DOM (never a sleep), checks that the browser asked nothing of any other origin, and saves a
screenshot as an artefact (``VSA_TEST_ARTEFACTS``, or the test's temporary folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames
from vsa.schemas import Alert
from vsa.services.indexer.embedder import SentenceEmbedder
from vsa.services.indexer.settings import IndexNames

from . import console_data as data
from .test_indexer import embedder

__all__ = ["embedder"]  # the session fixture, shared with test_indexer

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
#: Bounds for a busy 2-core machine; they bound hangs, they are not tuned to pass.
START_S = 120.0
DOM_MS = 60_000
VIEWPORT = {"width": 1280, "height": 860}


@dataclass
class Console:
    """``vsa console`` serving the test's data, and what the data is."""

    base: str
    credentials: dict[str, str]
    writer: data.Writer
    keyframes: list[data.Keyframe]
    history: list[Alert]
    artefacts: Path
    episodes: Iterator[int] = field(default_factory=lambda: iter(range(1000, 100_000)))

    def keyframe(self, camera: str) -> data.Keyframe:
        return next(k for k in self.keyframes if k.camera_id == camera)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)


def start_console(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``vsa console --port 0``; the process and the console's URL, once it printed it."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsa", "console", "--port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def url() -> str | None:
        lines = log_path.read_text(errors="replace").splitlines()
        return next((x.split()[1] for x in lines if x.startswith("console: ")), None)

    def printed() -> bool:
        assert proc.poll() is None, log_path.read_text(errors="replace")
        return url() is not None

    wait_for("vsa console printed its URL", printed)
    return proc, str(url())


def fully_ready(base: str) -> bool:
    """Ready, with the live alert stream and the cameras' readers following their topics."""
    response = httpx.get(f"{base}readyz", timeout=10)
    return response.status_code == 200 and "degraded" not in response.json()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("VSA_TEST_ARTEFACTS")
    path = Path(folder) / "console" if folder else tmp_path_factory.mktemp("console-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def console(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    embedder: SentenceEmbedder,
    vtest: Path,
    artefacts: Path,
) -> Iterator[Console]:
    from vsa.services.detector.config import DetectorSettings
    from vsa.services.detector.loading import load_detector

    tag = f"t-console-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    topics = TopicNames(prefix=f"{tag}.")
    names = IndexNames(prefix=f"{tag}-")
    data.create_topics(kafka, topics)
    writer = data.Writer(kafka, topics)
    published = data.publish_keyframes(writer, vtest, load_detector(DetectorSettings()))
    keyframes = [keyframe for keyframe, _ in published]
    by_camera = {k.camera_id: k for k in reversed(keyframes)}  # each camera's first keyframe
    history = [
        data.make_alert(by_camera["plaza-north"], "crowding", "plaza-crowd", 1),
        data.make_alert(by_camera["gate"], "line_crossing", "gate-line", 2),
        data.make_alert(by_camera["plaza-south"], "loitering", "bench-loiter", 3),
    ]
    data.index(opensearch, names, embedder, [c for _, c in published], history)
    data.publish_cameras(writer)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_SEARCH_INDEX__PREFIX": names.prefix,
        "VSA_API_TOPICS__PREFIX": topics.prefix,
        "VSA_API_AUTH__MODE": "basic",
        "VSA_API_AUTH__USERNAME": "operator",
        "VSA_API_AUTH__PASSWORD": password,
    }
    proc, base = start_console(env, artefacts / "vsa-console.log")
    try:
        wait_for("the console's API ready, its Kafka readers following", lambda: fully_ready(base))
        credentials = {"username": "operator", "password": password}
        yield Console(base, credentials, writer, keyframes, history, artefacts)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (artefacts / "vsa-console.log").read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        data.drop_indices(opensearch, names)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/system-deps.sh test installs Debian's chromium"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh page; afterwards, every request it made must have gone to the console itself."""
    context = browser.new_context(viewport=VIEWPORT, http_credentials=console.credentials)
    page = context.new_page()
    page.set_default_timeout(DOM_MS)
    requested: list[str] = []
    failures: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: failures.append(str(error)))
    yield page
    context.close()
    assert not failures, f"JavaScript errors: {failures}"
    elsewhere = [url for url in requested if not url.startswith((console.base, "data:"))]
    assert not elsewhere, f"the console asked other origins: {elsewhere}"


#: Whether the page's status line matches a regular expression (the arg).
STATUS = "(pattern) => new RegExp(pattern).test(document.querySelector('#status').textContent)"
LOADED_IMAGES = """([selector, part]) => [...document.querySelectorAll(selector)]
    .filter((img) => img.complete && img.naturalWidth > 0 && img.currentSrc.includes(part))
    .length"""


def loaded_images(page: Any, selector: str, part: str = "/frames/") -> int:
    """How many images under ``selector`` loaded from a URL containing ``part``."""
    return int(page.evaluate(LOADED_IMAGES, [selector, part]))


def wait_status(page: Any, pattern: str) -> None:
    """Wait until the page's status line matches ``pattern``; failing, say what the page shows."""
    try:
        page.wait_for_function(STATUS, arg=pattern)
    except PlaywrightTimeoutError:
        shown = page.inner_text("#status"), page.inner_text("#banner")
        raise AssertionError(f"status never matched {pattern!r}; status, banner: {shown}") from None


def wait_images(page: Any, selector: str, count: int, part: str = "/frames/") -> None:
    page.wait_for_function(f"(args) => ({LOADED_IMAGES})(args) >= {count}", arg=[selector, part])


def test_the_api_needs_the_credentials_the_pages_do_not(console: Console) -> None:
    assert httpx.get(f"{console.base}search", params={"q": "people"}, timeout=30).status_code == 401
    page = httpx.get(console.base, timeout=30)
    assert page.status_code == 200
    assert "vsa console" in page.text
    auth = (console.credentials["username"], console.credentials["password"])
    assert httpx.get(f"{console.base}search", params={"q": "people"}, auth=auth, timeout=30).json()


def test_search_shows_thumbnails_and_the_full_frame(page: Any, console: Console) -> None:
    page.goto(console.base)
    page.fill("#q", "two people standing on the grass")
    page.press("#q", "Enter")
    page.wait_for_selector(".hit")
    wait_images(page, ".hit .thumb img", len(console.keyframes))  # every thumbnail from Kafka
    ids = page.eval_on_selector_all(".hit", "nodes => nodes.map((n) => n.dataset.hitId)")
    standing = next(k for k in console.keyframes if "standing" in k.caption)
    assert ids[0] == f"{standing.camera_id}:{standing.frame_seq}", ids
    assert "q=two+people+standing" in page.url  # the search is in the URL: reload, share, back
    assert "hits in" in page.inner_text("#status")
    page.screenshot(path=str(console.artefacts / "search.png"))

    page.click(".hit >> nth=0")  # the full frame with the tracked boxes drawn
    dialog = page.locator("#frame-dialog")
    dialog.wait_for(state="visible")
    wait_images(page, "#frame-dialog img.full", 1, part="boxes=true")
    size = page.eval_on_selector("#frame-dialog img.full", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [768, 576]
    assert standing.caption in dialog.inner_text()
    page.screenshot(path=str(console.artefacts / "search-frame.png"))

    page.click("#frame-dialog >> text=More like this")  # more like this, the scene left out
    # the old hits stay (dimmed) until the new ones are drawn with their summary
    wait_status(page, "^Keyframes like .*: \\d+ hits? in")
    similar = page.eval_on_selector_all(".hit", "nodes => nodes.map((n) => n.dataset.hitId)")
    assert ids[0] not in similar
    assert f"like={standing.camera_id}" in page.url


def test_search_filters_by_camera_and_class(page: Any, console: Console) -> None:
    # The page's alert kinds (from the OpenAPI document) are held back until the form is filled:
    # what was typed before the page had them must stay (on a slow network it was once wiped).
    held: list[Any] = []
    page.route("**/openapi.json", lambda route: held.append(route))
    page.goto(console.base)
    page.fill("#q", "people walking")
    page.fill("input[name=camera]", "gate")
    page.fill("input[name=since]", "1h")
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("select[name=alert_kind] option[value=loitering]", state="attached")
    page.press("#q", "Enter")
    wait_status(page, "^\\d+ hits? in")
    ids = page.eval_on_selector_all(".hit", "nodes => nodes.map((n) => n.dataset.hitId)")
    gate = [f"gate:{k.frame_seq}" for k in console.keyframes if k.camera_id == "gate"]
    assert sorted(ids) == sorted(gate)
    assert "camera=gate" in page.url

    page.fill("input[name=since]", "")
    page.fill("input[name=until]", "2h")  # everything here was captured within the last minutes
    page.press("#q", "Enter")
    wait_status(page, "^No keyframe matches")
    assert page.locator(".hit").count() == 0


def test_alerts_page_shows_history_then_live_alerts(page: Any, console: Console) -> None:
    page.goto(f"{console.base}alerts.html")
    page.wait_for_selector("#live[data-state=live]")  # subscribed to the live stream
    page.wait_for_selector(".alert")
    shown = page.eval_on_selector_all(".alert", "nodes => nodes.map((n) => n.dataset.alertId)")
    assert set(shown) == {a.alert_id for a in console.history}
    wait_images(page, ".alert .frame img", len(console.history))  # the snapshots, from Kafka

    keyframe = console.keyframe("gate")
    episode = next(console.episodes)
    alert = data.make_alert(keyframe, "zone_intrusion", "gate-zone", episode, time.time())
    started = time.monotonic()
    console.writer.send("alerts", alert.camera_id, alert.to_bytes())
    page.wait_for_selector(f'.alert[data-alert-id="{alert.alert_id}"]', timeout=10_000)
    seconds = time.monotonic() - started
    newest = page.eval_on_selector(".alert", "node => node.dataset.alertId")
    assert newest == alert.alert_id  # newest first
    # its snapshot loads from Kafka and the alert's box is placed over it
    wait_images(page, f'.alert[data-alert-id="{alert.alert_id}"] .frame img', 1)
    page.wait_for_selector(f'.alert[data-alert-id="{alert.alert_id}"] .box', state="visible")
    page.screenshot(path=str(console.artefacts / "alerts.png"))
    print(f"live alert shown {seconds:.2f} s after it was produced")


def test_alerts_page_filters_by_kind_and_camera(page: Any, console: Console) -> None:
    page.goto(f"{console.base}alerts.html?kind=loitering&camera=plaza-south")
    page.wait_for_selector("#live[data-state=live]")
    page.wait_for_selector(".alert")
    kinds = page.eval_on_selector_all(".alert", "nodes => nodes.map((n) => n.dataset.kind)")
    assert kinds == ["loitering"]
    keyframe = console.keyframe("plaza-south")
    now = time.time()
    other = data.make_alert(keyframe, "crowding", "plaza-crowd", next(console.episodes), now)
    wanted = data.make_alert(keyframe, "loitering", "bench-loiter", next(console.episodes), now)
    for alert in (other, wanted):  # one camera: one partition, in this order
        console.writer.send("alerts", alert.camera_id, alert.to_bytes())
    page.wait_for_selector(f'.alert[data-alert-id="{wanted.alert_id}"]', timeout=10_000)
    assert page.locator(f'.alert[data-alert-id="{other.alert_id}"]').count() == 0

    page.fill("input[name=camera]", "")
    page.select_option("select[name=kind]", "")  # every camera and kind: the whole history
    page.wait_for_selector('.alert[data-kind="crowding"]')
    assert "kind=" not in page.url


def test_cameras_page(page: Any, console: Console) -> None:
    page.goto(f"{console.base}cameras.html")
    page.wait_for_selector('tr[data-camera="loading-dock"]')
    states = dict(
        page.eval_on_selector_all(
            "tbody tr", "rows => rows.map((r) => [r.dataset.camera, r.dataset.state])"
        )
    )
    assert states["loading-dock"] == "disabled"
    assert set(states) >= {*data.CAMERAS, "loading-dock"}
    # Each camera's newest alert comes from the alert history, with its snapshot.
    page.wait_for_selector('tr[data-camera="plaza-north"] .last-alert')
    wait_images(page, "tr[data-camera='plaza-north'] .last-alert img", 1)
    # Frames, detections and tracks of a camera make it live, with its rates.
    keyframe = console.keyframe("plaza-north")
    tracks = data.tracks_of(keyframe.detections).to_bytes()
    for _ in range(3):
        console.writer.send("frames", keyframe.camera_id, keyframe.jpeg)  # counted, not decoded
        console.writer.send("detections", keyframe.camera_id, keyframe.detections.to_bytes())
        console.writer.send("tracks", keyframe.camera_id, tracks)
    row = 'tr[data-camera="plaza-north"]'
    page.wait_for_function(
        "(row) => [...document.querySelectorAll(`${row} td.num`)].slice(0, 3)"
        ".every((td) => Number(td.textContent) > 0)",
        arg=row,
    )
    assert page.get_attribute(row, "data-state") == "live"
    assert "person" in page.inner_text(f"{row} td.classes")
    with_alerts = page.locator(".last-alert").count()
    wait_images(page, ".last-alert img", with_alerts)
    page.screenshot(path=str(console.artefacts / "cameras.png"))
