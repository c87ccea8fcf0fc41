"""image_segmentation: pipeline equality, mean IoU from confusion counts, a tiny train ->
evaluate -> predict run through taskhub.run, and bad masks named by file and row."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO, read_jsonl, write_jsonl
from PIL import Image

import taskhub
from taskhub.errors import TaskhubError
from taskhub.modeling import transformers_attr

SHAPES = REPO / "plugins" / "data" / "shape_masks"
LABELS = ["background", "square", "circle", "triangle"]


def segmentation_module():
    from taskhub_plugins import image_segmentation

    return image_segmentation


def save_tiny_segformer(path, seed: int = 0):
    """A random 2-stage SegFormer and its image processor (64x64), saved as a run would."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    config = SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[3, 3], strides=[2, 2],
        num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=4,
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )  # fmt: skip
    SegformerForSemanticSegmentation(config).eval().save_pretrained(path)
    settings = dict(segmentation_module().ImageSegmentation.default_processor_config)
    transformers_attr(settings.pop("processor_class"))(**settings).save_pretrained(path)
    return path


def test_predictions_equal_the_image_segmentation_pipeline(tmp_path):
    from transformers import pipeline

    model = save_tiny_segformer(tmp_path / "model")
    # Scenes of the demo plus sizes the processor resizes (non-square, larger, smaller):
    # masks come back at each image's own size.
    scene = Image.open(SHAPES / "images" / "0001.png").convert("RGB")
    images = [str(SHAPES / "images" / "0000.png"), str(SHAPES / "images" / "0001.png")]
    for i, size in enumerate([(80, 50), (40, 30)]):
        path = tmp_path / f"resized{i}.png"
        scene.resize(size).save(path)
        images.append(str(path))
    module = segmentation_module()
    task = taskhub.load_task("image_segmentation", model=str(model))
    ours = task.predict(images, batch_size=3)
    theirs = pipeline("image-segmentation", model=str(model))(images)
    for path, record, segments in zip(images, ours, theirs):
        assert record["label"] == [s["label"] for s in segments]
        assert record["score"] == [s["score"] for s in segments] == [None] * len(segments)
        width, height = Image.open(path).size
        masks = [module.decode_mask(rle) for rle in record["mask"]]
        for rle, mask, segment in zip(record["mask"], masks, segments):
            assert rle["size"] == [height, width]
            assert np.array_equal(mask, np.asarray(segment["mask"]) == 255)
            assert module.mask_image(rle).tobytes() == segment["mask"].tobytes()
        assert np.array_equal(np.sum(masks, axis=0), np.ones((height, width)))  # a partition of the image
    assert any(len(record["label"]) > 1 for record in ours)  # several segments compared, not one
    json.dumps(ours)  # what predictions.jsonl holds: plain JSON

    # The demo's annotated image: the input and each segment's mask as an array, named.
    shown_image, segments = task.demo_view({"image": images[2]}, ours[2])
    assert shown_image == images[2] and [label for _, label in segments] == ours[2]["label"]
    assert all(mask.shape == (50, 80) for mask, _ in segments) and sum(mask.sum() for mask, _ in segments) == 50 * 80


def test_rle_is_cocos_uncompressed_format():
    module = segmentation_module()
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)
    # column-major: (0,0) (1,0) | (0,1) (1,1) | (0,2) (1,2) -> 0 0 1 1 1 0
    assert module.encode_mask(mask) == {"size": [2, 3], "counts": [2, 3, 1]}
    assert module.encode_mask(~mask) == {"size": [2, 3], "counts": [0, 2, 3, 1]}
    assert np.array_equal(module.decode_mask(module.encode_mask(~mask)), ~mask)


