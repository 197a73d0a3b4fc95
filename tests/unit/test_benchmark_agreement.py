"""The pure parts of the GPU benchmarks that say whether two backends agree: boxes of two
detector cores (benchmarks/detector_service_core.py) and vectors and rankings of two embedders
(benchmarks/indexer.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.bench_loader import load_benchmark

detector = load_benchmark("detector_service_core")
indexer = load_benchmark("indexer")


def test_boxes_pair_by_class_and_best_overlap() -> None:
    want = [[("person", [0.0, 0.0, 10.0, 10.0]), ("car", [20.0, 20.0, 40.0, 40.0])]]
    got = [
        [
            ("car", [0.0, 0.0, 10.0, 10.0]),  # same place, other class: no pair
            ("person", [0.0, 0.0, 10.0, 10.2]),  # IoU 0.980
            ("car", [20.0, 20.0, 40.0, 41.0]),  # IoU 0.952
        ]
    ]
    found = detector.box_agreement(got, want, threshold=0.98)
    assert (found.total, found.matched, found.unpaired, found.extra) == (2, 1, 0, 1)
    assert found.min_iou == pytest.approx(20 * 20 / (20 * 21))
    assert detector.agreement(got, want) == (2, 2, 1)  # at IoU 0.5 both pair


def test_a_box_is_paired_once_and_far_boxes_not_at_all() -> None:
    want = [[("person", [0.0, 0.0, 10.0, 10.0]), ("person", [0.0, 0.0, 10.0, 10.0])]]
    got = [[("person", [0.0, 0.0, 10.0, 10.0]), ("person", [50.0, 50.0, 60.0, 60.0])]]
    found = detector.box_agreement(got, want, threshold=0.98)
    assert (found.matched, found.unpaired, found.extra, found.min_iou) == (1, 1, 1, 1.0)
    empty = detector.box_agreement([[]], [[]])
    assert (empty.total, empty.matched, empty.min_iou) == (0, 0, 1.0)


def test_cosine_to_reference_is_per_row() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    vectors = np.array([[1.0, 1.0], [0.0, -3.0]], np.float32)
    np.testing.assert_allclose(
        indexer.cosine_to_reference(vectors, reference), [2**-0.5, -1.0], rtol=1e-12
    )


def test_top_k_orders_by_similarity_and_agreement_counts_shared_hits() -> None:
    docs = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    want = indexer.top_k(queries, docs, 2)
    assert want.tolist() == [[0, 1], [2, 1]]
    assert indexer.retrieval_agreement(want, want) == (1.0, 2)
    got = np.array([[1, 0], [2, 3]])  # first query: same two, other order; second: one of two
    assert indexer.retrieval_agreement(got, want) == (0.75, 1)
