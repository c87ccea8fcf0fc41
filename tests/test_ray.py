"""predict.backend=ray: a real local Ray instance (one per module), the same files as backend=local."""

from __future__ import annotations

import json

import pytest
from conftest import read_jsonl

import taskhub
from taskhub.errors import TaskhubError
from taskhub.testing import save_task_model, save_tiny_text_model, write_jsonl

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> str:
    base, path = tmp_path_factory.mktemp("base"), tmp_path_factory.mktemp("classifier")
    save_tiny_text_model(base)
    save_task_model("text_classification", base, path, num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    return str(path)


def rows(n: int = 100, bad: dict[int, dict] | None = None) -> list[dict]:
    """Texts of mixed lengths (so length-sorted batches differ from input order) and an
    input field a prediction would overwrite (``label``)."""
    made = [{"id": i, "text": " ".join(["soup"] * (1 + i * 7 % 23)) + f" {i}", "label": "x"} for i in range(n)]
    for i, row in (bad or {}).items():
        made[i] = row
    return made


def predict(classifier, data, run_dir, *overrides):
    args = ["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}", "batch_size=8"]
    return taskhub.run([*args, *overrides], run_dir=run_dir)


RAY = ["predict.backend=ray", "predict.ray.num_workers=2", "predict.ray.batch_size=16"]


def test_ray_equals_local_and_treats_bad_rows_alike(classifier, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", rows(bad={3: {"id": 3, "text": "   ", "label": "x"}, 40: {"id": 40, "label": "x"}}))
    local = predict(classifier, data, tmp_path / "local", "on_error=skip")
    on_ray = predict(classifier, data, tmp_path / "ray", "on_error=skip", *RAY)
    expected, got = read_jsonl(local["outputs"]["predictions"]), read_jsonl(on_ray["outputs"]["predictions"])
    assert [r["id"] for r in got] == [i for i in range(100) if i not in (3, 40)]
    assert [(r["label"], r["input_label"], r["text"]) for r in got] == [(r["label"], r["input_label"], r["text"]) for r in expected]
    for mine, theirs in zip(got, expected):
        assert set(mine) == set(theirs) and mine["score"] == pytest.approx(theirs["score"], abs=1e-5)
    errors = read_jsonl(on_ray["outputs"]["errors"])
    assert errors == read_jsonl(local["outputs"]["errors"])
    assert [e["row"] for e in errors] == [4, 41]
    assert on_ray["metrics"]["predict_rows"] == 98 and on_ray["metrics"]["predict_errors"] == 2
    with pytest.raises(TaskhubError, match=rf"^{data}, row 4: empty 'text'$"):
        predict(classifier, data, tmp_path / "raise", *RAY)


def test_ray_writes_the_format_predict_output_names(classifier, tmp_path):
    import pandas as pd

    data = write_jsonl(tmp_path / "in.jsonl", rows(30))
    local = predict(classifier, data, tmp_path / "local", "predict.output=out.parquet")
    on_ray = predict(classifier, data, tmp_path / "ray", "predict.output=out.parquet", *RAY)
    expected, got = pd.read_parquet(local["outputs"]["predictions"]), pd.read_parquet(on_ray["outputs"]["predictions"])
    assert list(got.columns) == list(expected.columns) and list(got["id"]) == list(range(30))
    assert list(got["label"]) == list(expected["label"])


def test_ray_writes_a_parquet_folder_equal_to_local(classifier, tmp_path):
    """output_format=parquet: Ray Data writes the shards; sorted by the input row number
    (column row, 1-based as in errors.jsonl) they are backend=local's file, field for field."""
    import pyarrow.dataset as pads

    # A field null in the first batches and text later: the shards still share one schema.
    made = [{**row, "note": None if row["id"] < 40 else f"n{row['id']}"} for row in rows(60, bad={7: {"id": 7, "text": "", "label": "x"}})]
    data = write_jsonl(tmp_path / "in.jsonl", made)
    local = predict(classifier, data, tmp_path / "local", "on_error=skip")
    # One actor: a 60-row file is one block, which one actor predicts (a second would only start).
    on_ray = predict(classifier, data, tmp_path / "ray", "on_error=skip", "predict.output_format=parquet", "predict.backend=ray", "predict.ray.num_workers=1", "predict.ray.batch_size=16")
    folder = tmp_path / "ray" / "predictions"
    assert on_ray["outputs"]["predictions"] == json.loads((tmp_path / "ray" / "metrics.json").read_text())["outputs"]["predictions"] == str(folder)
    assert folder.is_dir() and not list((tmp_path / "ray").glob(".predictions*"))  # renamed into place, no temporary left
    shards = list(folder.iterdir())
    assert len(shards) > 1 and len({pads.dataset(shard, format="parquet").schema for shard in shards}) == 1
    table = pads.dataset(folder, format="parquet").to_table()
    assert table.column_names == [*read_jsonl(local["outputs"]["predictions"])[0], "row"]
    got = sorted(table.to_pylist(), key=lambda r: r["row"])
    assert [r.pop("row") for r in got] == [n for n in range(1, 61) if n != 8]
    expected = read_jsonl(local["outputs"]["predictions"])
    assert len(got) == len(expected) == 59
    for mine, theirs in zip(got, expected):
        assert {k: v for k, v in mine.items() if k != "score"} == {k: v for k, v in theirs.items() if k != "score"}
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-5)
    assert read_jsonl(on_ray["outputs"]["errors"]) == read_jsonl(local["outputs"]["errors"])
    assert (on_ray["metrics"]["predict_rows"], on_ray["metrics"]["predict_errors"]) == (59, 1)


def test_parquet_actors_name_a_bad_row_by_its_input_row(classifier):
    """With on_error=raise an actor fails on a bad row, naming its row in the whole input
    (here a batch starting at row 41); test_an_actor_error_reaches_the_driver_as_one_line
    covers the way back to the driver. In process: no second pool of actors to start."""
    import pyarrow as pa
    from omegaconf import OmegaConf

    from taskhub.engine.ray_backend import ROW, Predictor

    cfg = taskhub.compose(["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", "predict.output_format=parquet", *RAY])
    batch = pa.Table.from_pylist(rows(5, bad={2: {"id": 2, "text": " ", "label": "x"}})).append_column(ROW, pa.array(range(40, 45), pa.int64()))
    with pytest.raises(TaskhubError, match=r"^in.jsonl, row 43: empty 'text'$"):
        Predictor(OmegaConf.to_object(cfg), "in.jsonl", ".", tables=True)(batch)


def test_an_actor_error_reaches_the_driver_as_one_line():
    """Not Ray's wrapper with its retry advice: a taskhub error as it is, any other error
    with its type."""
    from taskhub.engine.ray_backend import _configure, worker_error

    def refuse(batch):
        raise TaskhubError("in.jsonl, row 43: empty 'text'")

    def fail(batch):
        raise ValueError("the tokenizer says no")

    _configure()
    for fn, expected in ((refuse, "in.jsonl, row 43: empty 'text'"), (fail, "predict.backend=ray: a worker failed: ValueError: the tokenizer says no")):
        with pytest.raises(ray.exceptions.RayError) as caught:
            ray.data.from_items([{"a": 1}]).map_batches(fn).materialize()
        assert str(worker_error(caught.value)) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["predict.output_format=parquet"], r"^predict.output_format=parquet: the Parquet folder is written by Ray Data and needs predict.backend=ray;"),
        (["predict.output_format=parquet", "predict.resume=true", *RAY], r"^predict.resume=true: a Parquet folder .* cannot be resumed;"),
        (["predict.output_format=parquet", "predict.output=out.jsonl", *RAY], r"^predict.output=out.jsonl: predict.output_format=parquet writes a folder"),
        (["predict.output_format=shards"], r"^predict.output_format=shards: must be one of file, parquet$"),
    ],
)
def test_parquet_folder_options_are_checked_before_any_model_loads(tmp_path, overrides, message):
    args = ["task=text_classification", "mode=predict", f"model.name_or_path={tmp_path / 'no-model'}", *overrides]
    with pytest.raises(TaskhubError, match=message):
        taskhub.run([*args, f"data.predict={write_jsonl(tmp_path / 'in.jsonl', rows(3))}"], run_dir=tmp_path / "run")


