"""object_detection: predictions equal to transformers' object-detection pipeline, COCO
mAP by pycocotools on hand-made boxes, a tiny train -> evaluate -> predict run through
taskhub.run, and bad boxes named by file and row."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, read_jsonl, write_jsonl
from PIL import Image

import taskhub
from taskhub.errors import TaskhubError
from taskhub.modeling import transformers_attr

SCENES = REPO / "plugins" / "data" / "shape_boxes"
LABELS = ["circle", "square", "triangle"]


def detection_module():
    from taskhub_plugins import object_detection

    return object_detection


def save_tiny_detector(path, seed: int = 0):
    """The default from-scratch RT-DETR with random weights and its processor, saved as a run would."""
    import torch
    from transformers import AutoConfig, AutoModelForObjectDetection

    module = detection_module()
    settings = dict(module.ObjectDetection.default_model_config)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    torch.manual_seed(seed)
    AutoModelForObjectDetection.from_config(config).eval().save_pretrained(path)
    processor = dict(module.ObjectDetection.default_processor_config)
    transformers_attr(processor.pop("processor_class"))(**processor).save_pretrained(path)
    return path


def test_predictions_equal_the_object_detection_pipeline(tmp_path):
    from transformers import pipeline

    model = save_tiny_detector(tmp_path / "model")
    # Demo scenes plus a non-square, larger image: boxes come back in each image's own pixels.
    images = [str(SCENES / "images" / f"{i:04d}.png") for i in range(3)]
    Image.open(images[1]).convert("RGB").resize((96, 70)).save(tmp_path / "wide.png")
    images.append(str(tmp_path / "wide.png"))
    # Threshold 0: every detection the model makes is compared (its 30 queries' best).
    task = taskhub.load_task("object_detection", model=str(model), threshold=0.0)
    ours = task.predict(images, batch_size=4)
    detector = pipeline("object-detection", model=str(model))
    theirs = detector(images, threshold=0.0)
    for record, detections in zip(ours, theirs):
        assert [(o["label"], o["box"]) for o in record["objects"]] == [(d["label"], d["box"]) for d in detections]
        assert [o["score"] for o in record["objects"]] == pytest.approx([d["score"] for d in detections], abs=1e-5)
    assert all(len(record["objects"]) > 1 for record in ours)  # several detections compared, not none
    assert max(o["box"]["xmax"] for o in ours[3]["objects"]) > 64  # in the wide image's pixels
    json.dumps(ours)  # what predictions.jsonl holds: plain JSON

    # The pipeline's default threshold (0.5), the task's: the detections scoring above it.
    task.config.threshold = 0.5
    default = task.predict(images[:1])[0]["objects"]
    assert [(o["label"], o["box"]) for o in default] == [(d["label"], d["box"]) for d in detector(images[0])]
    kept = [o for o in ours[0]["objects"] if o["score"] > 0.5]
    assert [(o["label"], o["box"]) for o in default] == [(o["label"], o["box"]) for o in kept]

    # The demo draws each detection's box with its label and score over the input.
    shown, boxes = task.demo_view({"image": images[0]}, ours[0])
    first = ours[0]["objects"][0]
    assert shown == images[0] and len(boxes) == len(ours[0]["objects"])
    assert boxes[0] == (tuple(first["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")), f"{first['label']} {first['score']:.0%}")


def test_a_detr_keeping_aspect_ratios_equals_the_pipeline_on_mixed_sizes(tmp_path):
    """DETR's processor keeps each image's aspect ratio and the model takes a pixel mask:
    images of several sizes in one batch are run each size apart, unpadded, as the pipeline
    runs each image alone."""
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, pipeline

    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, num_queries=10, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        backbone_config={"model_type": "resnet", "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "basic", "out_features": ["stage2"]},
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )  # fmt: skip
    torch.manual_seed(0)
    DetrForObjectDetection(config).eval().save_pretrained(tmp_path / "detr")
    DetrImageProcessorPil(size={"shortest_edge": 48, "longest_edge": 96}).save_pretrained(tmp_path / "detr")
    images = [str(SCENES / "images" / "0000.png"), str(tmp_path / "wide.png"), str(SCENES / "images" / "0001.png")]
    Image.open(images[2]).convert("RGB").resize((96, 60)).save(images[1])
    ours = taskhub.load_task("object_detection", model=str(tmp_path / "detr"), threshold=0.0).predict(images, batch_size=3)
    theirs = pipeline("object-detection", model=str(tmp_path / "detr"), threshold=0.0)(images)
    for record, detections in zip(ours, theirs):
        assert [(o["label"], o["box"]) for o in record["objects"]] == [(d["label"], d["box"]) for d in detections]
        assert [o["score"] for o in record["objects"]] == pytest.approx([d["score"] for d in detections], abs=1e-5)
    assert len(ours[1]["objects"]) == 10 and max(o["box"]["xmax"] for o in ours[1]["objects"]) > 64  # the wide image's own pixels


def test_coco_map_by_pycocotools_on_hand_made_boxes():
    coco_map = detection_module().coco_map
    truths = [[(0, [0, 0, 10, 10]), (1, [20, 20, 40, 40])], [(0, [5, 5, 15, 15])]]
    perfect = [[(0.9, 0, [0, 0, 10, 10]), (0.8, 1, [20, 20, 40, 40])], [(0.7, 0, [5, 5, 15, 15])]]
    assert coco_map(perfect, truths, 2) == {"map": pytest.approx(1.0), "map_50": pytest.approx(1.0)}
    # Shifted by 2 px on a 10 px box: IoU 64/136 = 0.47 < 0.5, a miss at every threshold.
    shifted = [[(0.9, 0, [0, 0, 10, 10]), (0.8, 1, [20, 20, 40, 40])], [(0.7, 0, [7, 7, 17, 17])]]
    scores = coco_map(shifted, truths, 2)
    assert scores["map_50"] == pytest.approx((1.0 + 0.5) / 2, abs=0.01)  # class 0 finds one of its two boxes, class 1 its one
    assert coco_map([[], []], truths, 2) == {"map": 0.0, "map_50": 0.0}


def test_map_50_from_per_image_matches_on_a_hand_computed_example():
    """Two images of one class, one object each. Ranked over both: 0.9 hits (image 1),
    0.8 misses (image 1, IoU 0), 0.7 hits (image 2): recall 1/2, 1/2, 1; precision 1,
    1/2, 2/3, made non-increasing 1, 2/3, 2/3. Read at 101 recall points: 1 up to recall
    0.5 (51 points), 2/3 above it (50 points)."""
    from taskhub_plugins.detection_metrics import image_matches, map_50

    truths = [[(0, [0, 0, 10, 10])], [(0, [20, 20, 30, 30])]]
    detections = [[(0.9, 0, [0, 0, 10, 10]), (0.8, 0, [40, 40, 50, 50])], [(0.7, 0, [20, 20, 30, 31])]]
    matches = [image_matches(d, t, 1) for d, t in zip(detections, truths)]
    assert matches[0] == {"score": [0.9, 0.8], "class": [0, 0], "matched": [1, 0], "objects": [1]}
    assert matches[1] == {"score": [0.7], "class": [0], "matched": [1], "objects": [1]}
    expected = (51 * 1 + 50 * 2 / 3) / 101
    columns = {k: [m[k] + [pad] * (2 - len(m[k])) if k != "objects" else m[k] for m in matches] for k, pad in (("score", 0.0), ("class", -1), ("matched", 0), ("objects", 0))}
    assert map_50(columns["score"], columns["class"], columns["matched"], columns["objects"]) == pytest.approx(expected)
    assert detection_module().coco_map(detections, truths, 1)["map_50"] == pytest.approx(expected)
    assert map_50([[0.5]], [[0]], [[0]], [[0]]) == 0.0  # no object at all: COCO's -1, reported as 0


def test_per_image_scores_add_up_to_pycocotools_map_50_on_any_resample():
    """Random scenes (three classes, some images without objects, near misses): the
    aggregate of the per-image scores equals pycocotools' mAP@0.5 on the same images,
    and on a bootstrap-style resample (images drawn with repeats) on those images too."""
    import random
    from types import SimpleNamespace

    import numpy as np

    from taskhub.task import score_columns

    rng = random.Random(0)
    truths, detections = [], []
    for _ in range(12):
        objects = [(rng.randrange(3), box(rng)) for _ in range(rng.randrange(4))]
        found = [(rng.random(), c, jittered(b, rng)) for c, b in objects if rng.random() < 0.8]
        found += [(rng.random(), rng.randrange(3), box(rng)) for _ in range(rng.randrange(3))]
        truths.append(objects)
        detections.append(found)
    task = detection_module().ObjectDetection()
    task.evaluated_boxes = lambda _: (detections, truths)  # what the Trainer's batches give
    task._settings = SimpleNamespace(label2id={name: i for i, name in enumerate(LABELS)})
    examples = task.score_examples(None)
    coco_map = detection_module().coco_map
    assert task.aggregate_examples(score_columns(examples))["map_50"] == pytest.approx(coco_map(detections, truths, 3)["map_50"], abs=1e-12)
    drawn = np.random.default_rng(1).integers(0, 12, size=12)
    columns = {k: v[drawn] for k, v in score_columns(examples).items()}
    resampled = coco_map([detections[i] for i in drawn], [truths[i] for i in drawn], 3)["map_50"]
    assert 0 < resampled < 1 and task.aggregate_examples(columns)["map_50"] == pytest.approx(resampled, abs=1e-12)


def test_per_image_precision_and_recall_above_the_threshold():
    from types import SimpleNamespace

    task = detection_module().ObjectDetection()
    truths = [[(0, [0, 0, 10, 10]), (1, [20, 20, 40, 40])], []]
    detections = [[(0.9, 0, [0, 0, 10, 10]), (0.6, 1, [0, 0, 10, 10]), (0.3, 1, [20, 20, 40, 40])], [(0.2, 2, [1, 1, 5, 5])]]
    task.evaluated_boxes = lambda _: (detections, truths)
    task._settings = SimpleNamespace(label2id={name: i for i, name in enumerate(LABELS)})
    first, second = task.score_examples(None)
    assert first["scores"] == {"precision_50": 0.5, "recall_50": 0.5}  # above 0.5: one hit, one wrong class
    assert first["prediction"] == [{"score": 0.9, "label": "circle", "box": {"xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}},
                                   {"score": 0.6, "label": "square", "box": {"xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}}]  # fmt: skip
    assert second["scores"] == {"precision_50": 1.0, "recall_50": 1.0} and second["prediction"] == []  # nothing to find, nothing claimed
    assert second["stats"]["detection_class"] == [2, -1, -1]  # padded to the longest image's detections


def box(rng) -> list[float]:
    x, y = rng.uniform(0, 50), rng.uniform(0, 50)
    return [x, y, x + rng.uniform(4, 14), y + rng.uniform(4, 14)]


def jittered(b, rng) -> list[float]:
    """The box moved by up to 3 px: some matches at IoU 0.5, some misses."""
    dx, dy = rng.uniform(-3, 3), rng.uniform(-3, 3)
    return [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]


def test_objects_are_checked_and_turned_into_coco_boxes():
    checked_objects = detection_module().checked_objects
    label2id = {name: i for i, name in enumerate(LABELS)}
    objects = [{"label": "circle", "box": {"xmin": 1, "ymin": 2, "xmax": 11, "ymax": 22}}, {"label": "square", "bbox": [0, 0, 64, 64]}]
    assert checked_objects(objects, 0, 64, 64, label2id) == [("circle", (1, 2, 10, 20)), ("square", (0, 0, 64, 64))]
    assert checked_objects([], 0, 64, 64, label2id) == []  # an image with no objects trains every query to find none


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The default from-scratch RT-DETR trained 1 epoch on 16 demo scenes."""
    run_dir = tmp_path_factory.mktemp("detection_run")
    result = taskhub.run(["task=object_detection", "data.limit=16", "train.num_train_epochs=1"], run_dir=run_dir)
    return run_dir, result


