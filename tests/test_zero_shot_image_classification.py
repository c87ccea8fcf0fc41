"""zero_shot_image_classification: predictions equal the transformers 5
``zero-shot-image-classification`` pipeline on a tiny CLIP (per-row and per-run candidates,
a custom template); a tiny from-scratch CLIP trained on digit captions through
``taskhub.run``, then evaluated (accuracy, samples, interval) and used to predict; bad
input named by file and row, or by option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DIGITS, REPO, read_jsonl, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.errors import BadRowError

CAPTIONS = REPO / "plugins" / "data" / "digit_captions"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A CLIP with random weights (two 1-layer towers), a tokenizer trained on a few
    captions and a 16x16 image processor, saved as a CLIPProcessor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from taskhub.tokenizer_training import train_tokenizer
    from taskhub_plugins.zero_shot_image_classification import SPECIAL_TOKENS

    path = tmp_path_factory.mktemp("tiny_clip")
    captions = [f"a photo of the digit {n}" for n in NAMES] + ["This is a photo of a red square.", "a cat and a dog"]
    tokenizer = train_tokenizer(captions, special_tokens=SPECIAL_TOKENS, append_eos=True, lowercase=True, min_frequency=1, model_max_length=32)
    images = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 32, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config={**tower, "image_size": 16, "patch_size": 4}, projection_dim=16, logit_scale_init_value=4.0))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """Four digits and a non-square colour image."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    colour = folder / "colour.png"
    Image.new("RGB", (30, 20), (200, 30, 40)).save(colour)
    return [str(DIGITS / "images" / f"{i:04d}.png") for i in (0, 1, 7, 13)] + [str(colour)]


def test_predictions_equal_the_transformers_pipeline(tiny_clip, images):
    from transformers import pipeline

    pipe = pipeline("zero-shot-image-classification", model=str(tiny_clip), device="cpu")
    task = taskhub.load_task("zero_shot_image_classification", model=str(tiny_clip), device="cpu", candidate_labels=["seven", "zero", "red square"])
    per_row = [None, ["one", "cat"], None, ["two", "three", "four", "five", "six", "a dog"], ["square"]]
    rows = [{"image": image} if labels is None else {"image": image, "candidate_labels": labels} for image, labels in zip(images, per_row)]
    ours = task.predict(rows, batch_size=8)  # one batch: rows of 1 to 6 candidates, padded together
    for image, labels, record in zip(images, per_row, ours):
        expected = pipe(image, candidate_labels=labels or ["seven", "zero", "red square"])
        assert record["label"] == [e["label"] for e in expected]
        assert record["score"] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert ours[4] == {"label": ["square"], "score": [1.0]}  # one candidate: softmax over one

    template = "a photo of the digit {}"
    alone = task(images[2], candidate_labels="seven, one, two", hypothesis_template=template)  # per-call options
    expected = pipe(images[2], candidate_labels=["seven", "one", "two"], hypothesis_template=template)
    assert alone["label"] == [e["label"] for e in expected]
    assert alone["score"] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    top = taskhub.load_task("zero_shot_image_classification", model=str(tiny_clip), device="cpu", top_k=2)
    assert top(images[0], candidate_labels=NAMES)["label"] == [e["label"] for e in pipe(images[0], candidate_labels=NAMES)[:2]]


