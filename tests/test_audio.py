"""The audio input path and the audio tasks' predictions against transformers' pipelines
(audio-classification, automatic-speech-recognition) on tiny seeded random models."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from audio_models import classifier, ctc_model, read_mono, signal, whisper_model, write
from conftest import write_jsonl

import taskhub
from taskhub.audio import FORWARD_BATCH, load_audio
from taskhub.errors import RowError, TaskhubError

RATES = (8000, 16000, 44100)


# ------------------------------------------------------------------- input path
def test_integer_pcm_is_scaled_and_channels_are_averaged():
    pcm16 = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    assert load_audio(pcm16, 0, 16000).tolist() == pytest.approx([0.0, 0.5, -1.0, 32767 / 32768])
    pcm8 = np.array([128, 255, 0], dtype=np.uint8)  # unsigned 8-bit: silence is 128
    assert load_audio(pcm8, 0, 16000).tolist() == pytest.approx([0.0, 127 / 128, -1.0])
    pcm32 = np.array([2**30], dtype=np.int32)
    assert load_audio(pcm32, 0, 16000).tolist() == pytest.approx([0.5])
    left, right = np.linspace(-1, 1, 100, dtype=np.float32), np.full(100, 0.5, dtype=np.float32)
    mixed = (left + right) / 2
    assert load_audio(np.stack([left, right]), 0, 16000) == pytest.approx(mixed)  # (channels, samples)
    assert load_audio(np.stack([left, right], axis=1), 0, 16000) == pytest.approx(mixed)  # (samples, channels)
    assert load_audio({"raw": np.stack([left, right]), "sampling_rate": 16000}, 0, 16000) == pytest.approx(mixed)


def test_resampling_to_the_model_rate(tmp_path):
    import torch
    import torchaudio.functional as F

    for rate in RATES:
        path = write(tmp_path / f"{rate}.wav", 0.5, rate, subtype="FLOAT")
        audio = load_audio(str(path), 0, 16000)
        assert audio.dtype == np.float32 and audio.shape == (8000,)
        expected = F.resample(torch.from_numpy(signal(0.5, rate)), rate, 16000).numpy()
        assert np.array_equal(audio, expected)
        from_dict = load_audio({"array": signal(0.5, rate), "sampling_rate": rate}, 0, 16000)
        assert np.array_equal(from_dict, expected)


def test_file_formats(tmp_path):
    reference = signal(0.25, 16000)
    for name, subtype in (("a.wav", "PCM_16"), ("a.flac", "PCM_24"), ("a.ogg", "VORBIS")):
        sf.write(tmp_path / name, reference, 16000, subtype=subtype)
        audio = load_audio(str(tmp_path / name), 0, 16000)
        assert audio.shape == reference.shape
        assert np.abs(audio - reference).max() < (1e-3 if subtype.startswith("PCM") else 0.1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"array": np.zeros(10)}, "an audio dict needs 'array' (or 'raw') and 'sampling_rate' keys (got: array)"),
        (np.zeros((3, 3, 3), dtype=np.float32), "audio array of shape (3, 3, 3) is not mono (samples,) or (channels, samples) with at most 8 channels"),
        (np.zeros(0, dtype=np.float32), "the audio array has no samples"),
        (np.array(["a", "b"]), "audio array must hold numbers, got dtype <U1"),
        (None, "missing audio"),
        (3.5, "audio must be a file path, an {array, sampling_rate} dict or an array, got float"),
    ],
)
def test_bad_values_are_row_errors(value, message):
    with pytest.raises(RowError) as info:
        load_audio(value, 4, 16000)
    assert (info.value.index, info.value.message) == (4, message)


def test_bad_files_are_row_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "junk.flac").write_bytes(b"definitely not audio")
    expected = {
        "missing.wav": f"audio file not found: {tmp_path / 'missing.wav'}",
        "empty.wav": f"audio file {tmp_path / 'empty.wav'} is empty (0 bytes)",
        "silent.wav": f"audio file {tmp_path / 'silent.wav'} is empty (no samples)",
        "junk.flac": f"cannot read audio file {tmp_path / 'junk.flac'}: Format not recognised",
    }
    for name, message in expected.items():
        with pytest.raises(RowError) as info:
            load_audio(str(tmp_path / name), 1, 16000)
        assert info.value.message == message


def test_collator_pads_along_time():
    """Rows padded along the axis their lengths differ on, or, rows of one shape, the one
    the attention mask covers; sequence labels padded with -100."""
    from types import SimpleNamespace

    from taskhub.audio import LENGTHS, TIME_AXIS, AudioCollator

    frames_first = SimpleNamespace(model_input_names=["input_features"], padding_value=1.0)
    rows = [{"input_features": np.zeros((160, 160)), "attention_mask": np.ones(160), "labels": [3, 4]},
            {"input_features": np.zeros((100, 160)), "attention_mask": np.ones(100), "labels": [5]}]  # fmt: skip
    batch = AudioCollator(frames_first, lengths=True)(rows)
    assert batch["input_features"].shape == (2, 160, 160) and batch["input_features"][1, 100:].eq(1.0).all()
    assert batch["attention_mask"].sum(1).tolist() == [160, 100] and batch[LENGTHS].tolist() == [160, 100]
    assert batch[TIME_AXIS] == 1 and batch["labels"].tolist() == [[3, 4], [5, -100]]
    bins_first = [{"input_features": np.zeros((80, 3000)), "attention_mask": np.ones(3000)}] * 2  # Whisper
    batch = AudioCollator(frames_first, lengths=True)(bins_first)
    assert batch[TIME_AXIS] == 2 and batch[LENGTHS].tolist() == [3000, 3000]


# ------------------------------------------------------- models and recordings
@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Files at 8, 16 and 44.1 kHz, mono and stereo, 0.4-1.6 s long (so batches are padded)."""
    folder = tmp_path_factory.mktemp("recordings")
    files = []
    for i, rate in enumerate(RATES):
        for channels in (1, 2):
            seconds = 0.4 + 0.25 * len(files)
            ext = "flac" if rate == 44100 else "wav"
            files.append(str(write(folder / f"r{rate}_{channels}.{ext}", seconds, rate, channels, seed=len(files))))
    return files


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio_models")
    built = {}
    for family in ("wav2vec2-layer", "wav2vec2-group", "wav2vec2-bert"):
        built[f"cls-{family}"] = str(classifier(folder / f"cls-{family}", family))
        built[f"ctc-{family}"] = str(ctc_model(folder / f"ctc-{family}", family))
    built["whisper"] = str(whisper_model(folder / "whisper"))
    return built


