"""Appearance embedder throughput: crops per second by backend and batch size.

Every backend available on the machine embeds the same random 224×224 crops (the network's cost
does not depend on the pixels): ONNX Runtime on the CPU with ``--threads`` threads (the
baseline, batch 1) and torch on CUDA when there is a GPU. Each row is the best of ``--repeats``
timed runs after a warm-up; the last column is the ratio to the baseline. The largest difference
between a backend's vectors and ONNX Runtime's on the same crops is printed too.

Usage::

    python benchmarks/appearance_speed.py [--batches 1,8,32,64] [--crops 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from vsa.services.appearance.embedder import AppearanceEmbedder, build_appearance_embedder
from vsa.services.appearance.settings import AppearanceSettings

F32 = npt.NDArray[np.float32]


def rate(run: Callable[[F32], F32], crops: F32, repeats: int) -> float:
    """Best crops/s of ``repeats`` runs over all crops (after one warm-up run)."""
    run(crops)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(crops)
        best = min(best, time.perf_counter() - started)
    return len(crops) / best


def embedders(threads: int, batch: int) -> dict[str, AppearanceEmbedder]:
    out = {
        "onnxruntime-cpu": build_appearance_embedder(
            AppearanceSettings(backend="onnxruntime", threads=threads, max_batch=batch)
        )
    }
    try:
        import torch
    except ImportError:
        return out
    if torch.cuda.is_available():
        out["torch-cuda"] = build_appearance_embedder(
            AppearanceSettings(backend="torch", max_batch=batch)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime CPU threads.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    crops = np.random.default_rng(0).uniform(0, 255, (args.crops, 3, 224, 224)).astype(np.float32)
    print(f"python {platform.python_version()}, {args.crops} crops of 224x224\n")
    print("| backend | batch | crops/s | vs ORT CPU batch 1 | max abs diff vs ORT |")
    print("| --- | ---: | ---: | ---: | ---: |")
    baseline = 0.0
    reference: F32 | None = None
    for batch in [int(b) for b in args.batches.split(",")]:
        for name, embedder in embedders(args.threads, batch).items():
            vectors = embedder.embed_crops(crops[:32])
            reference = vectors if reference is None else reference
            diff = float(np.abs(vectors - reference).max())
            speed = rate(embedder.embed_crops, crops, args.repeats)
            baseline = baseline or speed
            print(f"| {name} | {batch} | {speed:,.0f} | {speed / baseline:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
