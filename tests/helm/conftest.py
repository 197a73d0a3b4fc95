"""Fixtures of the chart tests: a helm binary built from the Go module proxy, and rendering.

``helm`` comes from ``scripts/install-helm-tools.sh`` (``go install helm.sh/helm/v3/cmd/helm`` into
``~/.cache/vsa/tools``): minutes the first time on a fresh machine, instant afterwards. Nothing
here is skipped: a machine without Go fails these tests with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "vsa"
INSTALL_SCRIPT = ROOT / "scripts" / "install-helm-tools.sh"
RELEASE = "vsa"
NAMESPACE = "video"
#: The value profiles rendered by the tests: name -> values files (relative to the chart).
PROFILES: dict[str, tuple[str, ...]] = {
    "default": (),
    "gpu": ("ci/gpu-values.yaml",),
    "autoscaling": ("ci/autoscaling-values.yaml",),
}
#: A cold `go install` of helm takes ~2 minutes on the 2-core machines; leave room for a busy one.
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Rendered:
    """The manifests of one `helm template` run, with lookups by kind and name."""

    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        matches = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: found {len(matches)} in {self.names()}"
        return matches[0]

    def names(self) -> list[str]:
        return sorted(f"{doc['kind']}/{doc['metadata']['name']}" for doc in self.docs)


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path of the helm binary, built once into the cache by the install script."""
    try:
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{INSTALL_SCRIPT.name} did not finish in {INSTALL_TIMEOUT_S} s: {exc}")
    if result.returncode != 0:
        pytest.fail(f"{INSTALL_SCRIPT.name} failed (exit {result.returncode}):\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"the install script printed {path}, which is not a file"
    return path


HelmRunner = Callable[..., HelmResult]


@pytest.fixture(scope="session")
def run_helm(helm: Path) -> HelmRunner:
    """Run ``helm ARGS...`` in the repository root."""

    def run(*args: str) -> HelmResult:
        result = subprocess.run(
            [str(helm), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        return HelmResult(result.returncode, result.stdout, result.stderr)

    return run


def template_args(values_files: Sequence[str] = (), sets: Sequence[str] = ()) -> list[str]:
    """Arguments of ``helm template`` for the chart with values files (chart-relative) and
    overrides: ``key=value`` goes to ``--set``, ``key:=JSON`` to ``--set-json``."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for name in values_files:
        args += ["--values", str(CHART / name)]
    for item in sets:
        key, is_json, value = item.partition(":=")
        args += ["--set-json", f"{key}={value}"] if is_json else ["--set", item]
    return args


Renderer = Callable[..., Rendered]


@pytest.fixture(scope="session")
def render(run_helm: HelmRunner) -> Renderer:
    """Render the chart (must succeed) and parse every manifest."""
    cache: dict[tuple[tuple[str, ...], tuple[str, ...]], Rendered] = {}

    def do_render(values_files: Sequence[str] = (), sets: Sequence[str] = ()) -> Rendered:
        key = (tuple(values_files), tuple(sets))
        if key not in cache:
            result = run_helm(*template_args(values_files, sets))
            assert result.returncode == 0, result.stderr
            docs = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
            cache[key] = Rendered(docs)
        return cache[key]

    return do_render


@pytest.fixture(scope="session", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest, render: Renderer) -> tuple[str, Rendered]:
    """Each values profile with its rendered manifests."""
    name: str = request.param
    return name, render(PROFILES[name])
