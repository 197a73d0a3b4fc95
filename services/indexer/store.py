"""OpenSearch I/O of the indexer and search: the client, index templates and indices, bulk.

Templates are written at every start (``PUT`` is idempotent) and the indices created when
missing, so a fresh cluster, or one where someone deleted an index, gets the documented mapping
back. An existing index is never changed; a mapping that differs from the settings (engine,
m, ef_construction, dimension) is logged, because HNSW parameters only change by reindexing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError

from vsa.runtime.logs import event
from vsa.runtime.settings import OpenSearchSettings
from vsa.services.appearance.settings import EMBEDDING_DIMS as APPEARANCE_DIMS

from .mapping import (
    F_EMBEDDING,
    alerts_mapping,
    captions_mapping,
    captions_settings,
    counts_mapping,
    index_settings,
    index_template,
    objects_mapping,
)
from .settings import IndexerSettings

log = logging.getLogger("vsa.indexer.store")

#: One bulk action: (metadata line, source line), as the bulk API takes them.
Action = tuple[dict[str, Any], dict[str, Any]]


#: A node attribute ``absent`` means the node cannot run faiss/nmslib indices (the vsa devstack
#: sets it; see vsa/devstack/opensearch.py).
KNN_NATIVE_LIBS_ATTR = "knn_native_libs"


class EngineUnavailableError(Exception):
    """The configured k-NN engine cannot run on this cluster."""


class BulkResponseError(Exception):
    """A bulk response that does not match its request (retried like a failed request)."""


#: Connections kept open to the node: the client's default of one made concurrent callers (the
#: API answering the console's thumbnail requests) open and drop a connection each time, with a
#: urllib3 "Connection pool is full" warning per request.
POOL_SIZE = 10


def make_client(settings: OpenSearchSettings, timeout_s: float) -> Any:
    """An OpenSearch client that does not retry by itself (callers decide how to retry).

    The client library logs every request at INFO and every failure with a traceback at
    WARNING; vsa logs one structured event per failure instead, so its logger is set to ERROR.
    """
    logging.getLogger("opensearch").setLevel(logging.ERROR)
    auth = None
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = (settings.username, password)
    return OpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ca_certs=settings.ca_certs,
        timeout=timeout_s,
        max_retries=0,
        retry_on_timeout=False,
        pool_maxsize=POOL_SIZE,
    )


def index_bodies(settings: IndexerSettings) -> dict[str, dict[str, Any]]:
    """Index name -> ``{"settings", "mappings"}`` for every index the indexer writes."""
    common = (settings.shards, settings.replicas, settings.refresh_interval)
    bodies = {
        settings.index.captions_index: {
            "settings": captions_settings(settings.hnsw, *common),
            "mappings": captions_mapping(settings.hnsw, settings.caption_analyzer),
        }
    }
    if settings.consume_alerts:
        bodies[settings.index.alerts_index] = {
            "settings": index_settings(*common),
            "mappings": alerts_mapping(),
        }
    if settings.consume_counts:
        bodies[settings.index.counts_index] = {
            "settings": index_settings(*common),
            "mappings": counts_mapping(),
        }
    if settings.index_objects:
        bodies[settings.index.objects_index] = {
            "settings": captions_settings(settings.hnsw, *common),
            "mappings": objects_mapping(settings.hnsw, APPEARANCE_DIMS),
        }
    return bodies


def check_engine(client: Any, engine: str) -> None:
    """Refuse a native k-NN engine (faiss, nmslib) on nodes that say they lack it: the index
    would be created without complaint and the node's JVM would die on its first refresh."""
    if engine == "lucene":
        return
    attrs = client.cat.nodeattrs(format="json", h="node,attr,value")
    nodes = sorted(
        a.get("node", "?")
        for a in attrs
        if a.get("attr") == KNN_NATIVE_LIBS_ATTR and a.get("value") == "absent"
    )
    if nodes:
        raise EngineUnavailableError(
            f"hnsw.engine {engine!r} needs the k-NN plugin's native libraries, which "
            f"OpenSearch node(s) {', '.join(nodes)} lack (node.attr.{KNN_NATIVE_LIBS_ATTR}: "
            "absent, as on the local devstack): set hnsw.engine to 'lucene' "
            "(VSA_INDEXER_HNSW__ENGINE=lucene)"
        )


def ensure_indices(client: Any, settings: IndexerSettings) -> list[str]:
    """Write the index templates and create missing indices; returns the names created.

    Raises:
        EngineUnavailableError: the cluster cannot run ``settings.hnsw.engine``.
    """
    check_engine(client, settings.hnsw.engine)
    created = []
    for name, body in index_bodies(settings).items():
        template = index_template(f"{name}*", body["settings"], body["mappings"])
        client.indices.put_index_template(name=name, body=template)
        if client.indices.exists(index=name):
            _check_existing(client, name, body["mappings"])
            continue
        try:
            client.indices.create(index=name, body=body)
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            continue  # another pod created it at the same time
        created.append(name)
        event(log, "index_created", index=name)
    return created


def _check_existing(client: Any, name: str, wanted: Mapping[str, Any]) -> None:
    wanted_vector = wanted["properties"].get(F_EMBEDDING)
    if wanted_vector is None:
        return
    mappings = client.indices.get_mapping(index=name)
    for index, body in mappings.items():
        actual = body.get("mappings", {}).get("properties", {}).get(F_EMBEDDING)
        if actual != wanted_vector:
            event(
                log,
                "index_mapping_differs",
                logging.WARNING,
                index=index,
                existing=actual,
                configured=wanted_vector,
                hint="HNSW parameters change only by reindexing into a new index",
            )


def bulk(client: Any, actions: Sequence[Action], timeout_s: float) -> list[dict[str, Any]]:
    """Send one bulk request; returns its items in request order.

    Raises the client's exceptions for request-level failures (connection refused, timeout,
    5xx for the whole request); per-document failures are in the items.
    """
    body: list[dict[str, Any]] = []
    for meta, source in actions:
        body.append(meta)
        body.append(source)
    response = client.bulk(body=body, request_timeout=timeout_s)
    items: list[dict[str, Any]] = response.get("items", [])
    if len(items) != len(actions):
        raise BulkResponseError(f"bulk answered {len(items)} items for {len(actions)} actions")
    return items
