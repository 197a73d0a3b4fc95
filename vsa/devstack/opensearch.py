"""The local OpenSearch node: minimal distribution + lang-painless + k-NN, on 127.0.0.1.

Maven Central has the minimal distribution (``integ-test-zip``) and the k-NN plugin zip, but the
lang-painless module that k-NN extends only as jars; :func:`install_opensearch` assembles that
module folder from the jars before installing k-NN with ``opensearch-plugin``. The plugin zip has
no native faiss/nmslib libraries, so local indices use the ``lucene`` engine.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import shutil
import ssl
import stat
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsa.devstack.errors import DevstackError
from vsa.devstack.health import Health
from vsa.devstack.maven import MARKER, MavenDep, extract_zip, is_complete, maven_fetch
from vsa.devstack.procs import RunAs, spawn, tail_text, write_pid
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.tools import Java
from vsa.runtime.settings import OpenSearchSettings

log = logging.getLogger("vsa.devstack")

HOST = "127.0.0.1"
CLUSTER_NAME = "vsa-devstack"
#: Node attribute saying the node's k-NN plugin lacks native engines (see _node_argv).
KNN_NATIVE_LIBS_ATTR = "knn_native_libs"
KNN_COMPONENT = "opensearch-knn"
_PAINLESS_SECURITY_POLICY = """grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""


@dataclass(frozen=True)
class OpenSearchPaths:
    """Downloaded artifacts, the node's own folder (home, data, logs, tmp), its log and pid."""

    artifacts: Path
    root: Path
    state: Path
    version: str

    @property
    def home(self) -> Path:
        return self.root / f"opensearch-{self.version}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def log(self) -> Path:
        return self.state / "opensearch.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "opensearch.pid"


def opensearch_paths(settings: DevstackSettings) -> OpenSearchPaths:
    """The node's paths (absolute, symlinks resolved)."""
    version = settings.opensearch_version
    return OpenSearchPaths(
        artifacts=settings.cache_dir.resolve() / f"opensearch-{version}-artifacts",
        root=settings.opensearch_path.resolve(),
        state=settings.state_path.resolve() / "opensearch",
        version=version,
    )


def opensearch_url(settings: DevstackSettings) -> str:
    """Base URL of the local node's HTTP API."""
    return f"http://{HOST}:{settings.opensearch_port}"


def cmd_marker(settings: DevstackSettings) -> str:
    """The argument that identifies our node's command line (its data path setting)."""
    return f"path.data={opensearch_paths(settings).data}"


def fetch_opensearch(settings: DevstackSettings) -> Path:
    """Distribution zip, k-NN zip and lang-painless jars in the cache (once). Returns the folder."""
    version = settings.opensearch_version
    deps = [
        MavenDep("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip",
                 exclude_all=True),
        MavenDep("org.opensearch.plugin", "opensearch-knn", settings.knn_version, "zip",
                 exclude_all=True),
        # lang-painless with antlr, asm and the painless SPI, but not OpenSearch's own jars.
        MavenDep("org.opensearch.plugin", "lang-painless", version,
                 exclude_groups=("org.opensearch",)),
    ]  # fmt: skip
    dest = opensearch_paths(settings).artifacts
    return maven_fetch(f"OpenSearch {version} with k-NN", deps, dest, ".", settings.fetch_timeout_s)


def render_painless_descriptor(version: str) -> str:
    """``plugin-descriptor.properties`` of the lang-painless module for OpenSearch ``version``."""
    return (
        "description=An easy, safe and fast scripting language for OpenSearch\n"
        f"version={version}\nname=lang-painless\nclassname=org.opensearch.painless.PainlessPlugin\n"
        f"java.version=11\nopensearch.version={version}\nextended.plugins=\n"
        "has.native.controller=false\n"
    )


