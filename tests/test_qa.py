"""qa: the v4 pipeline's contract (reference outputs), hand-checked spans, windows, SQuAD metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_jsonl, write_jsonl
from qa_models import oracle_qa_model, random_qa_model

import taskhub
from taskhub import RowError, TaskhubError

HERE = Path(__file__).resolve().parent
CASES = json.loads((HERE / "data" / "qa_cases.json").read_text())
REFERENCE = json.loads((HERE / "data" / "qa_v4_reference.json").read_text())
FILLER = " ".join(f"Paragraph {i} describes the harbour, the market and the old mill of town {i}." for i in range(60))


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("qa_random")
    random_qa_model(path)
    return str(path)


def as_list(prediction) -> list[dict]:
    fields = ("answer", "score", "start", "end")
    if isinstance(prediction["answer"], list):
        return [dict(zip(fields, values)) for values in zip(*(prediction[f] for f in fields))]
    return [{f: prediction[f] for f in fields}]


@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: json.dumps(c["settings"]))
def test_predictions_equal_the_transformers_v4_pipeline(random_model, case):
    settings = case["settings"]
    task = taskhub.load_task(
        "qa",
        model=random_model,
        device="cpu",
        top_k=settings["top_k"],
        handle_impossible_answer=settings.get("handle_impossible_answer", False),
        max_answer_length=settings.get("max_answer_len", 15),
        max_length=settings.get("max_seq_len", 384),
        doc_stride=settings.get("doc_stride", 128),
        align_to_words=settings.get("align_to_words", True),
    )
    predictions = task.predict(CASES["examples"], batch_size=3)
    for ours, theirs in zip(predictions, case["answers"]):
        ours = as_list(ours)
        assert [(a["answer"], a["start"], a["end"]) for a in ours] == [(a["answer"], a["start"], a["end"]) for a in theirs]
        assert [a["score"] for a in ours] == pytest.approx([a["score"] for a in theirs], rel=1e-4, abs=1e-9)


def test_answers_are_substrings_of_the_context_at_their_offsets(random_model):
    task = taskhub.load_task("qa", model=random_model, device="cpu", top_k=5, max_length=48, doc_stride=16)
    for example, prediction in zip(CASES["examples"], task.predict(CASES["examples"])):
        for answer in as_list(prediction):
            assert example["context"][answer["start"] : answer["end"]] == answer["answer"]


def test_hand_checked_span_is_found_beyond_the_first_window(tmp_path):
    oracle_qa_model(tmp_path, start_word="captain", end_word="cook")
    context = FILLER + " The treasure was buried by Captain Cook in 1851."
    task = taskhub.load_task("qa", model=str(tmp_path), device="cpu", max_length=64, doc_stride=16)
    windows = task.preprocess({"question": ["Who buried it?"], "context": [context]})
    assert len(windows["input_ids"]) > 10  # the answer is many windows away from the start
    [prediction] = task.predict([{"question": "Who buried it?", "context": context}])
    assert prediction["answer"] == "Captain Cook"
    assert context[prediction["start"] : prediction["end"]] == "Captain Cook"
    assert prediction["start"] == context.index("Captain Cook")
    assert prediction["score"] > 0.9


def test_whole_words_unless_align_to_words_is_off(tmp_path):
    oracle_qa_model(tmp_path, start_word="##ab", end_word="##ab")  # the last piece of a word
    context = "The ship of Captain Ahab sailed at dawn."
    assert taskhub.load_task("qa", model=str(tmp_path)).processor.tokenize("Ahab") == ["ah", "##ab"]
    word = taskhub.load_task("qa", model=str(tmp_path), device="cpu").predict([{"question": "From where?", "context": context}])
    piece = taskhub.load_task("qa", model=str(tmp_path), device="cpu", align_to_words=False).predict([{"question": "From where?", "context": context}])
    assert word[0]["answer"] == "Ahab"
    assert piece[0]["answer"] == "ab" and context[piece[0]["start"] : piece[0]["end"]] == "ab"


def test_training_targets_point_at_the_answer_tokens_or_cls(random_model):
    task = taskhub.load_task("qa", model=random_model, max_length=64, doc_stride=16)
    context = FILLER[:400] + " The lighthouse was painted red by Ada Lovelace in 1842."
    start = context.index("Ada Lovelace")
    batch = {"question": ["Who painted it?"], "context": [context], "answers": [{"text": ["Ada Lovelace"], "answer_start": [start]}]}
    features = task.preprocess(batch)
    targets = task.encode_targets(batch, features)
    hits = [(w, s, e) for w, (s, e) in enumerate(zip(targets["start_positions"], targets["end_positions"])) if s]
    assert hits, "the answer must be labelled in the windows that contain it"
    for window, s, e in hits:
        offsets = features["_offsets"][window]
        assert context[offsets[s][0] : offsets[e][1]] == "Ada Lovelace"
    misses = [w for w, s in enumerate(targets["start_positions"]) if not s]
    assert misses and all(targets["end_positions"][w] == 0 for w in misses)


def test_bad_answers_are_row_errors(random_model):
    task = taskhub.load_task("qa", model=random_model)
    batch = {"question": ["q?", "q?"], "context": ["Paris is big.", "Rome is old."], "answers": [{"text": ["Paris"], "answer_start": [0]}, {"text": ["Rome"], "answer_start": [3]}]}
    with pytest.raises(RowError) as err:
        task.encode_targets(batch, task.preprocess(batch))
    assert err.value.index == 1 and err.value.message == "answer 'Rome' is not at answer_start 3 of the context"
    with pytest.raises(RowError, match="question is missing or empty"):
        task.preprocess({"question": ["ok?", ""], "context": ["x", "y"]})


def test_squad_metrics_match_hand_computed_values():
    from taskhub_plugins.qa import normalize_answer, token_f1

    assert normalize_answer("The  Eiffel, Tower!") == "eiffel tower"
    assert token_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    task = taskhub.load_task("qa")
    references = {"answers": [{"text": ["1889"], "answer_start": [0]}, {"text": ["Gustave Eiffel", "Eiffel"], "answer_start": [0, 8]}, {"text": [], "answer_start": []}]}
    predictions = [{"answer": "1889"}, {"answer": "Mr Eiffel"}, {"answer": ""}]
    metrics = task.score_predictions(predictions, references)
    # row 2: best gold is "Eiffel": P=1/2, R=1 -> F1 2/3; row 3 unanswerable and predicted empty
    assert metrics["exact_match"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert metrics["HasAns_f1"] == pytest.approx((1 + 2 / 3) / 2) and metrics["NoAns_exact_match"] == 1.0
    assert metrics["HasAns_total"] == 2 and metrics["NoAns_total"] == 1


def test_missing_context_column_is_a_one_line_error(random_model, tmp_path):
    """In-process: the CLI prints this message as its one line "taskhub: error: <message>" and
    exits 2 (tested on real subprocesses in test_bad_input.py and test_end_to_end.py)."""
    data = write_jsonl(tmp_path / "questions.jsonl", [{"question": "Who?"}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=qa", "mode=predict", f"model.name_or_path={random_model}", f"data.predict={data}"], run_dir=tmp_path / "r")
    assert str(err.value) == (
        f"{data}: missing required column 'context' for task qa (columns found: question; map yours with data.columns.<name>=<your column>)"
    )


def synthetic_squad(count: int, seed: int) -> list[dict]:
    """Short fact sentences with three question types: learnable in a few dozen steps."""
    import random

    rng = random.Random(seed)
    names = ["Anna", "Boris", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
    cities = ["Lisbon", "Oslo", "Quito", "Hanoi", "Dakar", "Perth", "Lima", "Riga", "Cairo", "Osaka", "Tunis", "Leeds"]
    jobs = ["baker", "pilot", "nurse", "tailor", "farmer", "lawyer", "welder", "dentist", "chemist", "plumber"]
    rows = []
    for i in range(count):
        name, city, job = rng.choice(names), rng.choice(cities), rng.choice(jobs)
        context = f"{name} lives in {city} and works as a {job}. The weather there is mild in spring."
        question, answer = rng.choice(
            [(f"Where does {name} live?", city), (f"What is {name}'s job?", job), (f"Who works as a {job}?", name)]
        )
        rows.append({"id": i, "question": question, "context": context, "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
    return rows


def test_train_evaluate_predict(tmp_path):
    """Fine-tune the first 2 layers of MiniLM on short synthetic facts, evaluate the saved model, predict.

    In-process through taskhub.run (the same overrides the CLI takes): a CLI subprocess
    costs seconds of imports, and test_end_to_end.py runs one."""
    train = write_jsonl(tmp_path / "train.jsonl", synthetic_squad(240, seed=1))
    test = write_jsonl(tmp_path / "test.jsonl", synthetic_squad(40, seed=2))
    data = (f"data.train={train}", f"data.test={test}")
    train_dir, eval_dir, predict_dir = tmp_path / "train", tmp_path / "eval", tmp_path / "predict"
    taskhub.run(
        ["task=qa", *data, "model.config.num_hidden_layers=2", "train.num_train_epochs=3", "train.learning_rate=3e-4", "train.eval_strategy=no"],
        run_dir=train_dir,
    )  # fmt: skip
    metrics = json.loads((train_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test_f1"] > 0.6  # an untrained head scores near 0 (random spans)
    taskhub.run(["task=qa", "mode=evaluate", f"model.name_or_path={train_dir / 'model'}", f"data.test={test}"], run_dir=eval_dir)
    assert json.loads((eval_dir / "metrics.json").read_text())["metrics"]["test_f1"] == pytest.approx(metrics["test_f1"])
    taskhub.run(["task=qa", "mode=predict", f"model.name_or_path={train_dir / 'model'}", f"data.predict={test}"], run_dir=predict_dir)
    rows = read_jsonl(predict_dir / "predictions.jsonl")
    assert [r["id"] for r in rows] == list(range(40))
    assert all(r["context"][r["start"] : r["end"]] == r["answer"] for r in rows)
    assert all("question" in r and "answers" in r for r in rows)  # input fields kept
