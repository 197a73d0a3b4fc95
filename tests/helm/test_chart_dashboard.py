"""The Grafana dashboard shipped in the chart (helm/vsa/dashboards/vsa-pipeline.json).

Its queries must name metrics and labels the services really register: the test builds every
metrics class of the chart's services (the runtime's, the detector's, the tracker's, the
indexer's, the notifier's, the HTTP API's) in a registry, derives the series names Prometheus
sees (``_total`` of a counter, ``_bucket``/``_sum``/``_count`` of a histogram) and checks each
query against them.
The chart renders it as a ConfigMap with the sidecar's label only when asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from prometheus_client.metrics import MetricWrapperBase

from vsa.runtime.metrics import ServiceMetrics

from .conftest import CHART, INSTALL_TIMEOUT_S, Renderer

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)

DASHBOARD = CHART / "dashboards" / "vsa-pipeline.json"
CONFIGMAP = "vsa-grafana-dashboard"
#: Series suffixes Prometheus sees for each metric type (prometheus_client's exposition).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
#: What the dashboard must show (issue 13): one metric per subject, each in some panel.
REQUIRED = {
    "per-stage rates": "vsa_messages_in_total",
    "outputs": "vsa_messages_out_total",
    "consumer lag": "vsa_consumer_lag",
    "batch latency": "vsa_processing_seconds_bucket",
    "dead letters": "vsa_dead_letters_total",
    "dropped frames": "vsa_frames_dropped_total",
    "commit failures": "vsa_commit_failures_total",
    "batch retries": "vsa_batch_retries_total",
    "API requests by route and status": "vsa_api_requests_total",
    "API latency": "vsa_api_request_seconds_bucket",
    "API open live streams": "vsa_api_stream_clients",
    "API alerts dropped for slow stream clients": "vsa_api_stream_dropped_total",
}
METRIC_NAME = re.compile(r"\bvsa_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def code_metrics() -> list[MetricWrapperBase]:
    """Every metric the services and the API register, built the way they build them."""
    from vsa.services.api.metrics import ApiMetrics
    from vsa.services.detector.service import DetectorMetrics
    from vsa.services.indexer.handler import IndexerMetrics
    from vsa.services.notifier.service import NotifierMetrics
    from vsa.services.tracker.metrics import TrackerMetrics

    holders: list[Any] = []
    for extra in (DetectorMetrics, TrackerMetrics, IndexerMetrics, NotifierMetrics):
        base = ServiceMetrics("test")
        holders += [base, extra(base)]
    holders.append(ApiMetrics())  # a registry of its own, no `service` label
    found = [v for holder in holders for v in vars(holder).values()]
    return [metric for metric in found if isinstance(metric, MetricWrapperBase)]


@pytest.fixture(scope="module")
def series_labels() -> dict[str, frozenset[str]]:
    """Series name as scraped -> its label names (``le`` on histogram buckets)."""
    series: dict[str, frozenset[str]] = {}
    for metric in code_metrics():
        # prometheus_client keeps a metric's name, type and label names on these attributes
        # only (an unlabelled-yet metric exports no samples to read them from).
        name, kind, labels = metric._name, metric._type, frozenset(metric._labelnames)
        for suffix in SUFFIXES[kind]:
            series[name + suffix] = labels | {"le"} if suffix == "_bucket" else labels
    return series


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return body


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, PromQL, legend format) of every query, the template variables' included."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], target.get("legendFormat", "")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"], ""


def labels_used(expr: str) -> tuple[set[str], set[str]]:
    """Label names an expression groups by, and label names it matches on."""
    grouped = {n.strip() for group in GROUPING.findall(expr) for n in group.split(",") if n.strip()}
    matched = {n for body in MATCHERS.findall(expr) for n in MATCHER_LABEL.findall(body)}
    label_values = re.search(r"label_values\(\s*[a-z0-9_]+\s*,\s*([a-z_]+)\s*\)", expr)
    if label_values:
        grouped.add(label_values.group(1))
    return grouped, matched


def test_every_query_names_metrics_and_labels_the_code_registers(
    dashboard: dict[str, Any], series_labels: dict[str, frozenset[str]]
) -> None:
    checked = 0
    for title, expr, legend in queries(dashboard):
        names = set(METRIC_NAME.findall(expr))
        assert names, f"{title}: {expr!r} names no vsa metric"
        unknown = sorted(names - set(series_labels))
        assert not unknown, f"{title}: {unknown} are not registered by any vsa metrics class"
        available = set().union(*(series_labels[n] for n in names))
        grouped, matched = labels_used(expr)
        assert grouped | matched <= available, (
            f"{title}: labels {sorted((grouped | matched) - available)} are not on {sorted(names)}"
        )
        legend_labels = set(LEGEND_LABEL.findall(legend))
        # a legend can only show labels the aggregation kept
        assert legend_labels <= (grouped or available), f"{title}: legend {legend!r} vs {expr!r}"
        checked += 1
    assert checked >= 20


def test_the_dashboard_covers_the_issues_subjects(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(expr for _, expr, _ in queries(dashboard))
    missing = {what: name for what, name in REQUIRED.items() if name not in exprs}
    assert not missing, f"no panel shows {missing}"


def test_the_metric_check_catches_a_wrong_name(series_labels: dict[str, frozenset[str]]) -> None:
    """Guard against a check that accepts anything: real names pass, invented ones do not."""
    assert "vsa_consumer_lag" in series_labels
    assert "vsa_processing_seconds_bucket" in series_labels
    assert "le" in series_labels["vsa_processing_seconds_bucket"]
    assert "vsa_dead_letters_total" in series_labels
    assert "vsa_dead_letter_total" not in series_labels  # the singular is not a metric
    assert "vsa_consumer_lag_total" not in series_labels  # a gauge has no _total
    assert "camera_id" in series_labels["vsa_frames_dropped_total"]
    assert "camera_id" not in series_labels["vsa_consumer_lag"]
    assert {"route", "method", "status"} == series_labels["vsa_api_requests_total"]
    assert "service" not in series_labels["vsa_api_request_seconds_bucket"]
    assert "vsa_api_stream_clients_total" not in series_labels  # a gauge


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    """What Grafana needs to load it as provisioned: a uid, unique panel ids, panels inside the
    24-column grid without overlaps, every query on the datasource variable, every variable a
    query uses defined."""
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    assert "__inputs" not in dashboard  # an export for import; a sidecar needs none
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "service"} <= variables
    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0, panel["title"]
        assert 0 <= grid["x"] <= 24 - grid["w"], panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for col in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, col) not in cells, f"{panel['title']} overlaps {cells[(row, col)]}"
                cells[(row, col)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what it shows"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            used = set(re.findall(r"\$([a-z_]+)", target["expr"])) - {"__rate_interval", "__range"}
            assert used <= variables, f"{panel['title']}: {used - variables} undefined"


def test_off_by_default(render: Renderer) -> None:
    assert not [d for d in render().of_kind("ConfigMap") if d["metadata"]["name"] == CONFIGMAP]


def test_rendered_configmap(render: Renderer) -> None:
    sets = [
        "metrics.grafanaDashboard.enabled=true",
        "metrics.grafanaDashboard.annotations.grafana_folder=vsa",
        "metrics.grafanaDashboard.namespace=monitoring",
    ]
    configmap = render(sets=sets).get("ConfigMap", CONFIGMAP)
    kubernetes_validate.validate(configmap, "1.37", strict=True)
    meta = configmap["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["annotations"] == {"grafana_folder": "vsa"}
    assert meta["namespace"] == "monitoring"
    assert list(configmap["data"]) == ["vsa-pipeline.json"]
    assert json.loads(configmap["data"]["vsa-pipeline.json"]) == json.loads(DASHBOARD.read_text())
    plain = render(sets=sets[:1]).get("ConfigMap", CONFIGMAP)["metadata"]
    assert "namespace" not in plain
    assert "annotations" not in plain


def test_the_sidecar_label_can_be_changed(render: Renderer) -> None:
    sets = ["metrics.grafanaDashboard.enabled=true", "metrics.grafanaDashboard.labels.team=video"]
    labels = render(sets=sets).get("ConfigMap", CONFIGMAP)["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"
    assert labels["team"] == "video"


def test_dashboard_file_is_in_the_chart() -> None:
    """helm packages every file of the chart not in .helmignore; the dashboard must be one."""
    ignore = CHART / ".helmignore"
    patterns = ignore.read_text().split() if ignore.exists() else []
    assert not any(Path("dashboards/vsa-pipeline.json").match(p) for p in patterns)
