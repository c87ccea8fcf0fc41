"""object_detection's batches: images of different sizes padded together as the DETR
processors pad, targets kept as per-image ``{class_labels, boxes}`` dicts rescaled to
the padded image, and the training-time flips that turn an image and its boxes together.
"""

from __future__ import annotations

from typing import Any


class DetectionCollator:
    """Stacks ``pixel_values`` (and ``pixel_mask``), padding smaller images at the bottom
    and right to the batch's largest (mask 0 there) as the DETR processors pad, and keeps
    ``labels`` a list of per-image ``{class_labels, boxes}`` tensors, their normalised boxes
    rescaled to the padded image. With ``flip`` (training), each image of a batch with
    labels is mirrored at random, its boxes with it (:func:`mirrored`)."""

    def __init__(self, flip: str = "none"):
        self.flip = flip

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np
        import torch

        pixels = [np.asarray(r["pixel_values"], dtype=np.float32) for r in rows]
        height, width = max(p.shape[-2] for p in pixels), max(p.shape[-1] for p in pixels)
        values = np.zeros((len(rows), pixels[0].shape[0], height, width), dtype=np.float32)
        mask = np.zeros((len(rows), height, width), dtype=np.int64)
        for i, p in enumerate(pixels):
            values[i, :, : p.shape[-2], : p.shape[-1]] = p
            mask[i, : p.shape[-2], : p.shape[-1]] = np.asarray(rows[i]["pixel_mask"]) if "pixel_mask" in rows[i] else 1
        batch: dict[str, Any] = {"pixel_values": torch.from_numpy(values)}
        if "pixel_mask" in rows[0]:
            batch["pixel_mask"] = torch.from_numpy(mask)
        if "labels" in rows[0]:
            labels = []
            for r, p in zip(rows, pixels):
                boxes = torch.tensor(np.asarray(r["labels"]["boxes"], dtype=np.float32).reshape(-1, 4))
                scale = torch.tensor([p.shape[-1] / width, p.shape[-2] / height] * 2)
                labels.append(
                    {
                        "class_labels": torch.tensor(np.asarray(r["labels"]["class_labels"], dtype=np.int64).reshape(-1)),
                        "boxes": boxes * scale,
                        "orig_size": torch.tensor(np.asarray(r["labels"]["orig_size"], dtype=np.int64)),
                    }
                )
            batch["labels"] = labels
            if self.flip != "none":
                batch = mirrored(batch, self.flip)
        return batch


def mirrored(inputs: dict[str, Any], flip: str) -> dict[str, Any]:
    """A training batch with each image mirrored half the time, left to right (``both``:
    also, independently, upside down), its mask and boxes with it: the whole padded image
    turns, so the boxes, fractions of it, turn about its middle. The draws follow the
    Trainer's seed."""
    import torch

    inputs = dict(inputs)
    images = inputs["pixel_values"].clone()
    masks = inputs["pixel_mask"].clone() if "pixel_mask" in inputs else None
    labels = [dict(target, boxes=target["boxes"].clone()) for target in inputs["labels"]]
    axes = ((-1, 0), (-2, 1)) if flip == "both" else ((-1, 0),)  # (pixel axis, box centre coordinate)
    for i, target in enumerate(labels):
        for axis, centre in axes:
            if torch.rand(()) < 0.5:
                images[i] = images[i].flip(axis)
                if masks is not None:
                    masks[i] = masks[i].flip(axis)
                target["boxes"][:, centre] = 1 - target["boxes"][:, centre]
    inputs.update(pixel_values=images, labels=labels, **({"pixel_mask": masks} if masks is not None else {}))
    return inputs
