"""image_to_text: captioning with a vision encoder-decoder model.

transformers 5 has no image-to-text pipeline (its image-text-to-text pipeline needs a
text prompt and does not run vision encoder-decoder models), so the independent
reference is ``model.generate`` called directly on the image processor's pixels. A tiny
random ViT + GPT-2 with a word-level tokenizer trained on the bundled captions checks
equality; a from-scratch model trained for one epoch on a few bundled scenes goes through
train, evaluate and predict with ``taskhub.run``.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, read_jsonl, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.tokenizer_training import train_tokenizer

SCENES = REPO / "plugins" / "data" / "shape_scenes"
SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def scenes(split: str, n: int) -> list[dict]:
    """The first ``n`` rows of a bundled split, with absolute image paths."""
    return [{"image": str(SCENES / r["image"]), "text": r["text"]} for r in read_jsonl(SCENES / f"{split}.jsonl")[:n]]


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    """A random 1-layer ViT + GPT-2 with a word-level tokenizer trained on the captions, saved
    twice: with a processor_config.json pairing image processor and tokenizer, and as a
    checkpoint that saved them separately (AutoProcessor alone gives one of them)."""
    from transformers import (
        GPT2Config,
        TrOCRProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = train_tokenizer([r["text"] for r in scenes("train", 600)], special_tokens=SPECIAL, algorithm="wordlevel", min_frequency=1, append_eos=True)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, initializer_range=0.5)
    decoder = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=40, initializer_range=0.5,
        is_decoder=True, add_cross_attention=True, **ids,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config=config)
    image_processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    paired, separate = tmp_path_factory.mktemp("captioner"), tmp_path_factory.mktemp("captioner_separate")
    for folder in (paired, separate):
        model.save_pretrained(folder)
    TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(paired)
    tokenizer.save_pretrained(separate)
    image_processor.save_pretrained(separate)
    return str(paired), str(separate)


def test_captions_equal_generate_called_directly(captioner):
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
    from transformers.pipelines import SUPPORTED_TASKS

    assert "image-to-text" not in SUPPORTED_TASKS  # when it returns, compare with it instead
    paired, separate = captioner
    rows = scenes("test", 7)
    model = AutoModelForImageTextToText.from_pretrained(paired).eval()
    image_processor, tokenizer = AutoImageProcessor.from_pretrained(separate), AutoTokenizer.from_pretrained(separate)
    theirs = []
    for row in rows:
        pixels = image_processor(Image.open(row["image"]).convert("RGB"), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            ids = model.generate(pixel_values=pixels, max_new_tokens=8, do_sample=False)
        theirs.append(tokenizer.decode(ids[0], skip_special_tokens=True))
    for folder in (paired, separate):
        task = taskhub.load_task("image_to_text", model=folder, device="cpu", generate={"max_new_tokens": 8})
        ours = task.predict([{"image": r["image"]} for r in rows], batch_size=3)
        assert [p["generated_text"] for p in ours] == theirs
    assert len(set(theirs)) > 1  # the images do lead to different captions
    assert type(task.processor).__name__ == "TrOCRProcessor"  # the separately saved parts, paired


@pytest.mark.slow
def test_trains_evaluates_and_predicts_from_scratch(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", scenes("train", 32))
    test = write_jsonl(tmp_path / "test.jsonl", scenes("test", 8))
    common = ["task=image_to_text", "device=cpu", "task.max_target_length=16"]
    trained = taskhub.run(
        [*common, f"data.train={train}", f"data.test={test}", "train.num_train_epochs=1", "train.per_device_train_batch_size=16"],
        run_dir=tmp_path / "train",
    )
    metrics = trained["metrics"]
    assert {f"test_{k}" for k in ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "cider", "gen_len")} <= set(metrics)
    assert 0 <= metrics["test_bleu"] <= 100 and 0 <= metrics["test_rougeL"] <= 1 and metrics["test_cider"] >= 0
    model = tmp_path / "train" / "model"
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "vision-encoder-decoder" and config["decoder"]["vocab_size"] < 40  # word-level, from the captions
    assert (model / "processor_config.json").is_file() and (model / "tokenizer.json").is_file()

    evaluated = taskhub.run([*common, "mode=evaluate", f"model.name_or_path={model}", f"data.test={test}"], run_dir=tmp_path / "evaluate")
    assert evaluated["metrics"]["test_bleu"] == pytest.approx(metrics["test_bleu"])
    samples = read_jsonl(evaluated["outputs"]["samples"])
    assert len(samples) == 8 and all({"bleu", "rougeL", "cider"} <= set(s["scores"]) for s in samples)
    assert evaluated["metrics"]["test_cider"] == pytest.approx(sum(s["scores"]["cider"] for s in samples) / 8)  # CIDEr is the mean of the images' scores

    predicted = taskhub.run([*common, "mode=predict", f"model.name_or_path={model}", f"data.predict={test}", "batch_size=3"], run_dir=tmp_path / "predict")
    predictions = read_jsonl(predicted["outputs"]["predictions"])
    assert [p["text"] for p in predictions] == [r["text"] for r in read_jsonl(test)]  # the input rows kept
    reloaded = taskhub.load_task("image_to_text", model=str(model), device="cpu", max_target_length=16)
    assert [p["generated_text"] for p in predictions] == [r["generated_text"] for r in reloaded.predict(read_jsonl(test), batch_size=1)]
    assert reloaded.score_predictions(predictions, {"text": [p["text"] for p in predictions]})["bleu"] == pytest.approx(metrics["test_bleu"])


def test_bad_input_is_an_error_with_file_and_row(captioner, tmp_path):
    paired, _ = captioner
    rows = scenes("test", 2)
    missing = write_jsonl(tmp_path / "missing.jsonl", [rows[0], {"image": str(tmp_path / "nowhere.png")}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=image_to_text", "mode=predict", f"model.name_or_path={paired}", f"data.predict={missing}", "device=cpu"], run_dir=tmp_path / "a")
    assert str(err.value) == f"{missing}, row 2: image file not found: {tmp_path / 'nowhere.png'}"

    empty = write_jsonl(tmp_path / "empty.jsonl", [rows[0], {"image": rows[1]["image"], "text": " "}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=image_to_text", f"model.name_or_path={paired}", f"data.train={empty}", "device=cpu"], run_dir=tmp_path / "b")
    assert str(err.value) == f"{empty}, row 2: empty 'text'"


def test_cider_equals_pycocoevalcaps_on_tokenized_captions_and_a_hand_computed_value():
    """Two scenes. "a" is in both references: idf log(2/2) = 0; every other n-gram is in
    one: idf log 2. Scene 2's caption equals its reference: cosine 1 for 1-, 2- and
    3-grams, 0 for the 4-grams it has none of: 10 x 3/4 = 7.5. Scene 1 shares "red" of
    {red, circle} vs {red, square} (cosine 1/2), "a red" of two bigrams (1/2), no trigram:
    10 x (1/2 + 1/2) / 4 = 2.5."""
    from pycocoevalcap.cider.cider import Cider

    from taskhub.text_metrics import caption_words, cider_examples

    predictions = ["A red circle.", "a blue circle"]
    references = ["A red square!", "A blue circle."]
    assert [e["scores"]["cider"] for e in cider_examples(predictions, references)] == pytest.approx([2.5, 7.5])
    assert caption_words("A red square!") == ["a", "red", "square"]

    predictions = ["Two red squares and a blue circle.", "a green triangle", "Three circles, all of them yellow!", "a red square"]
    references = [["two red squares and one blue circle", "A blue circle beside two red squares."], "A green triangle.", ["three yellow circles"], "a blue square"]
    ours = [e["scores"]["cider"] for e in cider_examples(predictions, references)]
    words = {i: [" ".join(caption_words(p))] for i, p in enumerate(predictions)}
    gts = {i: [" ".join(caption_words(r)) for r in ([refs] if isinstance(refs, str) else refs)] for i, refs in enumerate(references)}
    corpus, theirs = Cider().compute_score(gts, words)
    assert ours == pytest.approx(list(theirs), abs=1e-12) and sum(ours) / 4 == pytest.approx(corpus)
    assert ours[1] > ours[3] > 0 and cider_examples([], []) == []
