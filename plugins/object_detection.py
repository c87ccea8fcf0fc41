"""object_detection: labelled boxes around the objects in an image.

Rows: ``image`` (a file path, image bytes, PIL image or array) and, to train or evaluate,
``objects``: a list of ``{"label": <name>, "box": {"xmin", "ymin", "xmax", "ymax"}}`` in
pixels of the image as stored (``xmax`` / ``ymax`` one past the object's last pixel, so
``xmax - xmin`` is its width, as COCO counts), e.g.
``{"image": "images/0001.png", "objects": [{"label": "circle", "box": {"xmin": 9, "ymin": 17, "xmax": 30, "ymax": 38}}]}``.
An object may give COCO's ``"bbox": [x, y, width, height]`` instead of ``box``. An image
with no objects (an empty list) is a valid training example: the DETR-family losses
take it (every query is then trained to predict "no object"). A box that leaves the
image, has no width or height, or a label the model does not know is the row's error.

The targets go through the model's own image processor (its COCO ``annotations``
support: resized with the image and turned into the normalised centre / size boxes and
class ids the model's loss takes), and a batch keeps them as a list of per-image
``{class_labels, boxes}`` dicts. Predictions are the transformers
``pipeline("object-detection")``'s, in one field: ``objects``, the list of
``{"score", "label", "box": {"xmin", "ymin", "xmax", "ymax"}}`` (integer pixels)
scoring above ``task.threshold`` (the pipeline's default, 0.5), the same shape as
the ``objects`` it trains on (an input file's own ``objects`` stay in predictions.jsonl
as ``input_objects``; the demo draws the boxes over the image). Evaluation is COCO's box mAP (``map``, over IoU 0.5:0.95)
and ``map_50`` (IoU 0.5) by ``pycocotools``, the reference implementation, over every
detection the model makes (no threshold). Average precision ranks the detections of
all images together, so it is not a mean of per-image values; ``samples.jsonl`` gives
each image its precision and recall at IoU 0.5 (of the detections above
``task.threshold``) and the matched detections ``map_50`` is recomputed from, exactly, on
a resample: bootstrap intervals and paired tests work as for the other tasks
(:mod:`taskhub_plugins.detection_metrics`).

Training mirrors each image left to right half the time (``task.flip``; ``both`` also
upside down, ``none`` not at all), as DETR's training recipes do: in its training
collator, so evaluation (:meth:`~taskhub.Task.build_evaluation_collator`) and prediction
see the images as they are.

With no model named, a small RT-DETR (a 4-stage ResNet of 16-128 channels, 64-wide
hybrid encoder and 3 decoder layers, 30 queries) is trained from scratch on 64x64 images.
RT-DETR for its faster convergence from scratch (denoising queries, query selection from
the encoder's features) than DETR's hundreds of epochs; DETR and conditional DETR were not
measured against it. Any ``AutoModelForObjectDetection`` checkpoint of the DETR family
(DETR, conditional / deformable DETR, YOLOS, D-FINE) can be named instead; RT-DETR and DETR are tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskhub import RowError, TaskConfig, TaskhubError, TaskSpec, hookimpl, option
from taskhub.media import PixelBatching, load_image
from taskhub.task import Task
from taskhub_plugins.detection_batches import DetectionCollator
from taskhub_plugins.detection_metrics import coco_map, image_matches, map_50

BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class ObjectDetectionConfig(TaskConfig):
    name: str = "object_detection"
    threshold: float = option(0.5, "Predict: keep the detections scoring above this (the object-detection pipeline's default)", ge=0, le=1)
    flip: str = option(
        "horizontal",
        "Train: mirror each training image (and its boxes) half the time: horizontal (as DETR's recipes), both (also upside down) or none",
        choices=("none", "horizontal", "both"),
    )


class ObjectDetection(PixelBatching, Task):
    """Find objects in images: a labelled box and a score for each."""

    name = "object_detection"
    config_cls = ObjectDetectionConfig
    modality = "image"
    auto_model = "AutoModelForObjectDetection"
    processor_class = "AutoImageProcessor"
    input_columns = ("image",)
    target_columns = ("objects",)
    path_columns = ("image",)
    prediction_fields = ("objects",)
    main_metric = "map_50"
    demo_output = "boxes"
    demo_data = "pkg://taskhub_plugins/data/shape_boxes"
    demo_description = "Upload an image to see the objects the model finds in it: a labelled box and a score for each."
    chunk_batches = 4
    overlap_preprocessing = True
    default_model_config = {
        "model_type": "rt_detr",
        "backbone_config": {
            "model_type": "rt_detr_resnet",
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
            "out_features": ["stage2", "stage3", "stage4"],
        },
        "freeze_backbone_batch_norms": False,  # trained from scratch: its batch norms learn too
        "encoder_in_channels": [32, 64, 128],
        "feat_strides": [8, 16, 32],
        "d_model": 64,
        "encoder_hidden_dim": 64,
        "encoder_ffn_dim": 128,
        "encoder_attention_heads": 4,
        "decoder_in_channels": [64, 64, 64],
        "decoder_ffn_dim": 128,
        "decoder_attention_heads": 4,
        "decoder_layers": 3,
        "num_queries": 30,
        "num_denoising": 30,
    }
    default_processor_config = {"processor_class": "RTDetrImageProcessorPil", "size": {"height": 64, "width": 64}}
    training_defaults = {
        "num_train_epochs": 40,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 32,
        "warmup_steps": 0.05,
        # Targets are a list of per-image dicts: the evaluation keeps each batch as it is.
        "eval_do_concat_batches": False,
    }

    # ----------------------------------------------------------------- labels
    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        names: set[str] = set()
        for i, objects in enumerate(train_dataset["objects"]):
            for obj in objects or ():
                if isinstance(obj, dict) and obj.get("label") is not None:
                    names.add(str(obj["label"]))
        if not names:
            raise TaskhubError("training data has no labelled objects: object_detection needs at least one box with a label")
        labels = sorted(names)
        return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}

    @property
    def label2id(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.model_settings.label2id.items()}

    def label_names(self) -> list[str]:
        return sorted(self.label2id, key=self.label2id.get)

    # ------------------------------------------------------------------- data
    def preprocess(self, batch):
        """Each image on its own, as the pipeline does: models that pad a batch to its
        largest image (DETR) then see every image as they would alone; the collator pads."""
        features: dict[str, list] = {"pixel_values": [], "_size": [], "_image": []}
        for i, value in enumerate(batch["image"]):
            image = load_image(value, i)
            encoded = self.processor(images=[image], return_tensors="np")
            features["pixel_values"].append(encoded["pixel_values"][0])
            if "pixel_mask" in encoded:
                features.setdefault("pixel_mask", []).append(encoded["pixel_mask"][0])
            features["_size"].append((image.height, image.width))
            features["_image"].append(image)
        return features

    def encode_targets(self, batch, features):
        """``objects`` -> the model's targets, by its image processor's COCO annotations
        support (the boxes resized with the image, normalised to centre / size, class ids)."""
        label2id = self.label2id
        labels = []
        for i, (objects, image) in enumerate(zip(batch["objects"], features["_image"])):
            annotations = [
                {"bbox": list(box), "category_id": label2id[name], "area": box[2] * box[3], "iscrowd": 0}
                for name, box in checked_objects(objects, i, image.width, image.height, label2id)
            ]
            target = self.processor(images=[image], annotations=[{"image_id": i, "annotations": annotations}], return_tensors="np")["labels"][0]
            labels.append(
                {
                    "class_labels": target["class_labels"].astype("int64"),
                    "boxes": target["boxes"].astype("float32").reshape(-1, 4),
                    "orig_size": target["orig_size"].astype("int64"),
                }
            )
        return {"labels": labels}

    def build_collator(self):
        return DetectionCollator()

    def build_training_collator(self):
        """Training batches with each image mirrored at random (``task.flip``)."""
        return DetectionCollator(flip=self.config.flip)

    def build_evaluation_collator(self):
        """Evaluation batches as they are: the flips are training's augmentation."""
        return self.collator

    # -------------------------------------------------------------- inference
    def _forward(self, inputs):
        """The model on the batch; with a pixel mask (DETR's processors keep each image's
        aspect ratio), on each size of image apart, unpadded: padding changes what DETR
        sees at the borders, and the pipeline runs every image alone."""
        mask = inputs.get("pixel_mask")
        if mask is None:
            return self.call_model(self.model, inputs)
        sizes = [(int(m[:, 0].sum()), int(m[0].sum())) for m in mask]
        if len(set(sizes)) == 1 and sizes[0] == tuple(mask.shape[-2:]):
            return self.call_model(self.model, inputs)
        logits = boxes = outputs = None
        for h, w in dict.fromkeys(sizes):
            rows = [i for i, size in enumerate(sizes) if size == (h, w)]
            part = {**inputs, "pixel_values": inputs["pixel_values"][rows, :, :h, :w], "pixel_mask": mask[rows, :h, :w]}
            outputs = self.call_model(self.model, part)
            if logits is None:
                logits = outputs.logits.new_zeros((len(sizes), *outputs.logits.shape[1:]))
                boxes = outputs.pred_boxes.new_zeros((len(sizes), *outputs.pred_boxes.shape[1:]))
            logits[rows], boxes[rows] = outputs.logits, outputs.pred_boxes
        return type(outputs)(logits=logits, pred_boxes=boxes)

    def postprocess(self, outputs, batch, features):
        import torch

        # Unpadded (one size, or each size apart in _forward): the boxes are fractions of the image itself.
        sizes = features["_size"] if "pixel_mask" in features else target_sizes(features)
        results = self.processor.post_process_object_detection(outputs, threshold=self.config.threshold, target_sizes=torch.tensor(sizes))
        id2label = self.model.config.id2label
        records = []
        for result in results:
            records.append(
                {
                    "objects": [
                        {"score": float(score), "label": id2label[int(label)], "box": dict(zip(BOX_KEYS, box.int().tolist()))}
                        for score, label, box in zip(result["scores"], result["labels"], result["boxes"])
                    ]
                }
            )
        return records

    # ---------------------------------------------------------------- metrics
    def preprocess_logits_for_metrics(self, logits, labels):
        """The class logits and boxes of each evaluation batch (the model's other outputs,
        its auxiliary and encoder predictions, are not kept over the split)."""
        tensors = [value for value in (logits if isinstance(logits, (tuple, list)) else (logits,)) if hasattr(value, "ndim") and value.ndim == 3]
        class_logits = tensors[0]
        boxes = next(t for t in tensors[1:] if t.shape[-1] == 4 and t.shape[:2] == class_logits.shape[:2])
        return class_logits, boxes

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """COCO box mAP (IoU 0.5:0.95) and mAP at IoU 0.5, by pycocotools, over every
        detection (no score threshold), in pixels of the images as stored."""
        return coco_map(*self.evaluated_boxes(eval_pred), len(self.label2id))

    def evaluated_boxes(self, eval_pred) -> tuple[list[list[tuple]], list[list[tuple]]]:
        """The Trainer's gathered evaluation batches -> per image, every detection as
        (score, class id, [xmin, ymin, xmax, ymax]) and its objects as (class id, box)."""
        from types import SimpleNamespace

        import numpy as np
        import torch

        predictions, references = eval_pred.predictions, eval_pred.label_ids
        if not isinstance(predictions, list):  # one batch, not a list of them
            predictions, references = [predictions], [references]
        detections, truths = [], []
        for (class_logits, boxes), targets in zip(predictions, references):
            sizes = [tuple(int(v) for v in t["orig_size"]) for t in targets]
            outputs = SimpleNamespace(logits=torch.as_tensor(np.asarray(class_logits)), pred_boxes=torch.as_tensor(np.asarray(boxes)))
            for result, target, (height, width) in zip(self.processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=torch.tensor(sizes)), targets, sizes):
                detections.append([(float(s), int(c), b) for s, c, b in zip(result["scores"], result["labels"], result["boxes"].tolist())])
                truths.append([(int(c), corners(b, width, height)) for c, b in zip(np.asarray(target["class_labels"]).reshape(-1), np.asarray(target["boxes"]).reshape(-1, 4))])
        return detections, truths

    def score_examples(self, predictions, references=None) -> list[dict[str, Any]]:
        """Per image: precision and recall at IoU 0.5 of the detections scoring above
        ``task.threshold`` (what predict returns, shown as the prediction), and the
        statistics :meth:`aggregate_examples` recomputes ``map_50`` from on a resample
        (:func:`~taskhub_plugins.detection_metrics.image_matches`, padded to one length)."""
        detections, truths = self.evaluated_boxes(predictions)
        labels = {i: name for name, i in self.label2id.items()}
        matches = [image_matches(found, objects, len(labels)) for found, objects in zip(detections, truths)]
        width = max((len(m["score"]) for m in matches), default=0)
        examples = []
        for found, objects, m in zip(detections, truths, matches):
            kept = [hit for score, hit in zip(m["score"], m["matched"]) if score > self.config.threshold]
            shown = sorted((d for d in found if d[0] > self.config.threshold), key=lambda d: -d[0])
            padding = width - len(m["score"])
            examples.append({
                "prediction": [{"score": s, "label": labels[c], "box": dict(zip(BOX_KEYS, (int(v) for v in b)))} for s, c, b in shown],
                "scores": {"precision_50": sum(kept) / len(kept) if kept else 1.0, "recall_50": sum(kept) / len(objects) if objects else 1.0},
                "stats": {
                    "detection_score": m["score"] + [0.0] * padding,
                    "detection_class": m["class"] + [-1] * padding,
                    "detection_matched": m["matched"] + [0] * padding,
                    "objects_per_class": m["objects"],
                },
            })  # fmt: skip
        return examples

    def aggregate_examples(self, columns) -> dict[str, float]:
        """``map_50`` recomputed from the images' statistics (equal to pycocotools' on the
        whole split), and the mean per-image precision and recall."""
        metrics = {name: float(columns[name].mean()) for name in ("precision_50", "recall_50") if name in columns}
        if "detection_score" in columns:
            metrics["map_50"] = map_50(columns["detection_score"], columns["detection_class"], columns["detection_matched"], columns["objects_per_class"])
        return metrics

    # ------------------------------------------------------------------- demo
    def demo_view(self, record, prediction):
        objects = prediction["objects"]
        flat = {"box": [o["box"] for o in objects], "label": [o["label"] for o in objects], "score": [o["score"] for o in objects]}
        return super().demo_view(record, flat)