def _pipeline(kind, path):
    from transformers import pipeline

    return pipeline(kind, model=path, device="cpu")


# ----------------------------------------------------------- audio_classification
@pytest.mark.parametrize("family", ["wav2vec2-layer", "wav2vec2-group", "wav2vec2-bert"])
def test_classification_equals_the_pipeline(models, recordings, family):
    path = models[f"cls-{family}"]
    task = taskhub.load_task("audio_classification", model=path, device="cpu", top_k=4)
    # Padded batches of 4 and 2 (a budget above the CPU default, which would split them).
    ours = task.predict([{"audio": f} for f in recordings], batch_size=4, max_tokens=10**6)
    reference = _pipeline("audio-classification", path)([read_mono(f) for f in recordings], top_k=4)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine["label"] == [t["label"] for t in theirs]
        assert mine["score"] == pytest.approx([t["score"] for t in theirs], abs=1e-5)
    # top_k=1 gives plain values; arrays and dicts from the Python API give the same answer
    task = taskhub.load_task("audio_classification", model=path, device="cpu")
    first = read_mono(recordings[0])
    again = task.predict([{"audio": recordings[0]}, {"audio": first}, {"audio": {"raw": first["array"], "sampling_rate": 8000}}])
    assert [r["label"] for r in again] == [reference[0][0]["label"]] * 3
    assert [r["score"] for r in again] == pytest.approx([reference[0][0]["score"]] * 3, abs=1e-5)