def test_ray_refuses_a_dataset_repository(classifier, tmp_path):
    """Ray Data reads files; a dataset repository (data.dataset) stays with backend=local."""
    (tmp_path / "repo").mkdir()
    write_jsonl(tmp_path / "repo" / "test.jsonl", rows(4))
    args = ["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.dataset={tmp_path / 'repo'}", *RAY]
    with pytest.raises(TaskhubError, match=r"^predict.backend=ray reads .jsonl, .json, .csv, .parquet files named in data.predict"):
        taskhub.run(args, run_dir=tmp_path / "run")


def test_ray_starts_at_a_resumed_row(classifier, tmp_path):
    """A resumed run asks for the rows from its partial file's end on: the same rows,
    numbered in the whole input."""
    from omegaconf import OmegaConf

    from taskhub.data import read_split
    from taskhub.engine.ray_backend import predict_rows
    from taskhub.manager import get_registry

    data = write_jsonl(tmp_path / "in.jsonl", rows(30, bad={20: {"id": 20, "text": "", "label": "x"}}))
    local = predict(classifier, data, tmp_path / "local", "on_error=skip")
    cfg = taskhub.compose(["task=text_classification", "mode=predict", f"model.name_or_path={classifier}", f"data.predict={data}", "on_error=skip", *RAY])
    run = OmegaConf.to_object(cfg)
    task = get_registry().get("text_classification").task_cls(run.task, run.model, device="cpu")
    got = list(predict_rows(task, run, read_split(task, run.data, "predict", with_targets=False), 12))
    assert [raw["id"] for raw, _ in got] == list(range(12, 30))
    assert [p["label"] for _, p in got if isinstance(p, dict)] == [r["label"] for r in read_jsonl(local["outputs"]["predictions"])[12:]]
    assert [(f.row, f.reason) for _, f in got if not isinstance(f, dict)] == [(20, "empty 'text'")]