def test_train_evaluate_predict_through_taskhub_run(tiny_run, tmp_path):
    run_dir, result = tiny_run
    metrics = result["metrics"]
    for split in ("validation", "test"):
        assert 0.0 <= metrics[f"{split}_map"] <= metrics[f"{split}_map_50"] <= 1.0
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}  # from the data
    model = f"model.name_or_path={run_dir / 'model'}"

    evaluated = taskhub.run(["task=object_detection", "mode=evaluate", model, "data.limit=16"], run_dir=tmp_path / "eval")
    assert evaluated["metrics"]["test_map"] == pytest.approx(metrics["test_map"])  # the saved model reloads to the same metrics
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")  # per image, so the main metric has an interval
    assert [s["input"]["image"] for s in samples] == [str(SCENES / r["image"]) for r in read_jsonl(SCENES / "test.jsonl")[:16]]
    assert all(0 <= s["scores"]["precision_50"] <= 1 and 0 <= s["scores"]["recall_50"] <= 1 for s in samples)
    test = evaluated["metrics"]
    assert test["test_map_50_ci_low"] <= test["test_map_50"] <= test["test_map_50_ci_high"]

    taskhub.run(["task=object_detection", "mode=predict", model, "data.limit=3", "task.threshold=0"], run_dir=tmp_path / "predict")
    rows = read_jsonl(tmp_path / "predict" / "predictions.jsonl")
    inputs = read_jsonl(SCENES / "test.jsonl")[:3]
    assert [r["image"] for r in rows] == [r["image"] for r in inputs]
    assert [r["input_objects"] for r in rows] == [r["objects"] for r in inputs]  # the input's objects kept beside the prediction's
    for row in rows:
        assert row["objects"] and all(o.keys() == {"score", "label", "box"} and o["label"] in LABELS for o in row["objects"])
        assert all(o["box"]["xmin"] <= o["box"]["xmax"] and o["box"]["ymin"] <= o["box"]["ymax"] and 0 <= o["score"] <= 1 for o in row["objects"])