def test_raw_waveform_models_get_a_cpu_budget_of_two_seconds(models, recordings):
    from taskhub.audio import CPU_WAVEFORM_SECONDS

    waveform = taskhub.load_task("audio_classification", model=models["cls-wav2vec2-layer"], device="cpu")
    budget = CPU_WAVEFORM_SECONDS * 16000
    assert waveform.default_max_tokens() == budget
    shapes = []
    forward = waveform.forward
    waveform.forward = lambda inputs: shapes.append(tuple(inputs["input_values"].shape)) or forward(inputs)
    records = [{"audio": f} for f in recordings]
    by_budget = waveform.predict(records, batch_size=4)
    assert all(rows == 1 or rows * width <= budget for rows, width in shapes) and len(shapes) > 2
    assert [r["label"] for r in by_budget] == [r["label"] for r in waveform.predict(records, batch_size=1)]
    # log-mel models batch as before: no budget
    log_mel = taskhub.load_task("audio_classification", model=models["cls-wav2vec2-bert"], device="cpu")
    assert log_mel.default_max_tokens() is None


# -------------------------------------------------------------------------- asr
@pytest.mark.parametrize("family", ["wav2vec2-layer", "wav2vec2-group", "wav2vec2-bert"])
def test_ctc_transcripts_equal_the_pipeline(models, recordings, family):
    path = models[f"ctc-{family}"]
    task = taskhub.load_task("asr", model=path, device="cpu")
    ours = [r["text"] for r in task.predict([{"audio": f} for f in recordings], batch_size=4, max_tokens=10**6)]
    asr = _pipeline("automatic-speech-recognition", path)
    # the pipeline averages (channels, samples) arrays itself
    inputs = [{"array": sf.read(f, dtype="float32")[0].T.copy(), "sampling_rate": sf.info(f).samplerate} for f in recordings]
    reference = [out["text"] for out in asr(inputs)]
    assert ours == reference
    assert all(len(text.strip()) > 3 for text in ours)  # non-trivial transcripts


@pytest.mark.parametrize("family", ["wav2vec2-layer", "wav2vec2-group", "wav2vec2-bert"])
def test_chunked_long_audio_equals_the_pipeline(models, tmp_path, family):
    path = models[f"ctc-{family}"]
    files = [str(write(tmp_path / "long.wav", 12.3, 16000, seed=7)), str(write(tmp_path / "long2.flac", 9.1, 44100, 2, seed=8))]
    task = taskhub.load_task("asr", model=path, device="cpu", chunk_length_s=2.0, stride_length_s=0.5)
    ours = [r["text"] for r in task.predict([{"audio": f} for f in files])]
    reference = [out["text"] for out in _pipeline("automatic-speech-recognition", path)([read_mono(f) for f in files], chunk_length_s=2.0, stride_length_s=0.5)]
    assert ours == reference
    unchunked = [r["text"] for r in taskhub.load_task("asr", model=path, device="cpu", chunk_length_s=0).predict([{"audio": f} for f in files])]
    assert unchunked != ours  # chunking did happen


