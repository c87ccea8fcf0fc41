"""The inference engine: length batching, order restored, caps respected, streaming, speed modes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import read_jsonl, write_jsonl

import taskhub
from taskhub.engine.batching import features_per_row, plan_batches, select
from taskhub.errors import BadRowError, RowFailure
from taskhub.manager import get_registry
from taskhub.testing import save_task_model, save_tiny_text_model


# ----------------------------------------------------------------- planning
def test_batches_are_sorted_by_length_and_capped_by_rows():
    lengths = [5, 1, 4, 2, 3]
    assert plan_batches(lengths, [1] * 5, max_rows=2) == [[1, 3], [4, 2], [0]]
    assert plan_batches(lengths, [1] * 5, max_rows=2, sort=False) == [[0, 1], [2, 3], [4]]


def test_token_budget_counts_padded_positions():
    # Sorted: 1, 2, 3, 4, 5; budget 6: [1, 2] pads to 2x2=4, adding 3 would be 3x3=9.
    assert plan_batches([5, 1, 4, 2, 3], [1] * 5, max_rows=10, max_tokens=6) == [[1, 3], [4], [2], [0]]


def test_a_row_over_a_cap_gets_its_own_batch_and_its_windows_stay_together():
    # Row 1 has 3 windows of length 10: more than max_rows and max_tokens allow, alone.
    batches = plan_batches([2, 10, 2], [1, 3, 1], max_rows=2, max_tokens=25)
    assert batches == [[0, 2], [1]]


@pytest.mark.parametrize("seed", range(5))
def test_every_row_is_planned_once_within_the_caps(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 50) for _ in range(200)]
    sizes = [rng.randint(1, 3) for _ in range(200)]
    batches = plan_batches(lengths, sizes, max_rows=8, max_tokens=120)
    assert sorted(r for b in batches for r in b) == list(range(200))
    for batch in batches:
        windows, longest = sum(sizes[r] for r in batch), max(lengths[r] for r in batch)
        assert len(batch) == 1 or (windows <= 8 and windows * longest <= 120)


def test_select_renumbers_windows_to_the_sub_batch():
    features = {"input_ids": [[1], [2], [3], [4]], "_row": [0, 1, 1, 2], "_offsets": ["a", "b", "c", "d"]}
    owned = features_per_row(features, 3)
    assert owned == [[0], [1, 2], [3]]
    sub_batch, sub_features = select({"text": ["x", "y", "z"]}, features, owned, [2, 1])
    assert sub_batch == {"text": ["z", "y"]}
    assert sub_features == {"input_ids": [[4], [2], [3]], "_offsets": ["d", "b", "c"], "_row": [0, 1, 1]}


def test_bad_caps_are_errors():
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        plan_batches([1], [1], max_rows=0)
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        plan_batches([1], [1], max_rows=1, max_tokens=0)


# ------------------------------------------------------------------ engine
@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny random classifier saved with its head, so every load gives the same model."""
    base = tmp_path_factory.mktemp("tiny_base")
    save_tiny_text_model(base)
    path = tmp_path_factory.mktemp("tiny_classifier")
    save_task_model("text_classification", base, path, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    return str(path)


def mixed_texts(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "the cat sat on a mat while rain fell over old grey town roofs".split()
    return [{"id": i, "text": " ".join(rng.choice(words) for _ in range(rng.choice([1, 3, 40, 200])))} for i in range(n)]


def test_sorted_batching_gives_the_unsorted_outputs_in_input_order(classifier):
    task = taskhub.load_task("text_classification", model=classifier, device="cpu", top_k=3)
    records = mixed_texts(70)
    batches = []
    forward = task.forward
    task.forward = lambda inputs: batches.append(tuple(inputs["input_ids"].shape)) or forward(inputs)
    sorted_out = task.predict(records, batch_size=8, chunk_size=32, max_tokens=600)
    sorted_shapes, batches[:] = list(batches), []
    one_by_one = task.predict(records, batch_size=1, sort_by_length=False)
    assert len(sorted_out) == len(records)
    for got, want in zip(sorted_out, one_by_one, strict=True):
        assert got["label"] == want["label"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
    # Caps: at most 8 rows and 600 padded tokens per batch (a single longer row alone).
    assert all(rows <= 8 and (rows == 1 or rows * width <= 600) for rows, width in sorted_shapes)
    # Length sorting pads less than input order does.
    padded = sum(r * w for r, w in sorted_shapes)
    task.predict(records, batch_size=8, chunk_size=32, sort_by_length=False)
    assert padded < sum(r * w for r, w in batches)


def test_text_on_the_cpu_gets_a_default_token_budget(classifier):
    from taskhub.task import CPU_TEXT_MAX_TOKENS

    task = taskhub.load_task("text_classification", model=classifier, device="cpu")
    shapes = []
    forward = task.forward
    task.forward = lambda inputs: shapes.append(tuple(inputs["input_ids"].shape)) or forward(inputs)
    long_texts = [{"text": " ".join(["word"] * 500)}] * 40  # 512 tokens each once truncated
    task.predict(long_texts, batch_size=32)
    assert max(rows * width for rows, width in shapes) <= CPU_TEXT_MAX_TOKENS
    assert sum(rows for rows, _ in shapes) == 40
    shapes.clear()
    task.predict(long_texts, batch_size=32, max_tokens=10**6)  # an explicit budget wins
    assert shapes[0][0] == 32 and shapes[0][0] * shapes[0][1] > CPU_TEXT_MAX_TOKENS  # so the default did cap


def test_predict_streams_chunks_lazily(classifier):
    task = taskhub.load_task("text_classification", model=classifier, device="cpu")
    consumed = []

    def records():
        for i, record in enumerate(mixed_texts(100)):
            consumed.append(i)
            yield record

    stream = task.predict_iter(records(), batch_size=4, chunk_size=16)
    next(stream)
    assert len(consumed) == 16  # one chunk read, not the whole input


def test_cli_predict_keeps_input_order_with_length_batching(classifier, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", mixed_texts(50, seed=3))
    task = taskhub.load_task("text_classification", model=classifier, device="cpu")
    reference = task.predict(read_jsonl(data), batch_size=1, sort_by_length=False)
    result = taskhub.run(
        ["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}",
         "batch_size=4", "predict.max_tokens=300", "device=cpu"],
        run_dir=tmp_path / "run",
    )  # fmt: skip
    rows = read_jsonl(result["outputs"]["predictions"])
    assert [r["id"] for r in rows] == list(range(50))
    assert [r["label"] for r in rows] == [r["label"] for r in reference]


@pytest.mark.parametrize("mode", [{"dtype": "bf16"}, {"quantize": "int8"}])
def test_speed_modes_keep_most_labels(classifier, mode):
    records = mixed_texts(60, seed=5)
    exact = taskhub.load_task("text_classification", model=classifier, device="cpu").predict(records)
    fast_task = taskhub.load_task("text_classification", model=classifier, device="cpu", **mode)
    fast = fast_task.predict(records)
    agreement = sum(a["label"] == b["label"] for a, b in zip(exact, fast)) / len(records)
    assert agreement >= 0.9
    assert [a["score"] for a in exact] != [b["score"] for b in fast]  # the mode really changed the computation
    if "quantize" in mode:
        import torch

        query = fast_task.model.bert.encoder.layer[0].attention.self.query
        assert ".quantized.dynamic." in type(query).__module__
        assert query.weight().qscheme() == torch.per_channel_affine  # one scale per output row


def test_unknown_speed_mode_is_an_error(classifier):
    with pytest.raises(taskhub.TaskhubError, match="'int4' is not a valid Quantization"):
        taskhub.load_task("text_classification", model=classifier, quantize="int4")


# -------------------------------------------------- preprocessing beside the forward pass
@pytest.fixture(scope="module")
def image_classifier(tmp_path_factory):
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    path = tmp_path_factory.mktemp("tiny_resnet")
    torch.manual_seed(0)
    labels = {i: str(i) for i in range(10)}
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", id2label=labels,
                          label2id={v: k for k, v in labels.items()})  # fmt: skip
    ResNetForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def digit_images(n: int) -> list[dict]:
    folder = Path(__file__).parent.parent / "plugins" / "data" / "digits" / "images"
    return [{"image": str(path)} for path in sorted(folder.glob("*.png"))[:n]]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_overlapped_preprocessing_gives_the_same_predictions_and_errors(image_classifier, tmp_path, on_error, monkeypatch):
    task = taskhub.load_task("image_classification", model=image_classifier, device="cpu")
    assert task.overlap_preprocessing
    records = digit_images(40)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    records[29] = {"image": str(tmp_path / "bad.png")}  # in the fourth chunk, prepared in the worker thread
    engine = {"batch_size": 4, "chunk_size": 8, "on_error": on_error}
    results = {}
    for overlap in (False, True):
        monkeypatch.setattr(type(task), "_overlap", lambda self, on=overlap: on)
        if on_error == "raise":
            with pytest.raises(BadRowError, match="row 30: cannot read image .*bad.png"):
                list(task.predict_iter(records, **engine))
            results[overlap] = task.predict(records[:29], **engine)
        else:
            results[overlap] = list(task.predict_iter(records, **engine))
            assert isinstance(results[overlap][29], RowFailure) and results[overlap][29].row == 29
    assert [r if isinstance(r, RowFailure) else r["label"] for r in results[True]] == [
        r if isinstance(r, RowFailure) else r["label"] for r in results[False]
    ]
    plain = [r for r in results[True] if not isinstance(r, RowFailure)]
    reference = [r for r in results[False] if not isinstance(r, RowFailure)]
    assert [r["score"] for r in plain] == pytest.approx([r["score"] for r in reference], abs=1e-6)


def test_overlap_only_on_accelerators(image_classifier, monkeypatch):
    import torch

    task = taskhub.load_task("image_classification", model=image_classifier, device="cpu")
    assert not task._overlap()  # on the CPU the worker thread and the forward pass contend for the GIL
    monkeypatch.setattr(type(task.model), "device", property(lambda self: torch.device("cuda")))
    assert task._overlap()
    assert not get_registry().get("text_classification").task_cls.overlap_preprocessing  # tokenizers: not across threads


def test_images_on_the_cpu_are_batched_by_a_pixel_budget(image_classifier, monkeypatch):
    task = taskhub.load_task("image_classification", model=image_classifier, device="cpu")
    assert task.default_max_tokens() == 8 * 224 * 224
    shapes = []
    forward = task.forward
    task.forward = lambda inputs: shapes.append(tuple(inputs["pixel_values"].shape)) or forward(inputs)
    records = digit_images(40)
    small = task.predict(records, batch_size=32)
    assert [s[0] for s in shapes] == [32, 8]  # 32x32 images: far below the budget
    shapes.clear()
    monkeypatch.setattr(task, "cpu_max_pixels", 3 * 32 * 32)  # as if the images were large
    capped = task.predict(records, batch_size=32)
    assert {s[0] for s in shapes[:-1]} == {3} and shapes[-1][0] == 1
    assert [r["label"] for r in capped] == [r["label"] for r in small]
    assert [r["score"] for r in capped] == pytest.approx([r["score"] for r in small], abs=1e-5)
