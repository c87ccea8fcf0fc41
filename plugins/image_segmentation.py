"""image_segmentation (semantic): a class for every pixel of an image.

Rows: ``image`` (a file path, PIL image or array, as for image_classification) and, to
train or evaluate, ``mask``: an image file (PNG) of the same size whose pixel values are
class indices (0, 1, 2, ...; a palette PNG's indices, as Pascal VOC stores them). Pixels
of the model config's ``semantic_loss_ignore_index`` (255) are unlabelled: left out of the
loss and the metrics. The class names come from, in order: ``task.labels``; an
``id2label.json`` (``{"0": "background", ...}``, the file segmentation datasets on the
Hub ship) or a ``README.md`` whose YAML front matter has ``labels: [...]``, in the masks'
folder or the one above it; else the names of the model being fine-tuned, if it has its
own for every index in the training masks; else those indices, as names.

Predictions follow the transformers 5 ``image-segmentation`` pipeline for semantic
models: the logits are upsampled (bilinear) to the original image size, each pixel takes
its best class, and there is one segment per class present, in class order, with
``label``, ``mask`` and ``score`` (None: a semantic model scores no segment). One input
row gives one record whose three fields are lists, a segment per position.

Mask encoding: COCO's uncompressed run-length encoding, ``{"size": [height, width],
"counts": [...]}`` (runs over the pixels in column-major order, starting with a run of
0s; :func:`decode_mask` reads it back, as does ``pycocotools.mask.frPyObjects``). Chosen
over a PNG file written beside the predictions because a record then holds all of its
prediction: predictions.jsonl stays one self-contained file that CSV / Parquet output,
``predict.resume``, the multi-process and Ray writers and the Python API handle like any
other field, with no files to name, keep in step or clean up; a mask of a few shapes is a
few dozen numbers. :func:`mask_image` turns one into the pipeline's PIL mask (mode L,
255 inside).

Metrics, from a confusion matrix of pixel counts (no download): ``mean_iou`` (the main
metric: IoU averaged over the classes present in the references or the predictions),
``pixel_accuracy``, ``mean_accuracy`` (per-class recall averaged) and ``iou_<label>``.
Each evaluated image keeps its confusion counts as ``stats``, so ``samples.jsonl`` adds up
to the reported figures and the bootstrap interval recomputes mean IoU on each resample.
Evaluation scores the masks as the image processor resizes them (nearest neighbour), the
masks themselves when the processor's size is the images' (the demo's 64x64).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskSpec, hookimpl
from taskhub.config import TaskConfig, option
from taskhub.errors import TaskhubError
from taskhub.media import PixelBatching, load_image
from taskhub.task import Task, score_columns
from taskhub_plugins.segmentation_masks import decode_mask, encode_mask, labels_beside, load_mask, mask_image  # noqa: F401 - mask_image: the predictions' mask format, importable with the task

@dataclass
class ImageSegmentationConfig(TaskConfig):
    name: str = "image_segmentation"
    labels: Optional[list[str]] = option(
        None,
        "Training: class names by mask index (0 first); null: from an id2label.json or README.md 'labels:' beside "
        "the masks, else the indices found in the training masks",
    )


# ---------------------------------------------------------------- masks as data
def confusion(predicted, reference, num_labels: int, ignore_index: int):
    """Pixel counts: rows the reference class, columns the predicted one (ignored pixels out)."""
    import numpy as np

    predicted, reference = np.asarray(predicted).ravel(), np.asarray(reference).ravel()
    keep = (reference != ignore_index) & (reference >= 0) & (reference < num_labels)
    pairs = reference[keep].astype(np.int64) * num_labels + np.clip(predicted[keep], 0, num_labels - 1).astype(np.int64)
    return np.bincount(pairs, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def segmentation_metrics(matrix, names: list[str]) -> dict[str, float]:
    """mean IoU, pixel accuracy, mean accuracy and per-class IoU of a confusion matrix. A
    class absent from both references and predictions has no IoU and is left out of the
    means (as the `evaluate` library's mean_iou does, with nanmean)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=float)
    correct = np.diag(matrix)
    gold, found = matrix.sum(axis=1), matrix.sum(axis=0)
    union = gold + found - correct
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, correct / union, np.nan)
        recall = np.where(gold > 0, correct / gold, np.nan)
    total = matrix.sum()
    metrics = {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "pixel_accuracy": float(correct.sum() / total) if total else 0.0,
        "mean_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else 0.0,
    }
    metrics.update({f"iou_{name}": float(value) for name, value in zip(names, iou) if np.isfinite(value)})
    return metrics


