"""Search latency and recall on a 100,000-document captions index (local OpenSearch, lucene HNSW).

The corpus: ``--unique`` distinct synthetic scene descriptions (20,000 by default) are embedded
with the real all-MiniLM-L6-v2 (cached under ~/.cache/vsa/bench). Each of the ``--docs``
documents takes one of them (each used docs/unique times) plus Gaussian noise of norm
~``--noise`` (0.2: cosine ~0.98 to its caption), renormalised and rounded to 6 decimals exactly
as the indexer sends vectors; so near-duplicate captions form tight clusters, the hard case
for HNSW. Metadata: 50 cameras, capture times spread over 30 days, classes from the caption.
Thumbnails are 2 KB. The index is built by the indexer's own mapping (``ensure_indices``),
refreshed and force-merged to one segment.

Queries: ``--queries`` other synthetic descriptions (not in the corpus), embedded once. Each is
run as the k-NN query ``vsa search`` sends (k = 10, size 10, filters inside the knn clause),
timed on the client (request + response parsing), for three filter cases:

- none;
- broad: class ``person`` and a 15-day window (~25 % of the documents);
- narrow: 5 of the 50 cameras and a 7-day window (~2 %).

Recall@10 compares the returned ids with exact brute force (numpy dot products over all
vectors with the same filter). Usage::

    python benchmarks/search.py [--docs 100000] [--ef 10 32 64 100 200] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vsa.runtime.settings import OpenSearchSettings
from vsa.services.indexer.embedder import SentenceEmbedder
from vsa.services.indexer.mapping import caption_doc_id, vector_json
from vsa.services.indexer.search import Searcher, SearchQuery, knn_body
from vsa.services.indexer.settings import (
    EmbeddingSettings,
    HnswSettings,
    IndexerSettings,
    IndexNames,
    SearchSettings,
)
from vsa.services.indexer.store import bulk, ensure_indices, make_client
from vsa.services.indexer.synthetic import scene_description

CACHE = Path.home() / ".cache" / "vsa" / "bench"
CAMERAS = 50
DAY_S = 86_400
T0 = 1_760_000_000.0  # 2025-10-09
K = 10
Matrix = NDArray[np.float32]


@dataclass
class Corpus:
    """The documents as arrays: vectors (n, 384), camera (n,), capture time s (n,), person (n,)."""

    texts: list[str]
    vectors: Matrix
    camera: NDArray[np.int64]
    ts: NDArray[np.float64]
    person: NDArray[np.bool_]
    base: NDArray[np.int64]


def embed_cached(texts: list[str], embedder: SentenceEmbedder) -> Matrix:
    """Embeddings of ``texts``, cached on disk by a hash of the texts."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"minilm-{len(texts)}-{key}.npy"
    if path.exists():
        cached: Matrix = np.load(path)
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s")
    np.save(path, vectors)
    return vectors


def distinct_descriptions(
    n: int, seed: int, exclude: frozenset[str] = frozenset()
) -> list[tuple[str, dict[str, int]]]:
    """n distinct synthetic descriptions with their class counts, none of them in exclude."""
    rng = random.Random(seed)
    found: dict[str, dict[str, int]] = {}
    while len(found) < n:
        text, counts = scene_description(rng)
        if text not in exclude:
            found.setdefault(text, counts)
    return list(found.items())


