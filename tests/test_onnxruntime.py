"""model.backend=onnxruntime: predictions equal torch fp32's, int8 keeps the labels, the
exported graph is cached by checkpoint content and reused, and the one-line refusals."""

from __future__ import annotations

import os
import random
import sys

import pytest
from conftest import read_jsonl, write_jsonl

import taskhub
from taskhub import onnx_backend
from taskhub.config import ModelBackend, ModelConfig
from taskhub.testing import save_task_model, save_tiny_text_model

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXTS = ["I love pasta with fresh tomato", "the train from Paris was late again", "Maria Lopez lives in Madrid", "ok"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Tiny random checkpoints (1 layer, 16 wide) with each task's head."""
    base = tmp_path_factory.mktemp("tiny_base")
    save_tiny_text_model(base)
    heads = {
        "text_classification": dict(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}),
        "ner": dict(num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)), label2id={l: i for i, l in enumerate(NER_LABELS)}),
        "fill_mask": {},
        "qa": {},
    }
    paths = {}
    for task, config in heads.items():
        paths[task] = str(tmp_path_factory.mktemp(task))
        save_task_model(task, base, paths[task], **config)
    return paths


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(autouse=True)
def _cache_env(graph_cache, monkeypatch):
    monkeypatch.setenv("TASKHUB_CACHE", str(graph_cache))


def rows_for(task: str) -> list[dict]:
    if task == "fill_mask":
        return [{"text": "I love [MASK] with tomato"}, {"text": "the [MASK] from Paris was late"}]
    if task == "qa":
        return [{"question": "Who lives in Madrid?", "context": text} for text in TEXTS]
    return [{"text": text} for text in TEXTS]


def onnx_task(task: str, model: str, **options):
    loaded = taskhub.load_task(task, model=model, device="cpu", **options)
    loaded.model_config.backend = ModelBackend.onnxruntime
    return loaded


def assert_close(expected, actual, where: str = "prediction") -> None:
    """Equal structure, equal labels / tokens / offsets, floats within 1e-4."""
    if isinstance(expected, dict):
        assert expected.keys() == actual.keys(), where
        for key in expected:
            assert_close(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(expected) == len(actual), where
        for i, (a, b) in enumerate(zip(expected, actual)):
            assert_close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-4), where
    else:
        assert expected == actual, where


@pytest.mark.parametrize("task", ["text_classification", "ner", "fill_mask", "qa"])
def test_predictions_equal_torch_fp32(models, task):
    rows = rows_for(task)
    expected = taskhub.load_task(task, model=models[task], device="cpu").predict(rows)
    fast = onnx_task(task, models[task])
    actual = fast.predict(rows, batch_size=3)  # batches of several lengths through one graph
    assert isinstance(fast.model, onnx_backend.OnnxModel)
    assert_close(expected, actual)


def test_int8_quantizes_the_graph_per_channel_and_keeps_most_labels(models):
    import onnx

    rng = random.Random(5)
    words = "the cat sat on a mat while rain fell over old grey town roofs".split()
    records = [{"text": " ".join(rng.choice(words) for _ in range(rng.choice([1, 3, 40, 200])))} for _ in range(60)]
    exact = taskhub.load_task("text_classification", model=models["text_classification"], device="cpu").predict(records)
    task = onnx_task("text_classification", models["text_classification"], quantize="int8")
    fast = task.predict(records)
    agreement = sum(a["label"] == b["label"] for a, b in zip(exact, fast)) / len(records)
    assert agreement >= 0.9
    assert [a["score"] for a in exact] != [b["score"] for b in fast]  # really another computation
    (path,) = task.model.graph_paths.values()
    graph = onnx.load(str(path)).graph
    assert any(node.op_type == "MatMulInteger" for node in graph.node)
    scales = [i for i in graph.initializer if i.name.endswith("_scale") and i.data_type == onnx.TensorProto.FLOAT]
    assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in scales)  # one scale per output channel