def test_mean_iou_from_a_hand_made_confusion_matrix():
    module = segmentation_module()
    # rows: reference class, columns: predicted class
    matrix = np.array([[50, 10, 0, 0], [5, 20, 0, 0], [0, 0, 0, 0], [0, 5, 0, 10]])
    metrics = module.segmentation_metrics(matrix, LABELS)
    iou = {"background": 50 / (60 + 55 - 50), "square": 20 / (25 + 35 - 20), "triangle": 10 / (15 + 10 - 10)}
    assert metrics["iou_background"] == pytest.approx(iou["background"])
    assert metrics["iou_square"] == pytest.approx(iou["square"])
    assert metrics["iou_triangle"] == pytest.approx(iou["triangle"])
    assert "iou_circle" not in metrics  # in neither references nor predictions: no IoU, out of the mean
    assert metrics["mean_iou"] == pytest.approx(sum(iou.values()) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(80 / 100)
    assert metrics["mean_accuracy"] == pytest.approx((50 / 60 + 20 / 25 + 10 / 15) / 3)

    # confusion(): ignored pixels (255) count nowhere; the sum of per-image counts is the corpus matrix
    reference = np.array([[0, 0, 1], [1, 255, 3]])
    predicted = np.array([[0, 1, 1], [0, 2, 3]])
    counts = module.confusion(predicted, reference, 4, 255)
    assert counts.sum() == 5 and counts[0, 0] == 1 and counts[0, 1] == 1 and counts[1, 1] == 1 and counts[1, 0] == 1 and counts[3, 3] == 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The default from-scratch SegFormer trained 1 epoch on 16 demo scenes."""
    run_dir = tmp_path_factory.mktemp("segmentation_run")
    result = taskhub.run(
        ["task=image_segmentation", "data.limit=16", "train.num_train_epochs=1", "train.per_device_train_batch_size=8"], run_dir=run_dir
    )
    return run_dir, result


def test_train_evaluate_predict_through_taskhub_run(tiny_run, tmp_path):
    run_dir, result = tiny_run
    metrics = result["metrics"]
    for split in ("validation", "test"):
        assert 0.0 <= metrics[f"{split}_mean_iou"] <= 1.0 and 0.0 <= metrics[f"{split}_pixel_accuracy"] <= 1.0
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}  # from the data's README

    evaluated = taskhub.run(["task=image_segmentation", "mode=evaluate", f"model.name_or_path={run_dir / 'model'}", "data.limit=8"], run_dir=tmp_path / "eval")
    scores = evaluated["metrics"]
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")
    assert len(samples) == 8 and all(len(s["stats"]["confusion"]) == 16 for s in samples)
    # the samples' confusion counts add up to the reported corpus metrics
    total = np.sum([s["stats"]["confusion"] for s in samples], axis=0).reshape(4, 4)
    assert segmentation_metrics_of(total)["mean_iou"] == pytest.approx(scores["test_mean_iou"])
    assert np.trace(total) / total.sum() == pytest.approx(scores["test_pixel_accuracy"])
    assert any(k.startswith("test_mean_iou") and k != "test_mean_iou" for k in scores)  # the bootstrap interval

    predicted = taskhub.run(["task=image_segmentation", "mode=predict", f"model.name_or_path={run_dir / 'model'}", "data.limit=3"], run_dir=tmp_path / "predict")
    rows = read_jsonl(predicted["outputs"]["predictions"] if "predictions" in predicted["outputs"] else tmp_path / "predict" / "predictions.jsonl")
    assert [r["image"] for r in rows] == [r["image"] for r in read_jsonl(SHAPES / "test.jsonl")[:3]]
    module = segmentation_module()
    for row in rows:
        assert set(row["label"]) <= set(LABELS) and row["score"] == [None] * len(row["label"])
        covered = np.sum([module.decode_mask(m) for m in row["mask"]], axis=0)
        assert covered.shape == (64, 64) and (covered == 1).all()


def segmentation_metrics_of(matrix):
    return segmentation_module().segmentation_metrics(matrix, LABELS)


def test_bad_masks_name_file_and_row(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    model = f"model.name_or_path={run_dir / 'model'}"
    for name in ("0000.png", "0001.png"):
        shutil.copy(SHAPES / "images" / name, tmp_path / f"image{name}")
        shutil.copy(SHAPES / "masks" / name, tmp_path / f"mask{name}")
    Image.new("L", (32, 32)).save(tmp_path / "small.png")
    Image.fromarray(np.full((64, 64), 7, dtype=np.uint8)).save(tmp_path / "seven.png")
    good = {"image": "image0000.png", "mask": "mask0000.png"}
    cases = [
        ({"image": "image0001.png", "mask": "small.png"}, f"mask {tmp_path / 'small.png'} is 32x32 but image {tmp_path / 'image0001.png'} is 64x64 (width x height)"),
        ({"image": "image0001.png", "mask": "seven.png"}, f"mask {tmp_path / 'seven.png'} has class index 7 but the model has 4 classes (0: background, 1: square, 2: circle, 3: triangle"),
        ({"image": "image0001.png", "mask": "gone.png"}, f"mask file not found: {tmp_path / 'gone.png'}"),
    ]
    for i, (bad, message) in enumerate(cases):
        data = write_jsonl(tmp_path / f"test{i}.jsonl", [good, bad])
        with pytest.raises(TaskhubError) as caught:
            taskhub.run(["task=image_segmentation", "mode=evaluate", model, f"data.test={data}"], run_dir=tmp_path / f"r{i}")
        assert str(caught.value).startswith(f"{data}, row 2: {message}")
        assert "\n" not in str(caught.value)


def test_class_names_beside_the_masks(tmp_path):
    module = segmentation_module()
    (tmp_path / "masks").mkdir()
    mask = tmp_path / "masks" / "a.png"
    assert module.labels_beside(str(mask)) is None
    (tmp_path / "README.md").write_text("---\nlabels: [sky, road]\n---\n# data\n")
    assert module.labels_beside(str(mask)) == ["sky", "road"]  # the README one folder up
    (tmp_path / "masks" / "id2label.json").write_text(json.dumps({"1": "car", "0": "void", "3": "tree"}))
    assert module.labels_beside(str(mask)) == ["void", "car", "2", "tree"]  # beside the masks first; index 2 unnamed


def test_class_names_from_the_masks_or_the_model_being_fine_tuned(tmp_path):
    (tmp_path / "masks").mkdir()
    masks = []
    for i, top in enumerate([2, 1]):
        Image.fromarray(np.array([[0, top], [255, 0]], dtype=np.uint8)).save(tmp_path / "masks" / f"{i}.png")
        masks.append(str(tmp_path / "masks" / f"{i}.png"))
    scratch = taskhub.load_task("image_segmentation")
    assert scratch.model_init_kwargs({"mask": masks})["id2label"] == {0: "0", 1: "1", 2: "2"}  # 255: ignored, not a class
    tuned = taskhub.load_task("image_segmentation", model=str(save_tiny_segformer(tmp_path / "model")))
    assert tuned.model_init_kwargs({"mask": masks})["id2label"] == dict(enumerate(LABELS))  # its 4 names cover indices 0-2
    named = taskhub.load_task("image_segmentation", labels=["sea", "sand", "sky"])
    assert named.model_init_kwargs({"mask": masks})["label2id"] == {"sea": 0, "sand": 1, "sky": 2}
