"""Nothing invalid runs: options out of range, data that cannot mean what the user intends,
checkpoints without the task's head or vocabulary, hub ids offline; and what the Python API
takes. Each case is one line naming the key, file and row, or the model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TASKHUB, run_cli, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.outputs import merge_prediction
from taskhub.testing import save_task_model, save_tiny_text_model

LABELS = {"num_labels": 2, "id2label": {0: "food", 1: "not_food"}, "label2id": {"food": 0, "not_food": 1}}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("base")
    save_tiny_text_model(base)
    path = tmp_path_factory.mktemp("classifier")
    save_task_model("text_classification", base, path, **LABELS)
    return str(path)


# --------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.num_train_epochs=-1", "train.num_train_epochs=-1: must be greater than 0"),
        ("task.top_k=0", "task.top_k=0: must be at least 1"),
        ("data.limit=-3", "data.limit=-3: must be at least 1"),
        ("train.per_device_train_batch_size=-1", "train.per_device_train_batch_size=-1: must be at least 1"),
        ("train.learning_rate=-1", "train.learning_rate=-1: must be greater than 0"),
        ("task.threshold=1.5", "task.threshold=1.5: must be at most 1"),
        ("train.eval_strategy=sometimes", "train.eval_strategy=sometimes: must be one of no, steps, epoch"),
        ("task.problem_type=multi", "task.problem_type=multi: must be one of single_label_classification, multi_label_classification"),
        ("demo.port=70000", "demo.port=70000: must be at most 65535"),
    ],
)
def test_an_option_out_of_range_is_refused_before_anything_loads(tmp_path, override, message):
    proc = run_cli(override, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: {message}"]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_task_options_are_checked_in_the_python_api_too():
    with pytest.raises(TaskhubError, match=r"^task.top_k=0: must be at least 1$"):
        taskhub.load_task("text_classification", top_k=0)
    with pytest.raises(TaskhubError, match=r"^task.max_answer_length=0: must be at least 1$"):
        taskhub.compose(["task=qa"], task={"max_answer_length": 0})


def test_help_lists_every_option_with_its_type_and_description():
    out = run_cli("--help").stdout
    assert "  train.learning_rate = null  [float > 0, or null]\n      Peak learning rate" in out
    assert "  task.top_k = 1  [int >= 1]\n      How many (label, score) pairs" in out
    assert "  mode = train  [train|evaluate|predict|report|demo|push]" in out
    assert "  data.limit = null  [int >= 1, or null]" in out
    ner = run_cli("--help", "task=ner").stdout
    assert "  task.aggregation_strategy = simple  [none|simple|first|average|max]\n      How token predictions become entities" in ner


# ------------------------------------------------------------------------ data
def _train(tmp_path, rows, *extra):
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    return taskhub.run([f"data.train={train}", "train.num_train_epochs=1", *extra], run_dir=tmp_path / "run")


def test_a_label_column_mixing_numbers_and_names_is_refused_at_its_row(tmp_path):
    rows = [{"text": "soup", "label": "food"}, {"text": "a car", "label": "not_food"}, {"text": "rice", "label": 0}]
    with pytest.raises(TaskhubError) as err:
        _train(tmp_path, rows)
    assert str(err.value) == (
        f"{tmp_path / 'train.jsonl'}, row 3: label 0 is a number but row 1's label is text; "
        "a label column holds names or numbers, not both"
    )


def test_one_list_among_single_labels_is_refused_at_its_row(tmp_path):
    rows = [{"text": "soup", "label": "food"}, {"text": "a car", "label": "not_food"}] * 3
    rows.insert(4, {"text": "soup in a car", "label": ["food", "not_food"]})
    with pytest.raises(TaskhubError, match=r"train.jsonl, row 5: label \['food', 'not_food'\] is a list but 6 other rows have a single label"):
        _train(tmp_path, rows)


def test_lists_and_single_labels_mix_when_the_user_says_multi_label(tmp_path, classifier):
    rows = [{"text": "soup", "label": ["food"]}, {"text": "a car", "label": "not_food"}, {"text": "soup car", "label": ["food", "not_food"]}]
    result = _train(tmp_path, rows * 4, f"model.name_or_path={classifier}", "task.problem_type=multi_label_classification")
    assert result["status"] == "ok"
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and sorted(config["label2id"]) == ["food", "not_food"]


# ----------------------------------------------------------------- checkpoints
def _tiny_gpt2_lm(path: Path, tokenizer_from: str) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30522)).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_from) / name, path / name)
    return path


def test_a_checkpoint_without_the_tasks_head_is_refused(tmp_path, classifier):
    gpt2 = _tiny_gpt2_lm(tmp_path / "gpt2", classifier)
    with pytest.raises(TaskhubError) as err:
        taskhub.load_task("ner", model=str(gpt2)).predict(["Ada lives in Paris"])
    assert f"model '{gpt2}' (GPT2LMHeadModel) has no trained ner head: its weights lack classifier.bias, classifier.weight" in str(err.value)
    base = tmp_path / "base"
    save_tiny_text_model(base)
    with pytest.raises(TaskhubError, match=r"\(BertModel\) has no trained qa head"):
        taskhub.load_task("qa", model=str(base)).predict([{"question": "Who?", "context": "Ada."}])


def test_the_cli_refuses_it_in_one_line_without_library_noise(tmp_path, classifier):
    gpt2 = _tiny_gpt2_lm(tmp_path / "gpt2", classifier)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"text": "Ada lives in Paris"}])
    proc = run_cli("task=ner", "mode=predict", f"model.name_or_path={gpt2}", f"data.predict={inputs}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"taskhub: error: model '{gpt2}' (GPT2LMHeadModel) has no trained ner head")
    assert "LOAD REPORT" not in proc.stderr + proc.stdout and "Loading weights" not in proc.stderr


def test_a_model_folder_without_its_vocabulary_is_refused(tmp_path, classifier):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(classifier) / name, bare / name)
    with pytest.raises(TaskhubError, match=r"has no tokenizer vocabulary \(.*missing\): every word would be unknown"):
        taskhub.load_task("text_classification", model=str(bare)).predict(["a bowl of soup"])


def test_a_hub_id_offline_says_so_and_how_to_use_a_local_folder():
    with pytest.raises(TaskhubError) as err:
        taskhub.load_task("text_classification", model="some-org/some-model").predict(["soup"])
    message = str(err.value)
    assert "the run is offline (HF_HUB_OFFLINE=1)" in message and "model.name_or_path=<folder>" in message
    assert "huggingface.co" not in message


# ---------------------------------------------------------------------- outputs
def test_every_input_field_survives_whatever_the_prediction_fields_are_called():
    raw = {"text": "soup", "label": "food", "input_label": "gold", "score": 3, "input_score": 4, "input_score_2": 5}
    merged = merge_prediction(raw, {"label": "not_food", "score": 0.6})
    assert sorted(merged.values(), key=str) == sorted([*raw.values(), "not_food", 0.6], key=str)
    assert merged["input_label"] == "gold" and merged["input_label_2"] == "food"
    assert merged["input_score_3"] == 3 and merged["label"] == "not_food"


# ------------------------------------------------------------------ Python API
def test_predict_takes_what_python_users_pass(classifier):
    import datasets
    import pandas

    task = taskhub.load_task("text_classification", model=classifier)
    texts = ["a bowl of soup", "a red car", "fresh bread"]
    expected = task.predict([{"text": t} for t in texts])
    assert task.predict(texts) == expected
    assert task.predict(t for t in texts) == expected
    assert task.predict(pandas.DataFrame({"text": texts, "id": [1, 2, 3]})) == expected
    assert task.predict(datasets.Dataset.from_dict({"text": texts})) == expected
    assert task.predict({"text": texts[0]}) == expected[:1]
    assert task(texts[0]) == expected[0] and task(texts) == expected


def test_a_multi_column_task_asks_for_records(tmp_path):
    task = taskhub.load_task("qa")
    with pytest.raises(TaskhubError, match=r"^task qa takes records with the columns question, context \(dicts\), not a bare str$"):
        task.predict(["Who?"])


def test_run_takes_keyword_overrides(tmp_path, classifier):
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "soup", "label": "food"}, {"text": "a car", "label": "not_food"}])
    result = taskhub.run(mode="evaluate", model={"name_or_path": classifier}, data={"test": str(test)}, run_dir=tmp_path / "run")
    assert result["mode"] == "evaluate" and 0 <= result["metrics"]["test_accuracy"] <= 1


# ------------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_during_training_is_one_line_with_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    args = [TASKHUB, "data.limit=200", "train.num_train_epochs=20", f"hydra.run.dir={run_dir}"]
    # As from a terminal: SIGINT handled (a test runner's worker may have inherited it ignored).
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=restore_sigint)
    for line in proc.stdout:  # Hydra's console log: the runner says when training starts
        if "training text_classification" in line:
            break
    for _ in range(600):  # and once the first epoch is saved, it is well inside the training loop
        if list(run_dir.glob("checkpoints/checkpoint-*")) or proc.poll() is not None:
            break
        time.sleep(0.2)
    for _ in range(10):  # as a person would, again if a library held on to the first one
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        f"taskhub: interrupted: text_classification train in {run_dir}; to continue: "
        f"taskhub data.limit=200 train.num_train_epochs=20 hydra.run.dir={run_dir} train.resume=auto"
    )
    assert "Traceback" not in stderr