class ImageSegmentation(PixelBatching, Task):
    """Label every pixel of an image with a class (semantic segmentation)."""

    name = "image_segmentation"
    config_cls = ImageSegmentationConfig
    modality = "image"
    auto_model = "AutoModelForSemanticSegmentation"
    processor_class = "AutoImageProcessor"
    input_columns = ("image",)
    target_columns = ("mask",)
    path_columns = ("image", "mask")
    prediction_fields = ("label", "mask", "score")
    main_metric = "mean_iou"
    chunk_batches = 4
    overlap_preprocessing = True
    demo_data = "pkg://taskhub_plugins/data/shape_masks"
    demo_output = "masks"
    demo_description = "Upload an image to see which of the model's classes each of its pixels belongs to."
    # With no model named, a small SegFormer (MiT-style, 0.4M parameters) is trained from
    # scratch on the shape scenes: four stages 16-128 wide, logits at a quarter of the
    # input's resolution (16x16 for the 64x64 scenes), upsampled to it; dropout and
    # stochastic depth, as 300 scenes are few for a transformer.
    default_model_config = {
        "model_type": "segformer",
        "num_channels": 3,
        "num_encoder_blocks": 4,
        "depths": [1, 1, 1, 1],
        "sr_ratios": [4, 2, 1, 1],
        "hidden_sizes": [16, 32, 64, 128],
        "patch_sizes": [7, 3, 3, 3],
        "strides": [4, 2, 2, 2],
        "num_attention_heads": [1, 1, 2, 4],
        "mlp_ratios": [2, 2, 2, 2],
        "decoder_hidden_size": 64,
        "hidden_dropout_prob": 0.1,
        "drop_path_rate": 0.1,
    }
    default_processor_config = {
        "processor_class": "SegformerImageProcessor",
        "size": {"height": 64, "width": 64},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    training_defaults = {"num_train_epochs": 50, "learning_rate": 2e-3, "per_device_train_batch_size": 8, "warmup_steps": 20}

    # ------------------------------------------------------------- labels
    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        names = list(self.config.labels) if self.config.labels else None
        masks = train_dataset["mask"]
        first = next((m for m in masks if isinstance(m, str) and "://" not in m), None)
        if names is None and first is not None:
            names = labels_beside(first)
        if names is None:
            import numpy as np

            found: set[int] = set()
            for i, value in enumerate(masks):
                array, _ = load_mask(value, i)
                found.update(int(v) for v in np.unique(array))
            found.discard(self.ignore_index)
            count = max(found, default=0) + 1
            names = self._named_model_labels(count) or [str(i) for i in range(count)]
        if len(names) < 2:
            raise TaskhubError(f"image_segmentation needs at least 2 classes, got {len(names)} ({', '.join(names) or 'none'}); set task.labels=[...]")
        if len(set(names)) != len(names):
            raise TaskhubError(f"class names repeat: {', '.join(names)}")
        return {"num_labels": len(names), "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}

    def _named_model_labels(self, count: int) -> list[str] | None:
        """The class names of the model being fine-tuned, when it has its own (not
        transformers' LABEL_<n> placeholders) for at least ``count`` classes: masks of its
        classes keep its names and its head."""
        from taskhub.modeling import model_source

        if model_source(self).name_or_path is None:
            return None
        own = {int(k): str(v) for k, v in (getattr(self.model_settings, "id2label", None) or {}).items()}
        names = [own.get(i) for i in range(len(own))]
        if len(names) < count or None in names or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            return None
        return names

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model_settings.id2label.items()}

    def demo_labels(self) -> list[str]:
        labels = self.id2label
        return [labels[i] for i in sorted(labels)]

    @property
    def ignore_index(self) -> int:
        return int(getattr(self.model_settings, "semantic_loss_ignore_index", 255))

    # --------------------------------------------------------------- data
    def preprocess(self, batch):
        images = [load_image(value, i) for i, value in enumerate(batch["image"])]
        return {
            "pixel_values": list(self.processor(images, return_tensors="np")["pixel_values"]),
            "_size": [(image.height, image.width) for image in images],
            "_image": images,  # for encode_targets: the processor resizes masks with their images
        }

    def encode_targets(self, batch, features):
        import numpy as np

        labels = self.id2label
        reduce = bool(getattr(self.processor, "do_reduce_labels", False))
        # With do_reduce_labels (ADE20k's convention) 0 is "unlabelled" and k is class k - 1.
        allowed = set(range(len(labels) + 1)) if reduce else set(range(len(labels)))
        allowed.add(self.ignore_index)
        masks = []
        for i, (value, size) in enumerate(zip(batch["mask"], features["_size"])):
            if value is None:
                raise RowError(i, "missing mask")
            array, what = load_mask(value, i)
            if array.shape != tuple(size):
                image = batch["image"][i]
                shown = f"image {os.fspath(image)}" if isinstance(image, (str, os.PathLike)) else "its image"
                raise RowError(i, f"{what} is {array.shape[1]}x{array.shape[0]} but {shown} is {size[1]}x{size[0]} (width x height); a mask has its image's size")
            bad = sorted(set(np.unique(array).tolist()) - allowed)
            if bad:
                known = ", ".join(f"{k}: {labels[k]}" for k in sorted(labels))
                raise RowError(
                    i,
                    f"{what} has class index {bad[0]} but the model has {len(labels)} classes ({known}"
                    f"{'; indices shifted by do_reduce_labels' if reduce else ''}; {self.ignore_index} marks pixels to ignore)",
                )
            masks.append(array.astype(np.uint8) if array.max(initial=0) < 256 else array.astype(np.int32))
        encoded = self.processor(features["_image"], segmentation_maps=masks, return_tensors="np")["labels"]
        return {"labels": [np.asarray(m, dtype=np.int64) for m in encoded]}

    def build_collator(self):
        """Stacks pixel values and label maps (arrays of one size per batch: the
        processor's), as transformers' default collator does; the core's nested padding
        would take a C x H x W image for C sequences."""
        from transformers import default_data_collator

        return default_data_collator

    # --------------------------------------------------------- prediction
    def postprocess(self, outputs, batch, features) -> list[dict[str, Any]]:
        """As the pipeline: per image, the logits upsampled (bilinear) to its size, the best
        class per pixel, one segment per class present (np.unique's order)."""
        import numpy as np
        import torch.nn.functional as F

        logits = outputs.logits
        labels = self.id2label
        records = []
        for k, size in enumerate(features["_size"]):
            resized = F.interpolate(logits[k].unsqueeze(0), size=tuple(size), mode="bilinear", align_corners=False)
            segmentation = resized[0].argmax(dim=0).cpu().numpy()
            present = np.unique(segmentation)
            records.append({
                "label": [labels[int(c)] for c in present],
                "mask": [encode_mask(segmentation == c) for c in present],
                "score": [None] * len(present),
            })  # fmt: skip
        return records

    def demo_view(self, record, prediction):
        """The masks decoded for the annotated image (the core's ``masks`` view takes arrays)."""
        image = record["image"]
        masks = prediction["mask"] if isinstance(prediction["label"], list) else [prediction["mask"]]
        labels = prediction["label"] if isinstance(prediction["label"], list) else [prediction["label"]]
        return image, [(decode_mask(m).astype(float), str(label)) for m, label in zip(masks, labels)]

    # ------------------------------------------------------------ metrics
    def preprocess_logits_for_metrics(self, logits, labels):
        """Each evaluation batch's logits -> its predicted class map at the labels' size, so
        the Trainer gathers H x W integers per image instead of C x h x w floats."""
        import torch.nn.functional as F

        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        return F.interpolate(logits.float(), size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False).argmax(dim=1)

    def _class_maps(self, output):
        """(predicted, reference) class maps from the Trainer's output; raw logits (a
        Trainer without :meth:`preprocess_logits_for_metrics`) are reduced here."""
        import numpy as np

        predicted, reference = output.predictions, np.asarray(output.label_ids)
        predicted = predicted[0] if isinstance(predicted, tuple) else predicted
        predicted = np.asarray(predicted)
        if predicted.ndim == 4:
            import torch
            import torch.nn.functional as F

            logits = torch.from_numpy(predicted).float()
            predicted = F.interpolate(logits, size=reference.shape[-2:], mode="bilinear", align_corners=False).argmax(dim=1).numpy()
        return predicted, reference

    def score_examples(self, predictions, references=None) -> list[dict[str, Any]]:
        """Per image: its IoU averaged over its classes, pixel accuracy, and its confusion
        counts (``stats``; their sum over images gives the corpus metrics)."""
        import numpy as np

        labels = self.id2label
        names = [labels[i] for i in range(len(labels))]
        examples = []
        for predicted, reference in zip(*self._class_maps(predictions)):
            matrix = confusion(predicted, reference, len(names), self.ignore_index)
            own = segmentation_metrics(matrix, names)
            shown = lambda counts: [names[c] for c in np.flatnonzero(counts)]  # noqa: E731
            examples.append({
                "prediction": shown(matrix.sum(axis=0)),
                "reference": shown(matrix.sum(axis=1)),
                "scores": {"mean_iou": own["mean_iou"], "pixel_accuracy": own["pixel_accuracy"]},
                "stats": {"confusion": matrix.ravel().tolist()},
            })  # fmt: skip
        return examples

    def aggregate_examples(self, columns) -> dict[str, float]:
        """The corpus metrics of the summed confusion counts (not a mean of per-image IoUs)."""
        labels = self.id2label
        names = [labels[i] for i in range(len(labels))]
        matrix = columns["confusion"].sum(axis=0).reshape(len(names), len(names))
        return segmentation_metrics(matrix, names)

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        return self.aggregate_examples(score_columns(self.score_examples(eval_pred)))


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ImageSegmentation.name, ImageSegmentation, ImageSegmentationConfig)]