def checked_objects(objects, index: int, width: int, height: int, label2id: dict[str, int]) -> list[tuple[str, tuple[float, float, float, float]]]:
    """A row's ``objects`` -> (label, COCO [x, y, width, height]) pairs; RowError for an
    object that is not one: no label or box, an unknown label, a box outside the image or
    without width or height."""
    if objects is None:
        raise RowError(index, "missing 'objects' (a list of {label, box}; [] for an image with no objects)")
    if not isinstance(objects, (list, tuple)):
        raise RowError(index, f"'objects' must be a list of {{label, box}}, got {type(objects).__name__}")
    checked = []
    for n, obj in enumerate(objects):
        where = f"object {n + 1}"
        if not isinstance(obj, dict):
            raise RowError(index, f"{where}: must be {{label, box}}, got {type(obj).__name__}")
        name = obj.get("label")
        if name is None:
            raise RowError(index, f"{where}: missing 'label'")
        if str(name) not in label2id:
            raise RowError(index, f"{where}: label '{name}' is not known to the model (known labels: {', '.join(sorted(label2id))})")
        box, bbox = obj.get("box"), obj.get("bbox")
        try:
            if box is not None:
                xmin, ymin, xmax, ymax = (float(box[k]) for k in BOX_KEYS)
            elif bbox is not None:
                x, y, w, h = (float(v) for v in bbox)
                xmin, ymin, xmax, ymax = x, y, x + w, y + h
            else:
                raise RowError(index, f"{where}: missing 'box' ({{xmin, ymin, xmax, ymax}}) or 'bbox' ([x, y, width, height])")
        except (KeyError, TypeError, ValueError):
            shown = box if box is not None else bbox
            raise RowError(index, f"{where}: box {shown!r} is not {{xmin, ymin, xmax, ymax}} numbers or a [x, y, width, height] bbox") from None
        if not (xmax > xmin and ymax > ymin):
            raise RowError(index, f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has no area: xmax must exceed xmin and ymax ymin")
        if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            raise RowError(index, f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is outside the {width}x{height} image")
        checked.append((str(name), (xmin, ymin, xmax - xmin, ymax - ymin)))
    return checked


def target_sizes(features) -> list[tuple[float, float]]:
    """What the normalised boxes of each image scale by to reach its pixels: its size as
    stored, stretched by the padding the collator adds to reach the batch's largest image
    (the boxes of a model without a pixel mask are fractions of the padded input). No
    padding: the size itself, as the pipeline passes it."""
    shapes = [tuple(p.shape[-2:]) for p in features["pixel_values"]]
    padded_h, padded_w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    return [(height * padded_h / h, width * padded_w / w) for (height, width), (h, w) in zip(features["_size"], shapes)]


def corners(box, width: int, height: int) -> list[float]:
    """A normalised (centre x, centre y, width, height) box -> pixel corners."""
    cx, cy, w, h = (float(v) for v in box)
    return [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ObjectDetection.name, ObjectDetection, ObjectDetectionConfig)]
