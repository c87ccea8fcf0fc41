"""Every source ``datasets`` reads, offline: dataset repositories with configs and split
slices, globs of compressed shards, imagefolder / audiofolder layouts, Parquet with the
``Image`` / ``Audio`` features, streaming, and predictions as JSONL, CSV or Parquet."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import audio_models
import pytest
from conftest import DIGITS, read_jsonl, run_cli, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.testing import save_task_model, save_tiny_text_model

KEYWORDS = DIGITS.parent / "keywords"
LABELS = {"num_labels": 2, "id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
README = """---
configs:
- config_name: en
  data_files:
  - split: train
    path: en/train.jsonl
  - split: test
    path: en/test.jsonl
- config_name: fr
  data_files:
  - split: train
    path: fr/train.jsonl
  - split: test
    path: fr/test.jsonl
---
# Two configs, two splits each
"""


def rows(prefix: str, n: int) -> list[dict]:
    return [{"text": f"{prefix} review number {i} {'great' if i % 2 else 'awful'}", "label": LABELS["id2label"][i % 2]} for i in range(n)]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("text")
    save_tiny_text_model(root / "base")
    save_task_model("text_classification", root / "base", root / "model", **LABELS)
    return str(root / "model")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A local dataset repository: a README whose ``configs:`` declare two configs."""
    root = tmp_path_factory.mktemp("repo")
    for config in ("en", "fr"):
        (root / config).mkdir()
        write_jsonl(root / config / "train.jsonl", rows(f"{config} train", 10))
        write_jsonl(root / config / "test.jsonl", rows(f"{config} test", 6))
    (root / "README.md").write_text(README)
    return root


def predict(overrides: list[str], run_dir: Path) -> list[dict]:
    result = taskhub.run(["mode=predict", *overrides], run_dir=run_dir)
    return read_jsonl(result["outputs"]["predictions"])


def test_a_dataset_repository_by_config_and_split_slice(text_model, repo, tmp_path):
    sliced = predict([f"model.name_or_path={text_model}", f"data.dataset={repo}", "data.config=fr", "data.split.predict=train[2:5]"], tmp_path / "p")
    assert [r["text"] for r in sliced] == [r["text"] for r in rows("fr train", 10)[2:5]]
    by_percent = predict([f"model.name_or_path={text_model}", f"data.dataset={repo}", "data.config=en", "data.split.predict=test[50%:]"], tmp_path / "q")
    assert [r["text"] for r in by_percent] == [r["text"] for r in rows("en test", 6)[3:]]
    # no split named: the test split; the same rows as the file itself
    default = predict([f"model.name_or_path={text_model}", f"data.dataset={repo}", "data.config=en"], tmp_path / "d")
    assert default == predict([f"model.name_or_path={text_model}", f"data.predict={repo / 'en' / 'test.jsonl'}"], tmp_path / "f")


