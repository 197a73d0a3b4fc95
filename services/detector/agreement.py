"""How closely one detector's boxes agree with a reference's (an INT8 model with its float one).

Greedy one-to-one matching per frame: reference boxes in descending score order each take the
unused candidate box of the same class with the highest IoU, if that IoU reaches the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .postprocess import box_iou
from .records import DetectionArrays


@dataclass(frozen=True)
class Agreement:
    """Counts over one or more frames (add them up with ``+``).

    Attributes:
        reference: Boxes of the reference.
        matched: Reference boxes matched by a candidate box (same class, IoU >= threshold).
        extra: Candidate boxes that matched no reference box.
    """

    reference: int = 0
    matched: int = 0
    extra: int = 0

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(
            self.reference + other.reference,
            self.matched + other.matched,
            self.extra + other.extra,
        )

    @property
    def matched_fraction(self) -> float:
        """Share of the reference boxes that were found (1.0 with no reference boxes)."""
        return self.matched / self.reference if self.reference else 1.0

    @property
    def extra_fraction(self) -> float:
        """Extra candidate boxes per reference box (0.0 with neither)."""
        return self.extra / self.reference if self.reference else float(self.extra > 0)


def compare(
    reference: DetectionArrays, candidate: DetectionArrays, iou_threshold: float = 0.5
) -> Agreement:
    """Match one frame's ``candidate`` boxes to its ``reference`` boxes (see module docstring)."""
    used = np.zeros(len(candidate), bool)
    boxes = candidate.xyxy.astype(np.float64)
    matched = 0
    for index in np.argsort(-reference.scores, kind="stable"):
        free = (candidate.class_ids == reference.class_ids[index]) & ~used
        if not free.any():
            continue
        iou = np.where(free, box_iou(reference.xyxy[index].astype(np.float64), boxes), -1.0)
        best = int(iou.argmax())
        if iou[best] >= iou_threshold:
            used[best] = True
            matched += 1
    return Agreement(len(reference), matched, int((~used).sum()))