def test_bad_objects_name_file_and_row(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    model = f"model.name_or_path={run_dir / 'model'}"
    image = str(SCENES / "images" / "0000.png")
    good = {"image": image, "objects": [{"label": "circle", "box": {"xmin": 1, "ymin": 1, "xmax": 20, "ymax": 20}}]}
    cases = [
        ([{"label": "circle", "box": {"xmin": 30, "ymin": 1, "xmax": 30, "ymax": 20}}], "object 1: box (30, 1, 30, 20) has no area: xmax must exceed xmin and ymax ymin"),
        ([{"label": "circle", "box": {"xmin": 1, "ymin": 1, "xmax": 20, "ymax": 20}}, {"label": "square", "bbox": [50, 50, 20, 10]}], "object 2: box (50, 50, 70, 60) is outside the 64x64 image"),
        ([{"label": "star", "box": {"xmin": 1, "ymin": 1, "xmax": 20, "ymax": 20}}], "object 1: label 'star' is not known to the model (known labels: circle, square, triangle)"),
    ]
    for i, (objects, message) in enumerate(cases):
        data = write_jsonl(tmp_path / f"test{i}.jsonl", [good, {"image": image, "objects": objects}])
        with pytest.raises(TaskhubError) as caught:
            taskhub.run(["task=object_detection", "mode=evaluate", model, f"data.test={data}"], run_dir=tmp_path / f"r{i}")
        assert str(caught.value).startswith(f"{data}, row 2: {message}")
        assert "\n" not in str(caught.value)


def test_an_image_with_no_objects_is_a_training_example(tmp_path):
    import math

    task = taskhub.load_task("object_detection", model=str(save_tiny_detector(tmp_path / "model")))
    image = str(SCENES / "images" / "0000.png")
    rows = {"image": [image, image], "objects": [[], [{"label": "square", "bbox": [8, 8, 16, 16]}]]}
    features = task.run_preprocess(rows, "rows", [1, 2], with_targets=True)
    assert [len(t["class_labels"]) for t in features["labels"]] == [0, 1]
    assert features["labels"][1]["boxes"].tolist() == [[0.25, 0.25, 0.25, 0.25]]  # (8 + 16 / 2) / 64: normalised centre / size
    batch = task.collator([{"pixel_values": p, "labels": t} for p, t in zip(features["pixel_values"], features["labels"])])
    task.model.train()
    assert math.isfinite(task.model(**batch).loss.detach().item())


def test_training_flips_move_the_boxes_with_the_pixels():
    import numpy as np
    import torch

    task = detection_module().ObjectDetection(config=detection_module().ObjectDetectionConfig(flip="both"))
    image = np.zeros((3, 4, 6), dtype=np.float32)
    image[:, 0, 0] = 1  # one bright pixel, top left, boxed
    row = {"pixel_values": image, "labels": {"class_labels": [0], "boxes": [[0.5 / 6, 0.5 / 4, 1 / 6, 1 / 4]], "orig_size": [4, 6]}}
    training = task.build_training_collator()
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        batch = training([row])
        y, x = (int(v) for v in (batch["pixel_values"][0, 0] == 1).nonzero()[0])
        cx, cy = batch["labels"][0]["boxes"][0, :2].tolist()
        assert (x, y) == (pytest.approx(cx * 6 - 0.5, abs=1e-5), pytest.approx(cy * 4 - 0.5, abs=1e-5))  # the box's centre pixel
        seen.add((x, y))
    assert seen == {(0, 0), (5, 0), (0, 3), (5, 3)}
    assert row["pixel_values"][0, 0, 0] == 1  # the row itself is left as it was
    for collator in (task.build_evaluation_collator(), task.collator):  # evaluation and prediction see the images as they are
        for _ in range(5):
            batch = collator([row])
            assert (batch["pixel_values"][0] == torch.from_numpy(image)).all()
            assert batch["labels"][0]["boxes"][0].tolist() == pytest.approx([0.5 / 6, 0.5 / 4, 1 / 6, 1 / 4])
