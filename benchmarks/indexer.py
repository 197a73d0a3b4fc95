"""Indexer throughput, embedding included: the real batched indexer next to a per-document loop
(embed one caption, index one document), in the same process and the same run.

- batched indexer: synthetic captions (varied scene descriptions) are produced to a Kafka topic
  first (not timed); then the real ``vsa indexer`` loop consumes them in batches of
  ``--batch``, embeds each batch in one pass, bulk-writes it and commits. Timed from the start
  of the first batch to the end of the last one (consume, decode, embed, bulk, commit).
- per-document loop (baseline): for each caption, ``encode([text])`` then one ``index`` request.
- two breakdown rows of the batched path: embedding only (same texts, same batches) and bulk
  only (vectors computed beforehand).

Each of ``--precisions`` (embedding.precision: fp32, bf16, int8) gets its batched row and its
breakdown; the per-document loop runs in fp32 (the plain sentence-transformers default, the
baseline of the ratios) and in the fastest precision measured, so the table separates what
batching gives from what precision gives. Every text is distinct, so the indexer's in-batch
deduplication saves nothing here. Usage::

    python benchmarks/indexer.py [--docs 2000] [--loop-docs 200] [--batch 256]
        [--precisions fp32,bf16,int8] [--write-chunk 256]

``--embed-only`` (no Kafka or OpenSearch: the GPU machine): the embedder alone, each of
``--precisions`` on ``--device`` (e.g. ``--device cuda --precisions fp32,fp16``) next to fp32 on
the CPU in the same run, the baseline of the ratios and the reference of the agreement: captions/s
(``--batch`` texts per ``encode`` call, as the indexer's batches), the cosine of each caption's
vector to its CPU fp32 vector (min and mean), and top-k retrieval agreement: for each query of
``examples/vtest-queries.yaml`` (embedded at the same precision) the share of the reference's
``--top-k`` captions it also ranks in its top k, and how many queries keep the same top 1::

    python benchmarks/indexer.py --embed-only --device cuda --precisions fp32,fp16 \
        [--model-path DIR] [--docs 2000] [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing (the GPU machine)

from vsa.schemas import Caption  # noqa: E402
from vsa.services.indexer.embedder import (  # noqa: E402
    Embedder,
    Vectors,
    cpu_has_native_bf16,
    make_embedder,
)
from vsa.services.indexer.settings import EmbeddingSettings  # noqa: E402
from vsa.services.indexer.synthetic import synthetic_caption  # noqa: E402

if TYPE_CHECKING:  # Kafka and OpenSearch load only for the indexer runs (none on the GPU machine)
    from confluent_kafka import Message

    from vsa.runtime.service import BatchResult
    from vsa.runtime.settings import KafkaSettings
    from vsa.services.indexer.settings import IndexerSettings

Row = tuple[str, int, float]
QUERIES = ROOT / "examples" / "vtest-queries.yaml"


def make_captions(n: int, seed: int) -> list[Caption]:
    """n distinct synthetic captions over 16 cameras, with a small real-size thumbnail."""
    rng = random.Random(seed)
    thumb = b"\xff\xd8\xff\xe0" + bytes(rng.getrandbits(8) for _ in range(6000))
    captions: list[Caption] = []
    seen: set[str] = set()
    while len(captions) < n:
        seq = len(captions)
        caption = synthetic_caption(rng, f"cam-{seq % 16}", seq, 1.76e9 + seq, thumbnail_jpeg=thumb)
        if caption.text not in seen:
            seen.add(caption.text)
            captions.append(caption)
    return captions


def settings_for(prefix: str, batch: int, write_chunk: int = 256) -> IndexerSettings:
    from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames
    from vsa.services.indexer.settings import IndexerSettings, IndexNames

    return IndexerSettings(
        write_chunk=write_chunk,
        kafka=KafkaSettings(),
        opensearch=OpenSearchSettings(),
        topics=TopicNames(prefix=f"{prefix}."),
        index=IndexNames(prefix=f"{prefix}-"),
        group_id=f"{prefix}-indexer",
        max_batch=batch,
        max_wait_ms=200,
        metrics_port=0,
        consume_alerts=False,
        consume_counts=False,
    )


def batched_indexer(
    captions: list[Caption], embedder: Embedder, batch: int, write_chunk: int, label: str
) -> Row:
    """The real indexer loop over Kafka; returns (label, docs, seconds)."""
    from vsa.runtime.kafka import Output, Producer, ensure_topics
    from vsa.runtime.settings import TopicSpec
    from vsa.services.indexer.service import build_indexer

    prefix = f"bench-idx-{uuid.uuid4().hex[:8]}"
    settings = settings_for(prefix, batch, write_chunk)
    topic = settings.topics.name("captions")
    ensure_topics(
        settings.kafka,
        {topic: TopicSpec(partitions=4), settings.topics.dlq("indexer"): TopicSpec()},
    )
    producer = Producer(settings.kafka, "bench")
    for caption in captions:
        producer.produce(Output(topic, caption.camera_id, caption.to_bytes()))
    producer.flush()
    indexer = build_indexer(settings, embedder=embedder, idle_exit_s=3)
    indexer.ensure_indices()
    spans: list[float] = []
    inner = indexer.loop.handler

    def timed(msgs: Sequence[Message]) -> BatchResult:
        spans.append(time.perf_counter())
        result = inner(msgs)
        spans.append(time.perf_counter())
        return result

    indexer.loop.handler = timed
    indexer.loop.run()
    index = settings.index.captions_index
    indexer.client.indices.refresh(index=index)
    indexed = int(indexer.client.count(index=index)["count"])
    cleanup(indexer.client, prefix, settings.kafka, [topic, settings.topics.dlq("indexer")])
    return label, indexed, spans[-1] - spans[0]


def per_document_loop(captions: list[Caption], embedder: Embedder, label: str) -> Row:
    """Baseline: embed one caption, index one document, for each caption."""
    from vsa.services.indexer.mapping import caption_doc_id, caption_document
    from vsa.services.indexer.service import build_indexer
    from vsa.services.indexer.store import make_client

    prefix = f"bench-loop-{uuid.uuid4().hex[:8]}"
    settings = settings_for(prefix, 1)
    client = make_client(settings.opensearch, 30)
    indexer = build_indexer(settings, embedder=embedder, client=client)
    indexer.ensure_indices()
    index = settings.index.captions_index
    started = time.perf_counter()
    for caption in captions:
        vector = embedder.encode([caption.text])[0]
        doc_id = caption_doc_id(caption.camera_id, caption.frame_seq)
        client.index(index=index, id=doc_id, body=caption_document(caption, vector))
    seconds = time.perf_counter() - started
    cleanup(client, prefix)
    return label, len(captions), seconds


def breakdown(captions: list[Caption], embedder: Embedder, batch: int) -> list[Row]:
    """Embedding alone and bulk alone, over the same batches."""
    from vsa.services.indexer.mapping import caption_doc_id, caption_document
    from vsa.services.indexer.service import build_indexer
    from vsa.services.indexer.store import bulk, make_client

    chunks = [captions[i : i + batch] for i in range(0, len(captions), batch)]
    started = time.perf_counter()
    vectors = [embedder.encode([c.text for c in chunk]) for chunk in chunks]
    embed_s = time.perf_counter() - started
    prefix = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    settings = settings_for(prefix, batch)
    client = make_client(settings.opensearch, 60)
    build_indexer(settings, embedder=embedder, client=client).ensure_indices()
    index = settings.index.captions_index
    started = time.perf_counter()
    for chunk, chunk_vectors in zip(chunks, vectors, strict=True):
        actions = [
            (
                {"index": {"_index": index, "_id": caption_doc_id(c.camera_id, c.frame_seq)}},
                caption_document(c, v),
            )
            for c, v in zip(chunk, chunk_vectors, strict=True)
        ]
        bulk(client, actions, 60)
    bulk_s = time.perf_counter() - started
    cleanup(client, prefix)
    n = len(captions)
    return [
        ("  of which: embedding only", n, embed_s),
        ("  of which: bulk only", n, bulk_s),
    ]


def cleanup(client: Any, prefix: str, kafka: KafkaSettings | None = None, topics: Any = ()) -> None:
    client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
    client.indices.delete_index_template(name=f"{prefix}-*", ignore=404)
    if kafka is not None:
        from vsa.runtime.kafka import delete_topics

        delete_topics(kafka, topics)


def cosine_to_reference(vectors: Vectors, reference: Vectors) -> np.ndarray:
    """Cosine of each row of ``vectors`` to the same row of ``reference``, in float64."""
    a, b = vectors.astype(np.float64), reference.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(norms, 1e-12))


def top_k(queries: Vectors, docs: Vectors, k: int) -> np.ndarray:
    """Row indices of each query's ``k`` nearest docs by inner product (cosine for unit rows),
    best first, ties in document order: shape (queries, k)."""
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def retrieval_agreement(got: np.ndarray, want: np.ndarray) -> tuple[float, int]:
    """(mean share of each query's reference top k that ``got`` also has in its top k, queries
    whose top 1 is the reference's)."""
    k = want.shape[1]
    shares = [len(set(g) & set(w)) / k for g, w in zip(got.tolist(), want.tolist(), strict=True)]
    return float(np.mean(shares)), int((got[:, 0] == want[:, 0]).sum())


def embed_rate(embedder: Embedder, texts: list[str], batch: int, passes: int = 3) -> float:
    """Texts/s of ``encode`` over ``texts`` in calls of ``batch``: median of ``passes`` timed
    passes after one warm-up pass (vectors come back to the host, so each call is complete)."""
    chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    spans = []
    for attempt in range(passes + 1):
        started = time.perf_counter()
        for chunk in chunks:
            embedder.encode(chunk)
        if attempt:
            spans.append(time.perf_counter() - started)
    return len(texts) / statistics.median(spans)


def load_queries(path: Path = QUERIES) -> list[str]:
    """The plain-language queries of the sample clip's retrieval set."""
    return [str(query["text"]) for query in yaml.safe_load(path.read_text())["queries"]]


def embed_only(args: argparse.Namespace, precisions: Sequence[str]) -> None:
    """Embedding speed and agreement per precision on ``args.device`` vs fp32 on the CPU."""
    texts = [c.text for c in make_captions(args.docs, seed=11)]
    queries = load_queries()

    def embedder(device: str, precision: str) -> Embedder:
        forward = args.forward_batch or (32 if device == "cpu" else 256)
        return make_embedder(
            EmbeddingSettings(
                model_path=args.model_path, device=device, precision=precision, batch_size=forward
            )
        )

    reference = embedder("cpu", "fp32")
    base = embed_rate(reference, texts, args.batch)
    ref_docs = reference.encode(texts)
    want = top_k(reference.encode(queries), ref_docs, args.top_k)
    rows = [("cpu", "fp32 (reference)", base, 1.0, 1.0, 1.0, len(queries))]
    for precision in precisions:
        model = embedder(args.device, precision)
        rate = embed_rate(model, texts, args.batch)
        docs = model.encode(texts)
        cosine = cosine_to_reference(docs, ref_docs)
        overlap, top1 = retrieval_agreement(top_k(model.encode(queries), docs, args.top_k), want)
        rows.append((args.device, precision, rate, cosine.min(), cosine.mean(), overlap, top1))
    print(f"\n{len(texts)} distinct captions in calls of {args.batch}, {len(queries)} queries")
    print(
        f"| device | precision | captions/s | vs CPU fp32 | cosine min | cosine mean "
        f"| top-{args.top_k} overlap | same top-1 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for device, precision, rate, low, mean, overlap, top1 in rows:
        print(
            f"| {device} | {precision} | {rate:,.0f} | {rate / base:.1f} | {low:.6f} | {mean:.6f} "
            f"| {overlap:.3f} | {top1}/{len(queries)} |"
        )


def device_line(device: str) -> str:
    import torch

    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__} threads {torch.get_num_threads()}, native bf16 "
        f"{cpu_has_native_bf16()}, {where}, {load()}"
    )


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="Captions for the batched runs.")
    parser.add_argument("--loop-docs", type=int, default=200, help="Captions for the loop.")
    parser.add_argument("--batch", type=int, default=256, help="Indexer max_batch.")
    parser.add_argument("--write-chunk", type=int, default=256, help="Indexer write_chunk.")
    parser.add_argument(
        "--precisions",
        default="fp32,bf16,int8",
        help="embedding.precision values (the dtypes), comma-separated.",
    )
    parser.add_argument("--device", default="cpu", help="embedding.device: cpu, cuda, cuda:1.")
    parser.add_argument(
        "--embed-only",
        action="store_true",
        help="Embedding alone, against fp32 on the CPU (no Kafka or OpenSearch).",
    )
    parser.add_argument("--model-path", type=Path, help="sentence-transformers folder.")
    parser.add_argument("--top-k", type=int, default=10, help="embed-only: k of the agreement.")
    parser.add_argument(
        "--forward-batch",
        type=int,
        help="embedding.batch_size (texts per forward pass); default 32 on CPU, 256 on GPU.",
    )
    args = parser.parse_args()
    print(device_line(args.device))
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if args.embed_only:
        embed_only(args, precisions)
        return
    captions = make_captions(args.docs + args.loop_docs, seed=11)
    batched, loop_captions = captions[: args.docs], captions[args.docs :]
    embedders = {
        p: make_embedder(
            EmbeddingSettings(model_path=args.model_path, device=args.device, precision=p)
        )
        for p in precisions
    }
    baseline_embedder = embedders.get("fp32") or make_embedder(EmbeddingSettings(precision="fp32"))
    baseline = per_document_loop(loop_captions, baseline_embedder, "per-document loop, fp32")
    rows = [baseline]
    rates: dict[str, float] = {}
    for precision, embedder in embedders.items():
        label = f"batched indexer, {precision} (batch {args.batch}, chunk {args.write_chunk})"
        row = batched_indexer(batched, embedder, args.batch, args.write_chunk, label)
        rates[precision] = row[1] / row[2]
        rows += [row, *breakdown(batched, embedder, args.batch)]
    fastest = max(rates, key=rates.__getitem__)
    if fastest != "fp32":
        label = f"per-document loop, {fastest}"
        rows.append(per_document_loop(loop_captions, embedders[fastest], label))
    print_table(rows, baseline=baseline)
    print(f"after: {load()}")


def print_table(rows: list[Row], baseline: Row) -> None:
    base_rate = baseline[1] / baseline[2]
    print(f"\n{'path':<58}{'docs':>7}{'seconds':>10}{'docs/s':>9}{'vs loop fp32':>14}")
    for label, docs, seconds in rows:
        rate = docs / seconds
        print(f"{label:<58}{docs:>7}{seconds:>10.2f}{rate:>9.1f}{rate / base_rate:>14.2f}")


if __name__ == "__main__":
    main()