def test_classlabel_names_become_the_models_labels(text_model, tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["sad", "glad", "mad"])})
    folder = tmp_path / "classlabel"
    for split, n in (("train", 9), ("test", 3)):
        data = datasets.Dataset.from_dict({"text": [f"text {i}" for i in range(n)], "label": [i % 3 for i in range(n)]}, features=features)
        data.to_parquet(str(folder / f"{split}.parquet"))
    result = taskhub.run([f"model.name_or_path={text_model}", f"data.dataset={folder}", "train.max_steps=1"], run_dir=tmp_path / "run")
    config = json.loads(Path(result["outputs"]["model"], "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["glad", "mad", "sad"]
    assert "test_accuracy" in result["metrics"]


def test_gzip_shards_through_a_glob_and_a_list_equal_the_plain_file(text_model, tmp_path):
    everything = rows("shard", 12)
    plain = write_jsonl(tmp_path / "all.jsonl", everything)
    (tmp_path / "shards").mkdir()
    for i in range(3):
        with gzip.open(tmp_path / "shards" / f"train-{i}.jsonl.gz", "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in everything[i * 4 : (i + 1) * 4])
    expected = predict([f"model.name_or_path={text_model}", f"data.predict={plain}"], tmp_path / "plain")
    globbed = predict([f"model.name_or_path={text_model}", f"data.predict={tmp_path}/shards/train-*.jsonl.gz"], tmp_path / "glob")
    shards = ",".join(str(tmp_path / "shards" / f"train-{i}.jsonl.gz") for i in range(3))
    listed = predict([f"model.name_or_path={text_model}", f"data.predict=[{shards}]"], tmp_path / "list")
    assert globbed == listed == expected


def test_streaming_predict_and_evaluate_equal_the_in_memory_run(text_model, tmp_path):
    with_a_bad_row = rows("stream", 40)
    with_a_bad_row[17]["text"] = ""
    data = str(write_jsonl(tmp_path / "rows.jsonl", with_a_bad_row))
    common = [f"model.name_or_path={text_model}", f"data.predict={data}", "batch_size=8", "on_error=skip"]
    assert predict([*common, "data.streaming=true"], tmp_path / "s") == predict(common, tmp_path / "m")
    assert read_jsonl(tmp_path / "s" / "errors.jsonl") == read_jsonl(tmp_path / "m" / "errors.jsonl") != []
    evaluate = ["mode=evaluate", f"model.name_or_path={text_model}", f"data.test={data}", "on_error=skip"]
    streamed, in_memory = (taskhub.run([*evaluate, *extra], run_dir=tmp_path / name)["metrics"] for name, extra in (("es", ["data.streaming=true"]), ("em", [])))
    assert (streamed["test_accuracy"], streamed["test_errors"]) == (in_memory["test_accuracy"], in_memory["test_errors"]) == (in_memory["test_accuracy"], 1)
    assert read_jsonl(tmp_path / "es" / "errors.jsonl") == read_jsonl(tmp_path / "em" / "errors.jsonl")


def test_csv_and_parquet_predictions_equal_the_jsonl(text_model, tmp_path):
    import pandas as pd

    data = str(write_jsonl(tmp_path / "rows.jsonl", [{**r, "stars": i} for i, r in enumerate(rows("out", 10))]))
    common = ["mode=predict", f"model.name_or_path={text_model}", f"data.predict={data}"]
    outputs = {ext: taskhub.run([*common, f"predict.output=preds.{ext}"], run_dir=tmp_path / ext)["outputs"]["predictions"] for ext in ("jsonl", "csv", "parquet")}
    assert outputs["csv"] == str(tmp_path / "csv" / "preds.csv")
    expected = pd.read_json(outputs["jsonl"], lines=True)
    pd.testing.assert_frame_equal(pd.read_csv(outputs["csv"]), expected)
    pd.testing.assert_frame_equal(pd.read_parquet(outputs["parquet"]), expected)
    with pytest.raises(TaskhubError, match=r"^predict.output=preds.txt: the extension picks the format"):
        taskhub.run([*common, "predict.output=preds.txt"], run_dir=tmp_path / "txt")


# ---- folders and media features
@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> str:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    root = tmp_path_factory.mktemp("image")
    torch.manual_seed(0)
    labels = [str(d) for d in range(3)]
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=3, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    ResNetForImageClassification(config).save_pretrained(root)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root)
    return str(root)


def export_folder(source: Path, listing: str, column: str, labels: list[str], per_label: int, folder: Path) -> list[dict]:
    """Bundled rows of these labels copied into one subfolder per label; the rows, with
    the copies' paths."""
    taken: dict[str, int] = {}
    exported = []
    for row in read_jsonl(source / listing):
        if row["label"] in labels and taken.get(row["label"], 0) < per_label:
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            target = folder / row["label"] / Path(row[column]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / row[column], target)
            exported.append({column: str(target), "label": row["label"]})
    return exported


def test_imagefolder_trains_and_evaluates_through_the_folders(tmp_path):
    for split in ("train", "test"):
        export_folder(DIGITS, f"{split}.jsonl", "image", ["0", "1", "7"], 8 if split == "train" else 4, tmp_path / split)
    result = taskhub.run(
        ["task=image_classification", f"data.train={tmp_path / 'train'}", f"data.test={tmp_path / 'test'}", "train.num_train_epochs=1"], run_dir=tmp_path / "run"
    )
    config = json.loads(Path(result["outputs"]["model"], "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1", "2": "7"}  # the folder names, not ClassLabel ids
    evaluated = taskhub.run(["task=image_classification", "mode=evaluate", f"model.name_or_path={result['outputs']['model']}", f"data.test={tmp_path / 'test'}"], run_dir=tmp_path / "eval")
    assert evaluated["metrics"]["test_accuracy"] == pytest.approx(result["metrics"]["test_accuracy"])


def test_audiofolder_trains_and_evaluates_through_the_folders(tmp_path):
    model = audio_models.classifier(tmp_path / "base")
    exported = {split: export_folder(KEYWORDS, f"{split}.jsonl", "audio", audio_models.LABELS, 2, tmp_path / split) for split in ("train", "test")}
    result = taskhub.run(
        ["task=audio_classification", f"model.name_or_path={model}", f"data.train={tmp_path / 'train'}", f"data.test={tmp_path / 'test'}", "train.max_steps=1"],
        run_dir=tmp_path / "run",
    )
    config = json.loads(Path(result["outputs"]["model"], "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(audio_models.LABELS)
    predicted = predict(["task=audio_classification", f"model.name_or_path={result['outputs']['model']}", f"data.predict={tmp_path / 'test'}"], tmp_path / "p")
    assert sorted(p["input_label"] for p in predicted) == sorted(row["label"] for row in exported["test"])  # names, not ids
    assert all(p["audio"].startswith(str(tmp_path / "test")) for p in predicted)


def test_parquet_with_image_and_audio_features_equals_the_files(image_model, tmp_path):
    import datasets

    images = sorted(DIGITS.glob("images/*.png"))[:4]
    clips = sorted(KEYWORDS.glob("clips/*.flac"))[:4]
    stored = datasets.Dataset.from_dict(
        {"image": [{"bytes": p.read_bytes(), "path": p.name} for p in images], "audio": [{"bytes": c.read_bytes(), "path": c.name} for c in clips]}
    )
    stored = stored.cast_column("image", datasets.Image()).cast_column("audio", datasets.Audio())
    stored.to_parquet(str(tmp_path / "media.parquet"))
    assert set(datasets.load_dataset("parquet", data_files=str(tmp_path / "media.parquet"), split="train").features) == {"image", "audio"}
    listing = write_jsonl(tmp_path / "files.jsonl", [{"image": str(p), "audio": str(c)} for p, c in zip(images, clips)])
    from_parquet = predict(["task=image_classification", f"model.name_or_path={image_model}", f"data.predict={tmp_path / 'media.parquet'}"], tmp_path / "pq")
    from_files = predict(["task=image_classification", f"model.name_or_path={image_model}", f"data.predict={listing}"], tmp_path / "files")
    assert [(p["label"], p["score"]) for p in from_parquet] == [(p["label"], p["score"]) for p in from_files]
    assert [p["image"] for p in from_parquet] == [p.name for p in images]  # written by path, never as bytes
    audio_model = audio_models.classifier(tmp_path / "audio_model")
    heard = predict(["task=audio_classification", f"model.name_or_path={audio_model}", f"data.predict={tmp_path / 'media.parquet'}"], tmp_path / "apq")
    expected = predict(["task=audio_classification", f"model.name_or_path={audio_model}", f"data.predict={listing}"], tmp_path / "afiles")
    assert [p["label"] for p in heard] == [p["label"] for p in expected]
    assert [p["score"] for p in heard] == pytest.approx([p["score"] for p in expected], abs=1e-6)


def test_data_root_confines_the_files_of_a_folder_layout(image_model, tmp_path):
    export_folder(DIGITS, "test.jsonl", "image", ["0", "1"], 2, tmp_path / "root" / "images")
    outside = sorted(DIGITS.glob("images/*.png"))[0]
    os.symlink(outside, tmp_path / "root" / "images" / "1" / "zz-link.png")
    with pytest.raises(TaskhubError) as err:
        taskhub.run(
            ["task=image_classification", "mode=predict", f"model.name_or_path={image_model}", f"data.root={tmp_path / 'root'}", f"data.predict={tmp_path / 'root' / 'images'}"],
            run_dir=tmp_path / "run",
        )
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'root' / 'images'))}, row 5, column 'image': path '.*zz-link.png' is outside data.root \(.*\)", str(err.value))


# ---- bad input: one line naming the key and value
BAD = [
    ("unknown config", lambda t, r: [f"data.dataset={r}", "data.config=de"], r"^data.dataset={repo}: no such config: set data.config to one of 'en', 'fr'$"),
    ("config missing", lambda t, r: [f"data.dataset={r}"], r"^data.dataset={repo}: the dataset has several configs: set data.config to one of 'en', 'fr'$"),
    ("split expression", lambda t, r: [f"data.dataset={r}", "data.config=en", "data.split.predict=train[:x]"], r"^data.split.predict=train\[:x\]: Unrecognized instruction format: train\[:x\]$"),
    ("unknown split", lambda t, r: [f"data.dataset={r}", "data.config=en", "data.split.predict=dev"], r"^data.split.predict=dev: Unknown split \"dev\". Should be one of \['train', 'test'\].$"),
    ("glob matching nothing", lambda t, r: [f"data.predict={t}/none-*.jsonl.gz"], r"^data.predict={tmp}/none-\*.jsonl.gz: no file matches the pattern$"),
    ("hub id offline", lambda t, r: ["data.dataset=stanfordnlp/imdb"], r"^data.dataset=stanfordnlp/imdb: not a local file or folder, and the run is offline \(HF_HUB_OFFLINE=1\); .* set data.dataset=<the downloaded folder>$"),
    ("hf path offline", lambda t, r: ["data.predict=hf://datasets/stanfordnlp/imdb/plain_text/test-00000-of-00001.parquet"], r"^data.predict=hf://.*: not a local file or folder, and the run is offline \(HF_HUB_OFFLINE=1\); .* set data.predict=<the downloaded file>$"),
    ("folder for a text task", lambda t, r: [f"data.predict={r}"], r"^data.predict={repo} is a folder: folders are read as imagefolder / audiofolder .* set data.dataset=<folder>$"),
]


@pytest.mark.parametrize("overrides, pattern", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_sources_are_one_line_naming_key_and_value(text_model, repo, tmp_path, overrides, pattern):
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["mode=predict", f"model.name_or_path={text_model}", *overrides(tmp_path, repo)], run_dir=tmp_path / "run")
    expected = pattern.replace("{tmp}", re.escape(str(tmp_path))).replace("{repo}", re.escape(str(repo)))
    assert re.search(expected, str(err.value)), str(err.value)


def test_a_folder_without_labels_cannot_train_and_the_cli_exits_2(tmp_path):
    (tmp_path / "flat").mkdir()
    shutil.copy(sorted(DIGITS.glob("images/*.png"))[0], tmp_path / "flat")
    proc = run_cli("task=image_classification", f"data.train={tmp_path / 'flat'}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"taskhub: error: data.train={tmp_path / 'flat'}: no labels: put the files in one subfolder per label, "
        "or name them in a metadata.jsonl / metadata.csv / metadata.parquet with a label column"
    ]


def test_a_streamed_prediction_into_parquet_resumes_after_a_failure(text_model, tmp_path, monkeypatch):
    import pandas as pd

    from taskhub.resume import PartialWriter

    data = write_jsonl(tmp_path / "rows.jsonl", rows("resume", 30))
    args = ["mode=predict", f"model.name_or_path={text_model}", f"data.predict={data}", "data.streaming=true", "predict.output=out.parquet", "batch_size=4"]
    write = PartialWriter.write

    def failing_write(self, entry):
        if self.rows == 12:
            raise OSError("the machine went away")
        write(self, entry)

    monkeypatch.setattr(PartialWriter, "write", failing_write)
    with pytest.raises(OSError):
        taskhub.run(args, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "out.parquet").exists()
    assert (tmp_path / "run" / ".predictions.partial.jsonl").read_text().count("\n") == 1 + 12  # header + rows done
    monkeypatch.setattr(PartialWriter, "write", write)
    resumed = taskhub.run([*args, "predict.resume=true"], run_dir=tmp_path / "run")
    whole = taskhub.run(args, run_dir=tmp_path / "whole")
    assert resumed["metrics"]["predict_rows"] == 30
    pd.testing.assert_frame_equal(pd.read_parquet(resumed["outputs"]["predictions"]), pd.read_parquet(whole["outputs"]["predictions"]))


def test_a_folder_with_a_metadata_file_names_its_files_and_labels(image_model, tmp_path):
    images = sorted(DIGITS.glob("images/*.png"))[:3]
    (tmp_path / "photos").mkdir()
    for image in images:
        shutil.copy(image, tmp_path / "photos")
    write_jsonl(tmp_path / "photos" / "metadata.jsonl", [{"file_name": p.name, "label": str(i)} for i, p in enumerate(images)])
    args = ["task=image_classification", f"model.name_or_path={image_model}"]
    result = taskhub.run([*args, "mode=evaluate", f"data.test={tmp_path / 'photos'}"], run_dir=tmp_path / "eval")
    assert 0 <= result["metrics"]["test_accuracy"] <= 1
    predicted = predict([*args, f"data.predict={tmp_path / 'photos'}"], tmp_path / "p")
    assert [(Path(p["image"]).name, p["input_label"]) for p in predicted] == [(p.name, str(i)) for i, p in enumerate(images)]
    # a metadata file naming a file outside its folder: datasets refuses it, in one line
    write_jsonl(tmp_path / "photos" / "metadata.jsonl", [{"file_name": "../../etc/hostname", "label": "0"}])
    with pytest.raises(TaskhubError, match=rf"^data.predict={re.escape(str(tmp_path / 'photos'))}: Invalid metadata file_name '../../etc/hostname'"):
        predict([*args, f"data.predict={tmp_path / 'photos'}"], tmp_path / "escape")


def test_streamed_training_needs_max_steps_and_names_its_labels(text_model, tmp_path):
    data = str(write_jsonl(tmp_path / "train.jsonl", rows("train", 16)))
    args = [f"model.name_or_path={text_model}", f"data.train={data}", "data.streaming=true"]
    with pytest.raises(TaskhubError, match=r"^data.streaming=true: a stream has no length to count epochs in; set train.max_steps=<steps>$"):
        taskhub.run(args, run_dir=tmp_path / "no_steps")
    result = taskhub.run([*args, "train.max_steps=2", "train.per_device_train_batch_size=4"], run_dir=tmp_path / "run")
    config = json.loads(Path(result["outputs"]["model"], "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert json.loads(Path(result["outputs"]["model"], "training_args.json").read_text())["max_steps"] == 2
