"""Third-party plugins as a product: the example distribution, the contract suite, the guide."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TASKHUB, DIGITS, read_jsonl, write_jsonl

from taskhub import hookspecs
from taskhub.testing import TaskContract, save_tiny_text_model

EXAMPLE = REPO / "examples" / "taskhub-pair-similarity"


def test_every_hookspec_is_documented_in_the_plugin_guide():
    guide = (REPO / "docs" / "plugins.md").read_text()
    specs = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("taskhub_")]
    assert len(specs) >= 5
    for name in specs:
        parameters = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"{name}({parameters})" in guide, f"docs/plugins.md does not document {name}({parameters})"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example plugin, installed by pip as its own distribution (into a folder on PYTHONPATH)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, timeout=300,
    )
    return target


def cli(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(site), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": ""}
    return subprocess.run([TASKHUB, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_example_plugin_round_trip_with_no_change_to_taskhub(installed_example, tmp_path):
    help_text = cli(installed_example, "--help")
    assert help_text.returncode == 0 and "pair_similarity" in help_text.stdout
    preset = cli(installed_example, "task=pair_similarity_short", "--cfg", "job")
    assert preset.returncode == 0, preset.stderr
    assert "name: pair_similarity" in preset.stdout and "max_length: 32" in preset.stdout

    save_tiny_text_model(tmp_path / "tiny")
    pairs = [{"text": f"a {w} on a table", "text_pair": f"the {w} on the table", "score": 4.5} for w in ("cup", "book", "lamp", "plant")]
    pairs += [{"text": f"a {w} in the rain", "text_pair": "a quiet library", "score": 0.5} for w in ("bus", "dog", "kite", "bike")]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    common = ["task=pair_similarity", "train.num_train_epochs=2", "device=cpu"]
    train = cli(installed_example, *common, f"model.name_or_path={tmp_path / 'tiny'}", f"data.train={data}", f"data.test={data}", f"hydra.run.dir={tmp_path / 'train'}")
    assert train.returncode == 0, train.stderr[-2000:]
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())["metrics"]
    assert {"test_pearson", "test_spearman", "test_mse"} <= set(metrics)
    model = tmp_path / "train" / "model"
    evaluate = cli(installed_example, *common, "mode=evaluate", f"model.name_or_path={model}", f"data.test={data}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["test_mse"] == pytest.approx(metrics["test_mse"], rel=1e-4)
    predict = cli(installed_example, *common, "mode=predict", f"model.name_or_path={model}", f"data.predict={data}", f"hydra.run.dir={tmp_path / 'predict'}")
    assert predict.returncode == 0, predict.stderr[-2000:]
    rows = read_jsonl(tmp_path / "predict" / "predictions.jsonl")
    assert len(rows) == len(pairs) and all(isinstance(r["score"], float) and "input_score" in r for r in rows)


@pytest.mark.slow
def test_example_plugin_passes_taskhub_contract_suite(installed_example):
    env = {**os.environ, "PYTHONPATH": str(installed_example), "TASKHUB_DISABLE_PLUGIN_AUTOLOAD": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=env, timeout=600, cwd=EXAMPLE,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "5 passed" in proc.stdout


# The built-in tasks pass the same contract suite.
class TestTextClassificationContract(TaskContract):
    task_name = "text_classification"
    train_rows = [{"text": t, "label": l} for t, l in [("hot soup", "food"), ("a red bus", "not_food"), ("fresh bread", "food"), ("a tall tower", "not_food")]] * 3
    predict_rows = [{"text": "a plate of rice", "id": 1}, {"text": "a bicycle", "id": 2}]

    def make_model(self, path):
        save_tiny_text_model(path)


class TestImageClassificationContract(TaskContract):
    task_name = "image_classification"
    train_rows = [json.loads(line) for line in (DIGITS / "train.jsonl").read_text().splitlines()[:24]]
    predict_rows = [{"image": r["image"]} for r in train_rows[:3]]

    def make_model(self, path):
        from transformers import ResNetConfig, ResNetModel, ViTImageProcessor

        ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")).save_pretrained(path)
        ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)

    @pytest.fixture(scope="class")
    @classmethod
    def workdir(cls, tmp_path_factory):
        self = cls()  # the test class holds the contract data
        # Image paths in the rows are relative to the data file: keep the files beside the images.
        root = tmp_path_factory.mktemp("contract_images")
        self.make_model(root / "tiny")
        (root / "images").symlink_to(DIGITS / "images")
        write_jsonl(root / "rows.jsonl", self.train_rows)
        write_jsonl(root / "predict.jsonl", self.predict_rows)
        return root