def test_siglip_scores_each_candidate_with_a_sigmoid_as_the_pipeline(tmp_path, images):
    """SigLIP-family models: prompts padded to 64 tokens and sigmoid scores (the pipeline's rule)."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, pipeline

    from taskhub.tokenizer_training import train_tokenizer
    from taskhub_plugins.zero_shot_image_classification import SPECIAL_TOKENS

    tokenizer = train_tokenizer(["a photo of the digit seven", "This is a photo of zero."], special_tokens=SPECIAL_TOKENS, append_eos=True, min_frequency=1, model_max_length=64)
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 16, "width": 16}), tokenizer=tokenizer).save_pretrained(tmp_path)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 64, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(0)
    SiglipModel(SiglipConfig(text_config=text, vision_config={**tower, "image_size": 16, "patch_size": 4})).save_pretrained(tmp_path)
    pipe = pipeline("zero-shot-image-classification", model=str(tmp_path), device="cpu")
    task = taskhub.load_task("zero_shot_image_classification", model=str(tmp_path), device="cpu")
    candidates = [["seven", "zero"], ["one", "seven", "a photo"]]
    ours = task.predict([{"image": image, "candidate_labels": labels} for image, labels in zip(images, candidates)])
    for image, labels, record in zip(images, candidates, ours):
        expected = pipe(image, candidate_labels=labels)
        assert record["label"] == [e["label"] for e in expected]
        assert record["score"] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert sum(ours[1]["score"]) != pytest.approx(1.0)  # each candidate on its own


def caption_rows(split: str, count: int) -> list[dict]:
    """The bundled caption rows, image paths made absolute (they are relative to that folder)."""
    rows = read_jsonl(CAPTIONS / f"{split}.jsonl")[:count]
    return [{**row, "image": str((CAPTIONS / row["image"]).resolve())} for row in rows]


@pytest.mark.slow
def test_tiny_train_evaluate_and_predict_through_run(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", caption_rows("train", 48))
    tests = caption_rows("test", 12)
    for row in tests[6:]:
        del row["candidate_labels"]  # these rows take the split's label set
    test = write_jsonl(tmp_path / "test.jsonl", tests)
    small = [
        "model.config.text_config={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32}",
        "model.config.vision_config={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, image_size: 16, patch_size: 4}",
        "model.config.projection_dim=16",
    ]
    common = ["task=zero_shot_image_classification", "device=cpu"]
    validation = write_jsonl(tmp_path / "validation.jsonl", caption_rows("train", 16))  # captions: watched by their loss
    trained = taskhub.run(
        [*common, *small, f"data.train={train}", f"data.validation={validation}", f"data.test={test}", "train.num_train_epochs=1",
         "train.per_device_train_batch_size=16", "train.early_stopping_patience=1"],
        run_dir=tmp_path / "train",
    )  # fmt: skip
    metrics = trained["metrics"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0 and metrics["train_loss"] > 0
    assert metrics["validation_loss"] > 0 and "validation_accuracy" not in metrics  # a caption split has no labels to score
    model = Path(trained["outputs"]["model"])
    assert json.loads((model / "taskhub.json").read_text())["task"] == "zero_shot_image_classification"
    from transformers import AutoProcessor, CLIPProcessor

    assert isinstance(AutoProcessor.from_pretrained(model), CLIPProcessor)  # the trained tokenizer + image processor

    evaluated = taskhub.run([*common, "mode=evaluate", f"model.name_or_path={model}", f"data.test={test}", "results_cache=null"], run_dir=tmp_path / "eval")
    m = evaluated["metrics"]
    assert m["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert m["test_accuracy_ci_low"] <= m["test_accuracy"] <= m["test_accuracy_ci_high"]
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")
    assert [s["reference"] for s in samples] == [row["label"] for row in tests]
    assert all(s["prediction"] in NAMES for s in samples)
    assert m["test_accuracy"] == pytest.approx(sum(s["scores"]["accuracy"] for s in samples) / len(samples))

    rows = write_jsonl(tmp_path / "in.jsonl", [{"image": row["image"]} for row in tests[:3]])
    predicted = taskhub.run(["mode=predict", f"model.name_or_path={model}", f"data.predict={rows}", "task.candidate_labels=[one,seven]", "device=cpu"], run_dir=tmp_path / "predict")  # task=auto
    out = read_jsonl(predicted["outputs"]["predictions"])
    assert [sorted(r["label"]) for r in out] == [["one", "seven"]] * 3
    assert all(sum(r["score"]) == pytest.approx(1.0) and r["score"] == sorted(r["score"], reverse=True) for r in out)


def test_bad_input_is_one_line_naming_the_file_and_row_or_the_option(tiny_clip, images, tmp_path):
    with pytest.raises(TaskhubError, match=r"^task\.candidate_labels is empty"):
        taskhub.load_task("zero_shot_image_classification", model=str(tiny_clip), candidate_labels=[])
    with pytest.raises(TaskhubError, match=r"^task\.hypothesis_template='a photo' has no \{\} for the label"):
        taskhub.load_task("zero_shot_image_classification", model=str(tiny_clip), hypothesis_template="a photo")

    common = ["task=zero_shot_image_classification", f"model.name_or_path={tiny_clip}", "device=cpu"]
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"image": images[0], "candidate_labels": ["a", "b"]}, {"image": images[1], "candidate_labels": []}])
    with pytest.raises(BadRowError) as err:
        taskhub.run([*common, "mode=predict", f"data.predict={empty}"], run_dir=tmp_path / "empty")
    assert str(err.value) == f"{empty}, row 2: candidate_labels is empty: give at least one label"

    missing = write_jsonl(tmp_path / "missing.jsonl", [{"image": images[0]}, {"image": None}])
    with pytest.raises(BadRowError) as err:
        taskhub.run([*common, "mode=predict", f"data.predict={missing}", "task.candidate_labels=[a,b]"], run_dir=tmp_path / "missing")
    assert str(err.value) == f"{missing}, row 2: missing image"
    gone = write_jsonl(tmp_path / "gone.jsonl", [{"image": "nowhere.png"}])
    with pytest.raises(BadRowError, match=r"gone\.jsonl, row 1: image file not found: .*nowhere\.png$"):
        taskhub.run([*common, "mode=predict", f"data.predict={gone}", "task.candidate_labels=[a,b]"], run_dir=tmp_path / "gone")

    none = write_jsonl(tmp_path / "none.jsonl", [{"image": images[0]}])
    with pytest.raises(BadRowError, match=r"none\.jsonl, row 1: no candidate labels: .* task\.candidate_labels="):
        taskhub.run([*common, "mode=predict", f"data.predict={none}"], run_dir=tmp_path / "none")

    wrong = write_jsonl(tmp_path / "wrong.jsonl", [
        {"image": images[0], "candidate_labels": ["zero", "one"], "label": "zero"},
        {"image": images[1], "candidate_labels": ["zero", "one"], "label": "seven"},
    ])  # fmt: skip
    with pytest.raises(BadRowError) as err:
        taskhub.run([*common, "mode=evaluate", f"data.test={wrong}", "results_cache=null"], run_dir=tmp_path / "wrong")
    assert str(err.value) == f"{wrong}, row 2: label 'seven' is not among the candidate labels (zero, one)"