def _build_painless_module(artifacts: Path, home: Path, version: str) -> None:
    module = home / "modules" / "lang-painless"
    module.mkdir(parents=True, exist_ok=True)
    jars = sorted(artifacts.glob("*.jar"))
    if not any(j.name.startswith("lang-painless-") for j in jars):
        raise DevstackError(f"lang-painless jar missing from {artifacts}; delete it and retry")
    for jar in jars:
        shutil.copy2(jar, module / jar.name)
    (module / "plugin-descriptor.properties").write_text(render_painless_descriptor(version))
    (module / "plugin-security.policy").write_text(_PAINLESS_SECURITY_POLICY)


def _install_knn(home: Path, knn_zip: Path, java: Java) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENSEARCH_JAVA_HOME": str(java.home)}
    argv = [str(home / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise DevstackError(
            f"installing the k-NN plugin failed (exit {proc.returncode}):\n"
            + tail_text(proc.stdout + proc.stderr, 20)
        )


def install_opensearch(settings: DevstackSettings, java: Java) -> Path:
    """Unpack OpenSearch and add lang-painless and k-NN, once. Returns the OpenSearch home."""
    paths = opensearch_paths(settings)
    if is_complete(paths.home):
        return paths.home
    artifacts = fetch_opensearch(settings)
    log.info("installing OpenSearch %s with k-NN", paths.version, extra={"home": str(paths.home)})
    paths.root.mkdir(parents=True, exist_ok=True)
    partial = paths.home.with_name(paths.home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(paths.home, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=paths.root) as unpack:
        extract_zip(artifacts / f"opensearch-{paths.version}.zip", Path(unpack))
        (Path(unpack) / f"opensearch-{paths.version}").rename(partial)
    _build_painless_module(artifacts, partial, paths.version)
    _install_knn(partial, artifacts / f"opensearch-knn-{settings.knn_version}.zip", java)
    (partial / MARKER).write_text(f"OpenSearch {paths.version} + k-NN\n")
    partial.rename(paths.home)
    return paths.home


def runtime_user(settings: DevstackSettings) -> RunAs | None:
    """Who OpenSearch runs as: None (the caller) unless root; then ``opensearch_user``,
    created as a system user on first use."""
    if os.geteuid() != 0:
        return None
    name = settings.opensearch_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        log.info("creating system user for OpenSearch", extra={"user": name})
        argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DevstackError(
                f"OpenSearch cannot run as root and creating user {name} failed: "
                f"{proc.stderr.strip()}; create it or run as a normal user"
            ) from None
        entry = pwd.getpwnam(name)
    return RunAs(user=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _can_enter(folder: Path, run_as: RunAs) -> bool:
    st = folder.stat()
    return bool(
        st.st_mode & stat.S_IXOTH or (st.st_uid == run_as.uid and st.st_mode & stat.S_IXUSR)
    )


def java_for(java: Java, run_as: RunAs | None, root: Path) -> Java:
    """``java``, or when OpenSearch runs as ``run_as`` and cannot reach it (a bundled runtime in
    root's cache, ``/root/.cache/vsa/java-runtime``), a copy in the node's folder, made once."""
    if run_as is None or all(_can_enter(f, run_as) for f in (java.home, *java.home.parents)):
        return java
    copy = root / "java-runtime"
    if not is_complete(copy):
        log.info(
            "copying the Java runtime where OpenSearch's user reaches it", extra={"to": str(copy)}
        )
        partial = copy.with_name(copy.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(java.home, partial, symlinks=True)
        (partial / MARKER).write_text(f"copy of {java.home}\n")
        partial.rename(copy)
    return Java(executable=copy / "bin" / "java", home=copy, major=java.major)


def _check_reachable(root: Path, run_as: RunAs) -> None:
    for parent in root.parents:
        if _can_enter(parent, run_as):
            continue
        raise DevstackError(
            f"OpenSearch runs as {run_as.user}, who cannot enter {parent} "
            f"(mode {stat.filemode(parent.stat().st_mode)}), so it cannot reach {root}: set "
            "VSA_DEVSTACK_OPENSEARCH_DIR to a folder outside it (default /var/lib/vsa-devstack)"
        )


def preflight(settings: DevstackSettings) -> RunAs | None:
    """Check, before anything starts, that OpenSearch can run: the user it runs as (created
    when the caller is root) and that this user can reach the node's folder. Returns that user
    (None: the caller)."""
    run_as = runtime_user(settings)
    if run_as is not None:
        root = opensearch_paths(settings).root
        root.mkdir(parents=True, exist_ok=True)
        _check_reachable(root, run_as)
    return run_as


def _chown_tree(root: Path, run_as: RunAs) -> None:
    for folder, dirs, files in os.walk(root):
        for name in (folder, *(os.path.join(folder, n) for n in (*dirs, *files))):
            if os.lstat(name).st_uid != run_as.uid:
                os.lchown(name, run_as.uid, run_as.gid)


def _node_argv(settings: DevstackSettings, paths: OpenSearchPaths) -> list[str]:
    options = {
        "cluster.name": CLUSTER_NAME,
        "node.name": CLUSTER_NAME,
        "network.host": HOST,
        "http.port": settings.opensearch_port,
        "transport.port": settings.opensearch_transport_port,
        "discovery.type": "single-node",
        "path.data": paths.data,
        "path.logs": paths.logs,
        # A laptop disk over 90 % full must not turn the dev indices read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        # The k-NN plugin from Maven has no native libraries: a faiss or nmslib index crashes
        # the JVM on its first refresh. The indexer reads this attribute and refuses them.
        f"node.attr.{KNN_NATIVE_LIBS_ATTR}": "absent",
    }
    argv = [str(paths.home / "bin" / "opensearch")]
    for key, value in options.items():
        argv += ["-E", f"{key}={value}"]
    return argv


def start_opensearch(settings: DevstackSettings, java: Java) -> int:
    """Install once, prepare folders, start the node detached; returns its pid (no waiting)."""
    paths = opensearch_paths(settings)
    run_as = preflight(settings)
    install_opensearch(settings, java)
    for folder in (paths.data, paths.logs, paths.tmp, paths.state):
        folder.mkdir(parents=True, exist_ok=True)
    java = java_for(java, run_as, paths.root)
    if run_as is not None:
        _chown_tree(paths.root, run_as)
    heap = f"{settings.opensearch_heap_mb}m"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(paths.root),
        "OPENSEARCH_JAVA_HOME": str(java.home),
        "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        "OPENSEARCH_TMPDIR": str(paths.tmp),
        "OPENSEARCH_PATH_CONF": str(paths.home / "config"),
    }
    pid = spawn(_node_argv(settings, paths), paths.log, env, cwd=paths.home, run_as=run_as)
    write_pid(paths.pid_file, pid)
    log.info("started OpenSearch", extra={"pid": pid, "url": opensearch_url(settings)})
    return pid


def _get_json(url: str, conn: OpenSearchSettings | None, timeout_s: float) -> Any:
    # The scheme is http(s) by construction (OpenSearchSettings checks it; ours is http).
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    context = None
    if conn is not None and conn.username:
        secret = conn.password.get_secret_value() if conn.password else ""
        token = base64.b64encode(f"{conn.username}:{secret}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=conn.ca_certs if conn else None)
        if conn is not None and not conn.verify_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:  # noqa: S310
        return json.load(resp)


def opensearch_health(base_url: str, conn: OpenSearchSettings | None, timeout_s: float) -> Health:
    """Healthy when ``/_cluster/health`` is green or yellow and the k-NN plugin is installed.

    ``conn`` carries credentials and TLS options for an external cluster (None: plain HTTP).
    """
    try:
        status = _get_json(f"{base_url}/_cluster/health", conn, timeout_s).get("status")
        if status not in ("green", "yellow"):
            return Health(False, f"cluster status {status}")
        plugins = _get_json(f"{base_url}/_cat/plugins?format=json", conn, timeout_s)
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    knn = [p for p in plugins if isinstance(p, dict) and p.get("component") == KNN_COMPONENT]
    if not knn:
        return Health(False, f"cluster {status} but the {KNN_COMPONENT} plugin is not installed")
    return Health(True, f"cluster {status}, {KNN_COMPONENT} {knn[0].get('version')}")