def test_the_exported_graph_is_cached_by_content_and_reused(models, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKHUB_CACHE", str(tmp_path / "cache"))
    model = models["text_classification"]
    data = write_jsonl(tmp_path / "rows.jsonl", rows_for("text_classification"))
    expected = taskhub.load_task("text_classification", model=model, device="cpu").predict(rows_for("text_classification"))

    def predict(run: str, *extra: str) -> list[dict]:
        result = taskhub.run(["task=text_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}",
                              "device=cpu", "model.backend=onnxruntime", *extra], run_dir=tmp_path / run)
        return read_jsonl(result["outputs"]["predictions"])

    before = onnx_backend.exports
    first = predict("first")
    assert onnx_backend.exports == before + 1
    graphs = sorted((tmp_path / "cache" / "onnx").iterdir())
    assert [p.suffix for p in graphs] == [".onnx"] and not graphs[0].name.startswith(".")  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert graphs[0].stat().st_mode & 0o777 == 0o666 & ~umask  # readable by whoever shares TASKHUB_CACHE, as the umask allows
    stamp = graphs[0].stat().st_mtime_ns
    second = predict("second")
    assert onnx_backend.exports == before + 1  # reused, not exported again
    assert graphs[0].stat().st_mtime_ns == stamp
    assert [r["label"] for r in first] == [r["label"] for r in second] == [r["label"] for r in expected]
    # Other checkpoint content (a config override changes the model) is another graph.
    predict("third", "model.config.layer_norm_eps=0.001")
    assert onnx_backend.exports == before + 2
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 2


def test_quantizing_writes_nothing_beside_the_shared_graph(models, tmp_path, monkeypatch):
    """The ranks of a torchrun job quantize one cached graph at once: ONNX Runtime's
    quantizer, given the graph's path, wrote a shape-inferred copy beside it under a fixed
    name and deleted it, and the ranks failed on each other's copy ("No such file",
    "Failed to find proper ai.onnx domain"). No file may be written in the cache folder
    but the graphs' own temporary files."""
    import onnx

    monkeypatch.setenv("TASKHUB_CACHE", str(tmp_path / "cache"))
    written = []
    infer = onnx.shape_inference.infer_shapes_path
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", lambda source, target="", *a, **k: written.append(target) or infer(source, target, *a, **k))
    task = onnx_task("text_classification", models["text_classification"], quantize="int8")
    task.predict(rows_for("text_classification"))
    folder = str(tmp_path / "cache" / "onnx")
    assert written and not [path for path in written if os.path.dirname(os.path.abspath(path)) == folder]
    assert sorted(p.name.rsplit("-", 1)[-1] for p in (tmp_path / "cache" / "onnx").iterdir()) == ["fp32.onnx", "int8.onnx"]


def test_other_precision_is_a_one_line_error(models):
    task = onnx_task("text_classification", models["text_classification"], dtype="bf16")
    with pytest.raises(taskhub.TaskhubError, match=r"^model.dtype=bf16 is not supported with model.backend=onnxruntime: [^\n]*$"):
        task.predict(rows_for("text_classification"))


def test_a_generating_task_is_refused_in_one_line():
    import torch

    from taskhub.modeling import for_inference

    task = taskhub.load_task("text_generation", device="cpu")
    with pytest.raises(taskhub.TaskhubError, match=r"^task text_generation is not supported with model.backend=onnxruntime: [^\n]*$"):
        for_inference(torch.nn.Linear(2, 2), ModelConfig(backend=ModelBackend.onnxruntime), task)


def test_a_loss_needs_the_torch_backend(models):
    import torch

    task = onnx_task("text_classification", models["text_classification"])
    batch = {"input_ids": torch.tensor([[101, 102]]), "attention_mask": torch.ones(1, 2, dtype=torch.long), "labels": torch.tensor([0])}
    with pytest.raises(taskhub.TaskhubError, match="needs model.backend=torch"):
        task.model(**batch)


def test_trainer_evaluation_is_refused_in_one_line(models, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": "pasta", "label": "a"}, {"text": "rain", "label": "b"}])
    with pytest.raises(taskhub.TaskhubError, match=r"^model.backend=onnxruntime serves predict and evaluation by prediction; [^\n]*use model.backend=torch$"):
        taskhub.run(["task=text_classification", "mode=evaluate", f"model.name_or_path={models['text_classification']}",
                     f"data.test={data}", "device=cpu", "model.backend=onnxruntime"], run_dir=tmp_path / "run")


def test_missing_onnxruntime_names_the_extra(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    task = onnx_task("text_classification", models["text_classification"])
    with pytest.raises(taskhub.TaskhubError, match=r"needs the 'onnxruntime' package: pip install 'taskhub\[onnx\]'$"):
        task.predict(rows_for("text_classification"))


def test_unknown_backend_is_a_config_error(models, tmp_path):
    with pytest.raises(taskhub.TaskhubError, match="onnx"):
        taskhub.run(["task=text_classification", "mode=predict", f"model.name_or_path={models['text_classification']}",
                     f"data.predict={write_jsonl(tmp_path / 'r.jsonl', rows_for('text_classification'))}", "model.backend=onnx"],
                    run_dir=tmp_path / "run")


def test_cache_folder_follows_taskhub_cache(monkeypatch, tmp_path):
    from taskhub.rundir import user_cache

    monkeypatch.setenv("TASKHUB_CACHE", str(tmp_path))
    assert user_cache("onnx") == tmp_path / "onnx"
    monkeypatch.delenv("TASKHUB_CACHE")
    assert user_cache("onnx") == type(tmp_path)(os.path.expanduser("~/.cache/taskhub/onnx"))