def build_corpus(docs: int, unique: int, noise: float, embedder: SentenceEmbedder) -> Corpus:
    described = distinct_descriptions(unique, seed=5)
    texts = [t for t, _ in described]
    base_vectors = embed_cached(texts, embedder)
    rng = np.random.default_rng(7)
    base = np.arange(docs) % unique
    rng.shuffle(base)
    jitter = rng.standard_normal((docs, base_vectors.shape[1])).astype(np.float32)
    vectors = base_vectors[base] + jitter * (noise / np.sqrt(base_vectors.shape[1]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.round(vectors.astype(np.float64), 6).astype(np.float32)  # as sent
    person = np.array(["person" in described[b][1] for b in base])
    ts = T0 + rng.uniform(0, 30 * DAY_S, docs)
    camera = rng.integers(0, CAMERAS, docs)
    return Corpus(texts, vectors, camera, ts, person, base)


def document(corpus: Corpus, i: int, thumb: str) -> dict[str, Any]:
    """The same fields as ``caption_document`` (which needs a Caption), from the arrays."""
    camera = f"cam-{corpus.camera[i]}"
    return {
        "camera_id": camera,
        "frame_seq": i,
        "capture_time": round(float(corpus.ts[i]) * 1000),
        "caption": corpus.texts[corpus.base[i]],
        "captioner": "synthetic",
        "classes": ["person"] if corpus.person[i] else [],
        "objects": [],
        "track_ids": [i % 500 + 1],
        "alert_kinds": [],
        "frame": {
            "topic": "frames",
            "partition": 0,
            "offset": i,
            "camera_id": camera,
            "frame_seq": i,
        },
        "thumbnail_jpeg": thumb,
        "indexed_at": round(time.time() * 1000),
        "embedding": vector_json(corpus.vectors[i]),
    }


def load_index(client: Any, settings: IndexerSettings, corpus: Corpus, chunk: int = 500) -> None:
    """Bulk-load the corpus (refresh off), then refresh and force-merge to one segment."""
    index = settings.index.captions_index
    ensure_indices(client, settings)
    thumb = "/9j/" + "A" * 2700  # ~2 KB of JPEG, base64
    started = time.perf_counter()
    for lo in range(0, len(corpus.vectors), chunk):
        actions = [
            (
                {"index": {"_index": index, "_id": caption_doc_id(f"cam-{corpus.camera[i]}", i)}},
                document(corpus, i, thumb),
            )
            for i in range(lo, min(lo + chunk, len(corpus.vectors)))
        ]
        bulk(client, actions, 300)
    loaded = time.perf_counter() - started
    client.indices.refresh(index=index, request_timeout=300)
    segments = len(client.cat.segments(index=index, format="json"))
    started = time.perf_counter()
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    client.indices.refresh(index=index, request_timeout=300)  # make the merged segment live
    print(
        f"loaded {len(corpus.vectors)} docs in {loaded:.0f} s ({segments} segments), "
        f"force-merged to 1 in {time.perf_counter() - started:.0f} s"
    )


@dataclass
class Case:
    """One filter case: a query per query vector, and which documents each may return."""

    name: str
    queries: list[SearchQuery]
    masks: list[NDArray[np.bool_]]


def _window(rng: random.Random, days: int) -> tuple[float, float]:
    start = T0 + rng.uniform(0, 30 - days) * DAY_S
    return start, start + days * DAY_S


def make_cases(corpus: Corpus, texts: list[str], seed: int = 3) -> list[Case]:
    """The no-filter, broad and narrow cases, one random window (and cameras) per query."""
    from datetime import datetime, timezone

    rng = random.Random(seed)
    millis = np.round(corpus.ts * 1000)
    everything = np.ones(len(corpus.vectors), dtype=bool)
    cases = [Case("none", [SearchQuery(text=t, k=K) for t in texts], [everything] * len(texts))]
    broad, narrow = Case("broad", [], []), Case("narrow", [], [])
    for text in texts:
        lo, hi = _window(rng, 15)
        when = {
            "since": datetime.fromtimestamp(lo, timezone.utc),
            "until": datetime.fromtimestamp(hi, timezone.utc),
        }
        query = SearchQuery(text=text, k=K, classes=("person",), **when)
        broad.queries.append(query)
        broad.masks.append(
            corpus.person & (millis >= round(lo * 1000)) & (millis <= round(hi * 1000))
        )
        lo, hi = _window(rng, 7)
        cams = rng.sample(range(CAMERAS), 5)
        when = {
            "since": datetime.fromtimestamp(lo, timezone.utc),
            "until": datetime.fromtimestamp(hi, timezone.utc),
        }
        query = SearchQuery(text=text, k=K, cameras=tuple(f"cam-{c}" for c in cams), **when)
        narrow.queries.append(query)
        in_window = (millis >= round(lo * 1000)) & (millis <= round(hi * 1000))
        narrow.masks.append(np.isin(corpus.camera, cams) & in_window)
    return [*cases, broad, narrow]


def exact_top(vectors: Matrix, query: Matrix, mask: NDArray[np.bool_]) -> set[int]:
    """Brute force: the K documents with the highest cosine among those the filter allows."""
    scores = vectors @ query
    scores[~mask] = -np.inf
    top = np.argpartition(-scores, K)[:K]
    return {int(i) for i in top if np.isfinite(scores[i])}


def run_case(
    client: Any, index: str, case: Case, qvecs: Matrix, hnsw: HnswSettings
) -> tuple[list[float], list[set[int]]]:
    """Latency (ms, client side) and returned document numbers of every query of a case."""
    latencies: list[float] = []
    found: list[set[int]] = []
    for query, vector in zip(case.queries, qvecs, strict=True):
        body = knn_body(vector.tolist(), query, K, hnsw.ef_search, hnsw.engine)
        started = time.perf_counter()
        response = client.search(index=index, body=body, request_timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({int(h["_id"].rsplit(":", 1)[1]) for h in response["hits"]["hits"]})
    return latencies, found


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure(
    client: Any,
    index: str,
    corpus: Corpus,
    cases: list[Case],
    qvecs: Matrix,
    efs: list[int],
    m: int,
    efc: int,
) -> list[tuple[str, float, int, float, float, float]]:
    """For each case and ef_search: (case, mean matching docs, ef, p50 ms, p99 ms, recall@10)."""
    rows = []
    for case in cases:
        truth = [
            exact_top(corpus.vectors, q, mask) for q, mask in zip(qvecs, case.masks, strict=True)
        ]
        matching = float(np.mean([mask.sum() for mask in case.masks]))
        run_case(client, index, case, qvecs, HnswSettings(ef_search=max(efs)))  # warm-up
        for ef in efs:
            hnsw = HnswSettings(m=m, ef_construction=efc, ef_search=ef)
            latencies, found = run_case(client, index, case, qvecs, hnsw)
            recall = float(
                np.mean([len(f & t) / max(len(t), 1) for f, t in zip(found, truth, strict=True)])
            )
            rows.append(
                (
                    case.name,
                    matching,
                    ef,
                    percentile(latencies, 50),
                    percentile(latencies, 99),
                    recall,
                )
            )
    return rows


def end_to_end(client: Any, names: IndexNames, texts: list[str], ef: int) -> tuple[float, float]:
    """p50/p99 ms of Searcher.search (embed the text with the search settings' embedder, one
    torch thread, + k-NN query), no filter."""
    settings = SearchSettings(index=names, hnsw=HnswSettings(ef_search=ef))
    searcher = Searcher(client, SentenceEmbedder(settings.embedding), settings)
    latencies = []
    for text in texts:
        started = time.perf_counter()
        searcher.search(SearchQuery(text=text, k=K))
        latencies.append((time.perf_counter() - started) * 1000)
    return percentile(latencies, 50), percentile(latencies, 99)


def searchable_segments(client: Any, index: str) -> int:
    segments = client.cat.segments(index=index, format="json")
    return sum(1 for seg in segments if seg.get("searchable") == "true")


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def prepare_index(client: Any, args: argparse.Namespace, corpus: Corpus) -> IndexNames:
    names = IndexNames(prefix=f"bench-search-{args.docs}-m{args.m}-efc{args.ef_construction}-")
    index = names.captions_index
    exists = args.keep and client.indices.exists(index=index)
    if exists and int(client.count(index=index)["count"]) == args.docs:
        client.indices.refresh(index=index, request_timeout=300)
        print(f"reusing {index}")
        return names
    client.indices.delete(index=index, ignore_unavailable=True)
    settings = IndexerSettings(
        opensearch=OpenSearchSettings(),
        index=names,
        hnsw=HnswSettings(m=args.m, ef_construction=args.ef_construction),
        refresh_interval="-1",
        consume_alerts=False,
    )
    load_index(client, settings, corpus)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--unique", type=int, default=20_000, help="Distinct captions embedded.")
    parser.add_argument("--noise", type=float, default=0.2, help="Norm of the per-doc noise.")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ef", type=int, nargs="+", default=[10, 32, 64, 100, 200])
    parser.add_argument("--e2e-ef", type=int, default=100, help="ef_search of the e2e row.")
    parser.add_argument("--keep", action="store_true", help="Keep and reuse the index.")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {load()}")
    embedder = SentenceEmbedder(EmbeddingSettings())
    corpus = build_corpus(args.docs, args.unique, args.noise, embedder)
    client = make_client(OpenSearchSettings(), 300)
    names = prepare_index(client, args, corpus)
    described = distinct_descriptions(args.queries, seed=99, exclude=frozenset(corpus.texts))
    texts = [t for t, _ in described]
    qvecs = embedder.encode(texts)
    cases = make_cases(corpus, texts)
    rows = measure(
        client, names.captions_index, corpus, cases, qvecs, args.ef, args.m, args.ef_construction
    )
    p50, p99 = end_to_end(client, names, texts, args.e2e_ef)
    segments = searchable_segments(client, names.captions_index)
    print_table(rows, args, p50, p99, segments)
    print(f"after: {load()}")
    if not args.keep:
        client.indices.delete(index=names.captions_index)
        client.indices.delete_index_template(name=names.captions_index, ignore=404)


def print_table(
    rows: list[tuple[str, float, int, float, float, float]],
    args: argparse.Namespace,
    p50: float,
    p99: float,
    segments: int,
) -> None:
    print(
        f"\n{args.docs} docs, lucene HNSW m={args.m} ef_construction={args.ef_construction}, "
        f"{segments} segment(s), k={K}, {args.queries} queries per row"
    )
    header = ("filter", "matching docs", "ef_search", "p50 ms", "p99 ms", "recall@10")
    print(
        f"{header[0]:<8}{header[1]:>15}{header[2]:>11}{header[3]:>9}{header[4]:>9}{header[5]:>11}"
    )
    for name, matching, ef, q50, q99, recall in rows:
        print(f"{name:<8}{matching:>15.0f}{ef:>11}{q50:>9.1f}{q99:>9.1f}{recall:>11.3f}")
    print(
        f"end to end (embed query + k-NN, no filter, ef_search {args.e2e_ef}): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    main()
