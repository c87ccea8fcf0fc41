"""The audio tasks end to end: from-scratch models trained on slices of the bundled data
-> evaluate -> predict (equal to transformers' pipelines), and bad audio files as one-line
errors naming file and row. The asr model trains through the CLI (its printed table is
under test); everything else runs the CLI's runner in this process (``taskhub.run``): a
CLI subprocess costs seconds of imports each."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from audio_models import read_mono
from conftest import REPO, read_jsonl, run_cli, write_jsonl

import taskhub

pytestmark = pytest.mark.slow

KEYWORDS = REPO / "plugins" / "data" / "keywords"
SPOKEN_DIGITS = REPO / "plugins" / "data" / "spoken_digits"
WORDS = ("yes", "no", "up", "down")


def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


# ------------------------------------------------------------- audio_classification
@pytest.fixture(scope="module")
def keywords_run(tmp_path_factory):
    """The default from-scratch wav2vec2-BERT trained on four of the ten keywords."""
    folder = tmp_path_factory.mktemp("keywords")
    splits = {}
    for split, size in (("train", 160), ("test", 40)):
        rows = [r for r in read_jsonl(KEYWORDS / f"{split}.jsonl") if r["label"] in WORDS][:size]
        splits[split] = write_jsonl(folder / f"{split}.jsonl", [{**r, "audio": str(KEYWORDS / r["audio"])} for r in rows])
    run_dir = folder / "run"
    # In-process (the CLI's overrides): the asr run below is the one trained through the console script.
    taskhub.run(["task=audio_classification", f"data.train={splits['train']}", f"data.test={splits['test']}", "train.num_train_epochs=6"], run_dir=run_dir)
    return run_dir, splits["test"]


def test_keywords_training_beats_chance_and_reloads(keywords_run, tmp_path):
    run_dir, test = keywords_run
    metrics = metrics_of(run_dir)
    assert metrics["test_accuracy"] >= 0.7  # four words: chance is 0.25
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["model_type"] == "wav2vec2-bert" and config["id2label"] == {"0": "down", "1": "no", "2": "up", "3": "yes"}
    # reloading the saved model (the runner the CLI runs, in this process) reproduces the test metrics
    reloaded = taskhub.run(["task=audio_classification", "mode=evaluate", f"model.name_or_path={run_dir / 'model'}", f"data.test={test}"], tmp_path)
    assert reloaded["metrics"]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_keywords_predict_keeps_rows_and_matches_the_pipeline(keywords_run, tmp_path):
    # Your own file and column name, paths relative to the file, one clip as 8 kHz stereo.
    model = keywords_run[0] / "model"
    rows = read_jsonl(KEYWORDS / "test.jsonl")[:5]
    (tmp_path / "clips").mkdir()
    for row in rows:
        shutil.copy(KEYWORDS / row["audio"], tmp_path / row["audio"])
    mono, _ = sf.read(KEYWORDS / rows[0]["audio"], dtype="float32")
    sf.write(tmp_path / "stereo.wav", np.stack([mono[::2], mono[1::2]], axis=1), 8000, subtype="FLOAT")
    paths = ["stereo.wav"] + [r["audio"] for r in rows[1:]]
    data = write_jsonl(tmp_path / "mine.jsonl", [{"id": i, "path": p} for i, p in enumerate(paths)])
    taskhub.run(["task=audio_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}", "data.columns.audio=path", "task.top_k=3"], tmp_path)
    predictions = read_jsonl(tmp_path / "predictions.jsonl")
    assert [(p["id"], p["path"]) for p in predictions] == list(enumerate(paths))

    from transformers import pipeline

    reference = pipeline("audio-classification", model=str(model), device="cpu")([read_mono(tmp_path / p) for p in paths], top_k=3)
    for ours, theirs in zip(predictions, reference, strict=True):
        assert ours["label"] == [t["label"] for t in theirs]
        assert ours["score"] == pytest.approx([t["score"] for t in theirs], abs=1e-5)


def test_unreadable_and_empty_audio_name_file_and_row(keywords_run, tmp_path):
    # The runner (what the CLI runs, here in this process) raises the line the CLI prints
    # after "taskhub: error: ".
    model = keywords_run[0] / "model"
    good = str(KEYWORDS / "clips" / "0000.flac")
    (tmp_path / "broken.wav").write_bytes(b"RIFF? not really")
    (tmp_path / "empty.flac").write_bytes(b"")
    data = write_jsonl(tmp_path / "audio.jsonl", [{"audio": good}, {"audio": good}, {"audio": "broken.wav"}])
    with pytest.raises(taskhub.TaskhubError) as info:
        taskhub.run(["task=audio_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}"], tmp_path / "a")
    assert str(info.value) == f"{data}, row 3: cannot read audio file {tmp_path / 'broken.wav'}: Format not recognised"
    assert not (tmp_path / "a" / "predictions.jsonl").exists()
    data = write_jsonl(tmp_path / "test.jsonl", [{"audio": good, "label": "yes"}, {"audio": "empty.flac", "label": "no"}])
    with pytest.raises(taskhub.TaskhubError) as info:
        taskhub.run(["task=audio_classification", "mode=evaluate", f"model.name_or_path={model}", f"data.test={data}"], tmp_path / "b")
    assert str(info.value) == f"{data}, row 2: audio file {tmp_path / 'empty.flac'} is empty (0 bytes)"


# ---------------------------------------------------------------------------- asr
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small from-scratch CTC wav2vec2-BERT with a character vocabulary, trained to
    transcribe eight recordings of spoken digits (a CTC model from scratch needs a few
    hundred updates before it says anything: many small batches of few clips are cheapest)."""
    folder = tmp_path_factory.mktemp("digits")
    rows = [{**r, "audio": str(SPOKEN_DIGITS / r["audio"])} for r in read_jsonl(SPOKEN_DIGITS / "train.jsonl")[:8]]
    data = write_jsonl(folder / "clips.jsonl", rows)
    run_dir = folder / "run"
    small = [f"model.config.{key}=64" for key in ("hidden_size", "output_hidden_size")] + ["model.config.intermediate_size=128", "model.config.num_hidden_layers=2"]
    proc = run_cli("task=asr", f"data.train={data}", f"data.test={data}", *small, "train.num_train_epochs=60",
                   "train.per_device_train_batch_size=2", f"hydra.run.dir={run_dir}")  # fmt: skip
    return run_dir, data, proc.stdout


