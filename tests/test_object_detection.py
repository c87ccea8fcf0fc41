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
