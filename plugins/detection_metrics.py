"""object_detection's metrics: COCO box mAP by pycocotools over a split, and the
per-image statistics that mAP@0.5 is recomputed from, exactly, on any resample of the
images (bootstrap intervals, paired tests between checkpoints).

Average precision ranks the detections of all images together, so it is not a mean of
per-image values. But pycocotools matches each image's detections to its objects on its
own (per class, in descending score, each to the unmatched object it overlaps most at
IoU >= 0.5), so an image's detections with their scores, classes and matched flags, and
its object count per class, are all a resample needs: :func:`map_50` ranks those of the
images drawn and accumulates as ``COCOeval.accumulate`` does (101 recall points, classes
without objects left out, up to 100 detections per image and class).
"""

from __future__ import annotations

import contextlib
import io

from taskhub import TaskhubError

#: COCO's IoU for a match in ``map_50``, its recall points and its detections kept per image and class.
IOU = 0.5
RECALL_POINTS = 101
MAX_DETECTIONS = 100


def pycocotools():
    try:
        from pycocotools import mask
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise TaskhubError("object_detection's metrics need pycocotools: pip install pycocotools") from None
    return COCO, COCOeval, mask


def xywh(b) -> list[float]:
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def coco_map(detections: list[list[tuple]], truths: list[list[tuple]], num_labels: int) -> dict[str, float]:
    """COCO box mAP and mAP@0.5 by pycocotools: ``detections`` per image as (score,
    class id, [xmin, ymin, xmax, ymax]), ``truths`` as (class id, [xmin, ymin, xmax, ymax])."""
    COCO, COCOeval, _ = pycocotools()
    truth = {
        "images": [{"id": i} for i in range(len(truths))],
        "categories": [{"id": c} for c in range(num_labels)],
        "annotations": [
            {"id": n, "image_id": i, "category_id": c, "bbox": xywh(b), "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0}
            for n, (i, c, b) in enumerate(((i, c, b) for i, objects in enumerate(truths) for c, b in objects), start=1)
        ],
    }
    found = [{"image_id": i, "category_id": c, "bbox": xywh(b), "score": s} for i, row in enumerate(detections) for s, c, b in row]
    if not found or not truth["annotations"]:
        return {"map": 0.0, "map_50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(found), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": max(float(evaluation.stats[0]), 0.0), "map_50": max(float(evaluation.stats[1]), 0.0)}


def image_matches(detections: list[tuple], truths: list[tuple], num_labels: int) -> dict[str, list]:
    """One image's statistics for :func:`map_50`: its detections kept (up to
    :data:`MAX_DETECTIONS` per class, best first) as ``score`` / ``class`` / ``matched``
    (1: matched an object of its class at IoU >= 0.5, as ``COCOeval.evaluateImg`` matches),
    and ``objects``, its object count per class."""
    _, _, mask = pycocotools()
    stats: dict[str, list] = {"score": [], "class": [], "matched": [], "objects": [0] * num_labels}
    for c, _ in truths:
        stats["objects"][c] += 1
    for c in range(num_labels):
        found = sorted((d for d in detections if d[1] == c), key=lambda d: -d[0])[:MAX_DETECTIONS]  # stable, as COCO's mergesort
        objects = [xywh(b) for k, b in truths if k == c]
        ious = mask.iou([xywh(d[2]) for d in found], objects, [0] * len(objects)) if found and objects else None
        taken = [False] * len(objects)
        for i, (score, _, _) in enumerate(found):
            best, match = min(IOU, 1 - 1e-10), -1
            for j in range(len(objects)):
                if taken[j] or ious[i][j] < best:
                    continue
                best, match = ious[i][j], j
            if match >= 0:
                taken[match] = True
            stats["score"].append(float(score))
            stats["class"].append(c)
            stats["matched"].append(int(match >= 0))
    return stats


def map_50(score, classes, matched, objects) -> float:
    """mAP@0.5 of a set of images from their :func:`image_matches` (arrays, one row per
    image; a detection of class -1 is padding), as ``COCOeval.accumulate`` and
    ``summarize`` compute it: per class with objects, the detections of all images ranked
    by score, precision made non-increasing, read at 101 recall points (0 past the last
    recall reached), averaged over the points and the classes. 0.0 with no object at all."""
    import numpy as np

    score, classes, matched = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in (score, classes, matched))
    totals = np.asarray(objects, dtype=float).sum(axis=0)
    points = np.linspace(0.0, 1.0, RECALL_POINTS)
    per_class = []
    for c in np.flatnonzero(totals > 0):
        keep = classes == c
        order = np.argsort(-score[keep], kind="mergesort")
        hits = matched[keep][order]
        true = np.cumsum(hits)
        false = np.cumsum(1 - hits)
        recall = true / totals[c]
        precision = np.maximum.accumulate((true / (true + false + np.spacing(1)))[::-1])[::-1]
        at = np.searchsorted(recall, points, side="left")
        read = np.zeros(RECALL_POINTS)
        inside = at < len(precision)
        read[inside] = precision[at[inside]]
        per_class.append(read.mean())
    return float(np.mean(per_class)) if per_class else 0.0
