"""model.compile: the compiled forward gives eager's outputs, compiles one graph for every
batch shape, reports its compile time, and refuses what it does not support in one line.

Each compile of a tiny model costs some 20-40 s of one core (inductor builds C++), so the
tests share models and keep to a few compiles; artifacts go to a per-session cache dir.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

import taskhub
from taskhub.compiling import compiled_call, inductor_cache_dir
from taskhub.testing import save_task_model, save_tiny_text_model

DATA = Path(__file__).resolve().parent.parent / "plugins" / "data"
#: fp32 scores of the compiled graph against eager (inductor reorders float sums).
FP32_TOLERANCE = 1e-4
NER_LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]


@pytest.fixture(scope="module", autouse=True)
def inductor_cache(tmp_path_factory):
    """Compiled artifacts in a folder of this session, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("inductor")
        patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_base")
    save_tiny_text_model(path)
    return path


@pytest.fixture(scope="module")
def classifier(tiny_base, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_classifier")
    save_task_model("text_classification", tiny_base, path, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    return str(path)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def texts(n: int = 40) -> list[dict]:
    """The food_captions test texts and mixed-length ones (1 to 200 words), shuffled."""
    rng = random.Random(0)
    words = "the cat sat on a mat while rain fell over old grey town roofs".split()
    made = [{"text": " ".join(rng.choice(words) for _ in range(rng.choice([1, 3, 40, 200])))} for _ in range(n)]
    rows = [{"text": r["text"]} for r in read_jsonl(DATA / "food_captions" / "test.jsonl")[:n]] + made
    rng.shuffle(rows)
    return rows


def assert_same_classes(got: list[dict], want: list[dict], tolerance: float | None) -> None:
    assert [r["label"] for r in got] == [r["label"] for r in want]
    if tolerance is not None:
        assert max(abs(a["score"] - b["score"]) for a, b in zip(got, want, strict=True)) <= tolerance


def test_compiled_fp32_equals_eager_with_one_graph_for_every_batch_shape(classifier):
    records = texts()
    eager = taskhub.load_task("text_classification", model=classifier, device="cpu").predict(records)
    task = taskhub.load_task("text_classification", model=classifier, device="cpu", compile=True)
    shapes = []
    forward = task.forward
    task.forward = lambda inputs: shapes.append(tuple(inputs["input_ids"].shape)) or forward(inputs)
    compiled = task.predict(records, batch_size=8, max_tokens=600)
    assert_same_classes(compiled, eager, FP32_TOLERANCE)
    # Other batch sizes and lengths, one row per batch included: no new graph.
    assert_same_classes(task.predict(records[:9], batch_size=1, sort_by_length=False), eager[:9], FP32_TOLERANCE)
    assert_same_classes(task.predict(records[:13], batch_size=5), eager[:13], FP32_TOLERANCE)
    assert len({rows for rows, _ in shapes}) >= 4 and len({width for _, width in shapes}) >= 10  # really mixed shapes
    call = compiled_call(task.model)
    assert call is not None and call.graphs == 1  # the recompile bound: one graph, ever
    assert call.seconds > 0


def test_compiled_bf16_with_freezing_gives_eager_bf16_labels(classifier):
    records = texts()
    eager = taskhub.load_task("text_classification", model=classifier, device="cpu", dtype="bf16").predict(records)
    task = taskhub.load_task("text_classification", model=classifier, device="cpu", dtype="bf16", compile=True)
    task.model_config.compile_freezing = True
    assert_same_classes(task.predict(records, batch_size=8), eager, None)
    assert compiled_call(task.model).graphs == 1


def test_compiled_ner_equals_eager(tiny_base, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_ner")
    save_task_model("ner", tiny_base, path, num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)), label2id={v: i for i, v in enumerate(NER_LABELS)})
    records = [{"tokens": r["tokens"]} for r in read_jsonl(DATA / "ner_demo" / "test.jsonl")]
    eager = taskhub.load_task("ner", model=str(path), device="cpu").predict(records)
    compiled = taskhub.load_task("ner", model=str(path), device="cpu", compile=True).predict(records, batch_size=8)
    assert sum(len(r["entities"]) for r in eager) > 0
    for got, want in zip(compiled, eager, strict=True):
        assert [(e["word"], e["entity_group"], e["start"], e["end"]) for e in got["entities"]] == [
            (e["word"], e["entity_group"], e["start"], e["end"]) for e in want["entities"]
        ]
        assert [e["score"] for e in got["entities"]] == pytest.approx([e["score"] for e in want["entities"]], abs=FP32_TOLERANCE)


def test_predict_and_evaluate_runs_report_the_compile_time(classifier, tmp_path):
    data = DATA / "food_captions" / "test.jsonl"
    rows = read_jsonl(data)[:30]
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": r["text"], "label": ["a", "b", "c"][i % 3]}) + "\n" for i, r in enumerate(rows)))
    common = ["task=text_classification", f"model.name_or_path={classifier}", "device=cpu"]
    eager = taskhub.run([*common, "mode=predict", f"data.predict={labelled}"], run_dir=tmp_path / "eager")
    import torch

    torch._dynamo.reset()  # a graph another test compiled in this process would be reused: nothing to compile, 0 s
    compiled = taskhub.run([*common, "mode=predict", f"data.predict={labelled}", "model.compile=true"], run_dir=tmp_path / "compiled")
    metrics = compiled["metrics"]
    assert 0 < metrics["predict_compile_runtime"] <= metrics["predict_runtime"]
    assert "predict_compile_runtime" not in eager["metrics"]
    got, want = read_jsonl(compiled["outputs"]["predictions"]), read_jsonl(eager["outputs"]["predictions"])
    assert [r["label"] for r in got] == [r["label"] for r in want]
    torch._dynamo.reset()
    evaluated = taskhub.run([*common, "mode=evaluate", f"data.test={labelled}", "model.compile=true"], run_dir=tmp_path / "evaluated")
    reference = taskhub.run([*common, "mode=evaluate", f"data.test={labelled}"], run_dir=tmp_path / "reference")
    assert evaluated["metrics"]["test_accuracy"] == reference["metrics"]["test_accuracy"]
    assert evaluated["metrics"]["test_compile_runtime"] > 0


def test_compile_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert inductor_cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("TASKHUB_CACHE", str(tmp_path / "cache"))
    assert inductor_cache_dir() == str(tmp_path / "cache" / "inductor")
    monkeypatch.delenv("TASKHUB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert inductor_cache_dir() == str(tmp_path / ".cache" / "taskhub" / "inductor")


def test_compiling_sends_artifacts_to_taskhubs_cache_even_after_inductor_wrote_its_default(classifier, monkeypatch, tmp_path):
    """Inductor puts its default folder (under /tmp) into TORCHINDUCTOR_CACHE_DIR the first
    time one of its modules asks for it: every CPU run did so before taskhub chose its
    cache (the C++ compiler check imports inductor's builder), and the artifacts went to
    /tmp. Nothing is compiled here: the folder is chosen when the model is wrapped."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from taskhub.compiling import compile_for_inference
    from taskhub.config import ModelConfig

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    monkeypatch.setenv("TASKHUB_CACHE", str(tmp_path / "cache"))
    task = taskhub.load_task("text_classification", model=classifier, device="cpu")
    compile_for_inference(task.model, ModelConfig(name_or_path=classifier, compile=True), task)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"compile_freezing": True}, "model.compile_freezing=true only applies to a compiled model: set model.compile=true too"),
        ({"compile": True, "quantize": "int8"}, "model.compile=true with model.quantize=int8 is not supported: the dynamically quantized Linear layers break"),
    ],
)
def test_unsupported_combinations_are_one_line_errors(classifier, overrides, message):
    from taskhub.config import Quantization

    task = taskhub.load_task("text_classification", model=classifier, device="cpu")
    for key, value in overrides.items():
        setattr(task.model_config, key, Quantization(value) if key == "quantize" else value)
    with pytest.raises(taskhub.TaskhubError, match=message.replace(".", r"\.")) as error:
        task.predict(["a text"])
    assert "\n" not in str(error.value)


def test_missing_cpp_compiler_is_a_one_line_error(classifier, monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler():
        raise RuntimeError("no working C++ compiler found in ('g++',)")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    task = taskhub.load_task("text_classification", model=classifier, device="cpu", compile=True)
    with pytest.raises(taskhub.TaskhubError, match=r"^model\.compile=true needs a C\+\+ compiler") as error:
        task.predict(["a text"])
    assert "\n" not in str(error.value)


def test_generation_tasks_stay_eager_with_a_warning(caplog):
    from taskhub.compiling import compile_for_inference
    from taskhub.config import ModelConfig
    from taskhub.manager import get_registry

    task = get_registry().get("summarization").task_cls(model=ModelConfig(compile=True))
    import torch

    model = torch.nn.Linear(2, 2)
    with caplog.at_level("WARNING", logger="taskhub"):
        assert compile_for_inference(model, task.model_config, task) is model
    assert compiled_call(model) is None
    assert "task summarization runs eager" in caplog.text