def test_a_minute_of_audio_runs_in_bounded_chunks(models, tmp_path):
    """A 60-second file goes through the model in 30 s chunks (the default), at most
    FORWARD_BATCH at a time, and the stitched transcript equals the pipeline's."""
    path = models["ctc-wav2vec2-layer"]
    long = str(write(tmp_path / "minute.flac", 60.0, 16000, seed=3))
    short = str(write(tmp_path / "short.wav", 1.5, 16000, seed=4))
    task = taskhub.load_task("asr", model=path, device="cpu")
    seen = []
    forward = task.model.forward

    def recording_forward(*args, **kwargs):
        seen.append(tuple(kwargs["input_values"].shape))
        return forward(*args, **kwargs)

    task.model.forward = recording_forward
    ours = [r["text"] for r in task.predict([{"audio": long}, {"audio": short}])]
    assert max(width for _, width in seen) <= 30 * 16000 and max(rows for rows, _ in seen) <= FORWARD_BATCH
    asr = _pipeline("automatic-speech-recognition", path)
    assert ours[0] == asr(read_mono(long), chunk_length_s=30.0)["text"]
    assert ours[1] == asr(read_mono(short))["text"]  # shorter than a chunk: as if unchunked


def test_whisper_transcripts_equal_the_pipeline(models, recordings):
    """Batched Whisper generation with task.generate settings on top of the pipeline's
    defaults (5 beams) gives the pipeline's transcripts."""
    path = models["whisper"]
    task = taskhub.load_task("asr", model=path, device="cpu", generate={"max_new_tokens": 6})
    ours = [r["text"] for r in task.predict([{"audio": f} for f in recordings], batch_size=4, max_tokens=10**6)]
    asr = _pipeline("automatic-speech-recognition", path)
    reference = [out["text"] for out in asr([read_mono(f) for f in recordings], generate_kwargs={"max_new_tokens": 6})]
    assert ours == reference and len(set(ours)) > 1
    with pytest.raises(TaskhubError, match="chunking is for CTC models"):
        taskhub.load_task("asr", model=path, device="cpu", chunk_length_s=10.0).predict([{"audio": recordings[0]}])
    with pytest.raises(TaskhubError, match="task.generate.max_new_token: not a transformers.GenerationConfig field"):
        taskhub.load_task("asr", model=path, generate={"max_new_token": 6})


def test_whisper_fine_tuning(models, tmp_path):
    """Seq2seq training on audio + text (labels without the decoder start token, which the
    model prepends) moves the transcripts towards the targets; the saved model reloads."""
    rows = [{"audio": str(write(tmp_path / f"{i}.wav", 0.5, 16000, seed=i)), "text": text} for i, text in enumerate(["one two", "three", "four five"])]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    options = ["task.generate.max_new_tokens=8", "task.generate.num_beams=1"]
    result = taskhub.run(["task=asr", f"model.name_or_path={models['whisper']}", f"data.train={data}", f"data.test={data}", *options,
                          "train.num_train_epochs=20", "train.learning_rate=1e-2"], tmp_path / "run")  # fmt: skip
    metrics = result["metrics"]
    assert metrics["before_test_cer"] > 1.0 > metrics["test_cer"]
    reloaded = taskhub.run(["task=asr", "mode=evaluate", f"model.name_or_path={tmp_path / 'run' / 'model'}", f"data.test={data}", *options], tmp_path / "eval")
    assert reloaded["metrics"]["test_cer"] == pytest.approx(metrics["test_cer"])


def test_character_vocabulary_from_transcripts():
    import datasets

    task = taskhub.load_task("asr")
    processor = task.train_processor(datasets.Dataset.from_dict({"text": ["one two", "three", "zéro"]}), {})
    vocab = processor.tokenizer.get_vocab()
    assert vocab == {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("ehnortwzé")}}
    assert processor.tokenizer("two one").input_ids == [vocab[c] for c in "two|one"]
    assert type(processor).__name__ == "Wav2Vec2BertProcessor"


def test_wer_and_cer_from_predictions():
    import datasets

    task = taskhub.load_task("asr")
    scores = task.score_predictions([{"text": "one two"}, {"text": "tree"}], datasets.Dataset.from_dict({"text": ["one two", "three"]}))
    assert scores == {"wer": pytest.approx(1 / 3), "cer": pytest.approx(1 / 12)}