def test_asr_training_prints_cer_before_and_after_and_reloads(digits_run, tmp_path):
    run_dir, data, stdout = digits_run
    metrics = metrics_of(run_dir)
    # The untrained model spells out noise (CER above 1); the trained one gets most characters right.
    before, after = metrics["before_test_cer"], metrics["test_cer"]
    assert before > 1.0 and after < 0.6 and metrics["test_wer"] < metrics["before_test_wer"]
    assert re.search(rf"^\s+test_cer\s+{before:.4f}\s+{after:.4f}$", stdout, re.M)  # printed side by side
    model_dir = run_dir / "model"
    vocab = json.loads((model_dir / "vocab.json").read_text())
    characters = {c for row in read_jsonl(data) for c in row["text"].replace(" ", "")}
    assert set(vocab) == {"<pad>", "<unk>", "|", *characters}
    assert json.loads((model_dir / "config.json").read_text())["vocab_size"] == len(vocab)
    reloaded = taskhub.run(["task=asr", "mode=evaluate", f"model.name_or_path={model_dir}", f"data.test={data}"], tmp_path)
    assert (reloaded["metrics"]["test_wer"], reloaded["metrics"]["test_cer"]) == pytest.approx((metrics["test_wer"], metrics["test_cer"]))


def test_asr_predict_matches_the_pipeline_and_bad_audio_names_file_and_row(digits_run, tmp_path):
    import torch
    import torchaudio.functional as F

    model = digits_run[0] / "model"
    rows = read_jsonl(digits_run[1])[:5]
    # one recording as a 44.1 kHz stereo WAV: resampled and mixed down on the way in
    mono, rate = sf.read(rows[0]["audio"], dtype="float32")
    wide = F.resample(torch.from_numpy(mono), rate, 44100).numpy()
    sf.write(tmp_path / "stereo.wav", np.stack([wide, wide * 0.5], axis=1), 44100, subtype="FLOAT")
    paths = [str(tmp_path / "stereo.wav")] + [r["audio"] for r in rows[1:]]
    data = write_jsonl(tmp_path / "in.jsonl", [{"audio": p} for p in paths])
    taskhub.run(["task=asr", "mode=predict", f"model.name_or_path={model}", f"data.predict={data}"], tmp_path)
    predictions = read_jsonl(tmp_path / "predictions.jsonl")
    assert [p["audio"] for p in predictions] == paths

    from transformers import pipeline

    reference = pipeline("automatic-speech-recognition", model=str(model), device="cpu")([read_mono(p) for p in paths])
    assert [p["text"] for p in predictions] == [r["text"] for r in reference]
    assert all(p["text"] for p in predictions)  # the trained model does speak

    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)  # a header, no samples
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"audio": paths[1], "text": "one"}, {"audio": "silent.wav", "text": "two"}])
    with pytest.raises(taskhub.TaskhubError) as info:
        taskhub.run(["task=asr", "mode=evaluate", f"model.name_or_path={model}", f"data.test={bad}"], tmp_path / "b")
    assert str(info.value) == f"{bad}, row 2: audio file {tmp_path / 'silent.wav'} is empty (no samples)"
