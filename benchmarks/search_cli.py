"""`vsa search` as a user runs it: one process per query, from start to the first result.

Two ways of answering are timed in the same run, taking turns query by query:

- before: what `vsa search` did until issue 15 point 8 — build the CLI, load the query embedder
  on torch (sentence-transformers; precision ``auto`` was bf16 on CPUs with native BF16, else
  fp32), only then ask OpenSearch (so a missing index was reported after the model loaded).
  Reproduced by a small script that runs exactly those steps with today's modules;
- after: `vsa search` today — check the index first, then load the int8 embedder on ONNX
  Runtime (tokenizers + onnxruntime, no torch or transformers), then query.

Each is run against a small captions index (``--docs`` synthetic captions embedded in fp32,
own index prefix, deleted at the end) and against an index that does not exist. Reported per
case: median and best wall time from spawning the process to the first result line on stdout
(or the error on stderr), median CPU time (user + system) of the process, and the ratio
before / after of the medians. The int8 model is built into the cache before timing starts.

Usage::

    python benchmarks/search_cli.py [--rounds 5] [--docs 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from vsa.runtime.settings import OpenSearchSettings, load_settings
from vsa.services.indexer.embedder import SentenceEmbedder, cpu_has_native_bf16, make_embedder
from vsa.services.indexer.mapping import caption_doc_id, caption_document
from vsa.services.indexer.settings import (
    EmbeddingSettings,
    IndexerSettings,
    IndexNames,
    QueryEmbeddingSettings,
)
from vsa.services.indexer.store import bulk, ensure_indices, make_client
from vsa.services.indexer.synthetic import synthetic_caption

QUERIES = (
    "a person in red near the gate",
    "white van parked on the right",
    "a crowd of people in the lobby",
    "a dog running left",
    "someone loitering by the fence",
    "a black car moving right",
    "two cyclists in the crosswalk",
    "a truck parked at night",
)

#: The steps `vsa search` took before: parser, settings, torch embedder, then the query.
BEFORE = """
import sys
from vsa.cli import build_parser
from vsa.runtime.settings import load_settings
from vsa.services.indexer.embedder import SentenceEmbedder
from vsa.services.indexer.search import Searcher, SearchQuery, SearchUnavailableError
from vsa.services.indexer.settings import SearchSettings
from vsa.services.indexer.store import make_client
build_parser().parse_args(["search", sys.argv[1]])
settings = load_settings(SearchSettings, None)
embedder = SentenceEmbedder(settings.embedding.model_copy(update={"precision": sys.argv[2]}))
client = make_client(settings.opensearch, settings.request_timeout_s)
searcher = Searcher(client, embedder, settings)
try:
    hits = searcher.search(SearchQuery(text=sys.argv[1]))
except SearchUnavailableError as exc:
    print(f"vsa search: {exc}", file=sys.stderr)
    sys.exit(1)
print(hits[0].caption if hits else "no hits", flush=True)
"""


@dataclass
class Run:
    """One process: seconds to its first output line, CPU seconds, exit status."""

    first_s: float
    cpu_s: float
    status: int


@dataclass
class Case:
    name: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"before": [], "after": []})


def timed(command: list[str], env: dict[str, str]) -> Run:
    """Spawn ``command``; the time to its first line (stdout, or stderr on failure)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    first = time.perf_counter() - started
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if not line and proc.returncode != 0:
        first = time.perf_counter() - started  # the error line is the first result
        if "does not exist" not in err:
            raise RuntimeError(f"{command[:3]} failed: {err[-2000:]}")
    return Run(first, usage.ru_utime + usage.ru_stime, proc.returncode)


def load_index(names: IndexNames, docs: int) -> None:
    settings = load_settings(IndexerSettings, None, index=names, consume_alerts=False)
    client = make_client(settings.opensearch, 120)
    ensure_indices(client, settings)
    rng = random.Random(11)
    captions = [synthetic_caption(rng, f"cam-{i % 8}", i, 1.767e9 + i) for i in range(docs)]
    vectors = SentenceEmbedder(EmbeddingSettings(precision="fp32")).encode(
        [c.text for c in captions]
    )
    index = names.captions_index
    actions = [
        (
            {"index": {"_index": index, "_id": caption_doc_id(c.camera_id, c.frame_seq)}},
            caption_document(c, v),
        )
        for c, v in zip(captions, vectors, strict=True)
    ]
    bulk(client, actions, 120)
    client.indices.refresh(index=index)


def drop_index(names: IndexNames) -> None:
    """Delete every index and index template of the benchmark's prefix."""
    client = make_client(load_settings(OpenSearchSettings), 60)
    pattern = f"{names.prefix}*"
    for index in client.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True):
        client.indices.delete(index=index, ignore_unavailable=True)
    templates = client.indices.get_index_template(name=pattern, ignore=404)
    for template in templates.get("index_templates", []):
        client.indices.delete_index_template(name=template["name"], ignore=404)


def run_cases(args: argparse.Namespace, names: IndexNames) -> list[Case]:
    old_auto = "bf16" if cpu_has_native_bf16() else "fp32"
    missing = IndexNames(prefix=f"{names.prefix}missing-")
    cases = [Case("index with captions"), Case("index missing")]
    for round_no in range(args.rounds):
        for case, prefix in zip(cases, (names.prefix, missing.prefix), strict=True):
            env = {**os.environ, "VSA_SEARCH_INDEX__PREFIX": prefix, "VSA_LOG_LEVEL": "WARNING"}
            text = QUERIES[round_no % len(QUERIES)]
            before = [sys.executable, "-c", BEFORE, text, old_auto]
            after = [sys.executable, "-m", "vsa", "search", text, "-k", "3"]
            order = (("before", before), ("after", after))
            for variant, command in order if round_no % 2 == 0 else order[::-1]:
                case.runs[variant].append(timed(command, env))
    return cases


def print_table(cases: list[Case], args: argparse.Namespace) -> None:
    print(
        f"\n{os.cpu_count()} CPUs, {args.rounds} runs per row (taking turns), load average "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(
        f"{'case':<22}{'variant':<9}{'median s':>10}{'best s':>9}{'CPU s':>8}"
        f"{'exit':>6}{'before/after':>14}"
    )
    for case in cases:
        medians = {v: statistics.median(r.first_s for r in runs) for v, runs in case.runs.items()}
        for variant, runs in case.runs.items():
            ratio = f"{medians['before'] / medians['after']:.1f}x" if variant == "after" else ""
            cpu = statistics.median(r.cpu_s for r in runs)
            best = min(r.first_s for r in runs)
            statuses = ",".join(sorted({str(r.status) for r in runs}))
            print(
                f"{case.name:<22}{variant:<9}{medians[variant]:>10.2f}{best:>9.2f}{cpu:>8.2f}"
                f"{statuses:>6}{ratio:>14}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Runs per case and variant.")
    parser.add_argument("--docs", type=int, default=300, help="Captions in the index.")
    args = parser.parse_args()
    make_embedder(QueryEmbeddingSettings())  # builds the int8 model into the cache if needed
    names = IndexNames(prefix=f"bench-search-cli-{uuid.uuid4().hex[:8]}-")
    load_index(names, args.docs)
    try:
        cases = run_cases(args, names)
    finally:
        drop_index(names)
    print_table(cases, args)


if __name__ == "__main__":
    main()
