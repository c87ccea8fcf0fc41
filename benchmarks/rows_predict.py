"""Prediction rows: text_classification (1), speed modes (1s), ner (2), qa (3); the image and
audio rows (4a-4d) are in :mod:`rows_media` and share :func:`_pipeline_row`.

Competitors of a row share one process, one checkpoint and one input set:

- ``taskhub``: ``taskhub.run([... "mode=predict", data.predict=<jsonl>], run_dir=...)``, the
  same code path as the CLI: config composition, model loading, reading the JSONL file,
  preprocessing, the length-batched forward passes, postprocessing and writing
  ``predictions.jsonl`` are all inside the timed call.
- ``pipeline bs=N``: ``transformers.pipeline(<task>)`` (built once, outside the timing) called
  on the list of inputs with ``batch_size=N``; the pipeline's own default is 1. Its best batch
  size of {8, 32, 64} is chosen by timing each once on an evenly spread subsample.
- ``limit``: the bare model forward under ``torch.inference_mode`` on length-sorted batches
  of already-preprocessed, already-padded inputs (no reading, tokenizing, collating or
  postprocessing): what the hardware does with the model alone.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fixtures
import taskhub
from bench import RUNS, RowResult, Settings, compare, load, quiet, ratio, read_jsonl, subsample, time_once

PIPELINE_SIZES = (8, 32, 64)
BATCH_SIZE = 32  # taskhub's default batch_size; the limit uses the same


@dataclass
class Inputs:
    rows: list[dict]
    file: Path
    limit_batches: Any = None


def _run_dir(name: str) -> str:
    RUNS.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{name}-", dir=RUNS)


def taskhub_predict(task: str, model: str, device: str, extra: tuple[str, ...] = ()) -> Callable[[Inputs], dict]:
    """A competitor: ``taskhub.run`` in mode=predict on the input file."""
    import shutil

    import taskhub

    def run(inputs: Inputs) -> dict:
        run_dir = _run_dir(task)
        result = taskhub.run(
            [f"task={task}", "mode=predict", f"model.name_or_path={model}", f"data.predict={inputs.file}",
             f"device={device}", f"batch_size={BATCH_SIZE}", *extra],
            run_dir=run_dir,
        )
        predictions = Path(result["outputs"]["predictions"])
        kept = predictions.with_name(f"{Path(run_dir).name}.jsonl")
        os.replace(predictions, RUNS / kept.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"predictions": RUNS / kept.name, "predict_runtime": result["metrics"]["predict_runtime"]}

    return run


def predictions_of(output: dict) -> list[dict]:
    rows = read_jsonl(output["predictions"])
    os.remove(output["predictions"])
    return rows


def forward_limit(model, inputs: Inputs) -> list:
    """The bare forward passes over pre-built (indices, padded batch) pairs, already on the
    model's device; logits in input order."""
    import torch

    out: list = [None] * len(inputs.rows)
    with torch.inference_mode():
        for indices, batch in inputs.limit_batches:
            logits = model(**batch).logits
            for i, row in zip(indices, logits):
                out[i] = row
    _synchronize(model)
    return out


def _autocast_limit(model, inputs: Inputs) -> list:
    """:func:`forward_limit` under bf16 autocast (what ``model.dtype=bf16`` does per batch)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        return forward_limit(model, inputs)


def _synchronize(model) -> None:
    import torch

    if model.device.type == "cuda":
        torch.cuda.synchronize()


def on_device(batches: list, device: str) -> list:
    """(indices, batch) pairs with the batch's tensors moved to ``device`` (outside the timing)."""
    return [(indices, {k: v.to(device) for k, v in batch.items()}) for indices, batch in batches]


def token_batches(tokenizer, texts: list[str], batch_size: int = BATCH_SIZE, **kwargs) -> list:
    """Length-sorted, padded batches of already-tokenized texts, built outside the timing."""
    encoded = tokenizer(texts, truncation=True, **kwargs)
    keys = [k for k in tokenizer.model_input_names if k in encoded]
    order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
    batches = []
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batches.append((indices, tokenizer.pad([{k: encoded[k][i] for k in keys} for i in indices], return_tensors="pt")))
    return batches


def best_pipeline_size(call: Callable[[list, int], Any], rows: list, log) -> tuple[int, dict[int, float]]:
    """Time the pipeline once per batch size of :data:`PIPELINE_SIZES` on ``rows``; the fastest wins."""
    seconds = {}
    for size in PIPELINE_SIZES:
        elapsed, _ = time_once(lambda: call(rows, size))
        seconds[size] = elapsed
        log(f"    pipeline bs={size:<3} on the {len(rows)}-row subsample: {elapsed:7.2f} s")
    return min(seconds, key=seconds.get), seconds


def _agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _pipeline_row(s: Settings, log, *, row: str, title: str, task: str, model_dir: str, rows: list[dict],
                  warm_rows: list[dict], calib_rows: list[dict], pipe_call: Callable[[list[dict], int], list],
                  make_limit: Callable[[list[dict]], Any], model, compare_outputs: Callable[[dict], dict],
                  extra_competitors: dict[str, Callable] | None = None, batched_rounds: int | None = None,
                  mixed_length_text: bool = False, small_limit: int | None = None):
    """The shared shape of rows 1, 2 and 4: taskhub vs pipeline bs=1, pipeline best, limit.
    Returns the row and the competitors' outputs (``extra_competitors`` run in the same rounds).
    The issue's ">= 1.6x the pipeline's best" on the CPU is for ``mixed_length_text``, where
    length batching is what the pipeline lacks; images and clips of one size give it nothing
    to gain, and those rows are held to the limit only. With ``small_limit``, the limit
    also runs in batches of that size ("limit bs=N"): convolutional models over large
    inputs run faster per item in small batches on a CPU (their activations stay in
    cache), and then the faster limit is the one to reach."""
    started, load_start = time.perf_counter(), load()
    full = Inputs(rows, fixtures.jsonl_file(f"{row}_{len(rows)}", rows), on_device(make_limit(rows), s.device))
    warm = Inputs(warm_rows, fixtures.jsonl_file(f"{row}_warm_{len(warm_rows)}", warm_rows), on_device(make_limit(warm_rows), s.device))
    with quiet():
        pipe_call(warm_rows, PIPELINE_SIZES[0])
    best, calib = best_pipeline_size(pipe_call, calib_rows, log)
    competitors = {
        "taskhub": taskhub_predict(task, model_dir, s.device),
        "limit": lambda inputs: forward_limit(model, inputs),
        "pipeline bs=1": lambda inputs: pipe_call(inputs.rows, 1),
        f"pipeline bs={best}": lambda inputs: pipe_call(inputs.rows, best),
        **(extra_competitors or {}),
    }
    if small_limit:
        small = {id(inputs): Inputs(inputs.rows, inputs.file, on_device(make_limit(inputs.rows, small_limit), s.device)) for inputs in (full, warm)}
        competitors[f"limit bs={small_limit}"] = lambda inputs: forward_limit(model, small[id(inputs)])
    # On mixed lengths the batched pipeline is the slowest competitor by far and only needs to
    # be placed, not resolved finely: rows 1 and 2 give it fewer rounds (``batched_rounds``).
    timings, outputs = compare(competitors, full, warm, len(rows), s.repeats, log,
                               rounds={f"pipeline bs={best}": batched_rounds or s.repeats})
    th, lim, bs1, bsb = (timings[k] for k in list(competitors)[:4])
    th.note = f"taskhub's own predict_runtime (excludes start-up and model load): {outputs['taskhub']['predict_runtime']:.2f} s (last round)"
    result = RowResult(row, title, list(timings.values()))
    fastest = min((bs1, bsb), key=lambda t: t.median)
    result.ratios = [
        ratio(row, "taskhub / limit", lim.median / th.median, 0.85),
        # On a GPU the issue asks for >= 5x the pipeline's default; on the CPU >= 1.6x its best.
        ratio(row, "taskhub / pipeline bs=1", bs1.median / th.median, 5.0 if s.device == "cuda" else None),
        ratio(row, f"taskhub / pipeline best batched (bs={best})", bsb.median / th.median),
        ratio(row, f"taskhub / pipeline's best ({fastest.name.removeprefix('pipeline ')})", fastest.median / th.median,
              1.6 if s.device == "cpu" and mixed_length_text else None),
        ratio(row, "limit / pipeline bs=1", bs1.median / lim.median),
    ]
    if small_limit:
        fast = timings[f"limit bs={small_limit}"]
        result.ratios += [ratio(row, f"taskhub / limit bs={small_limit}", fast.median / th.median, 0.85),
                          ratio(row, f"limit bs={small_limit} / limit (batches of {BATCH_SIZE})", lim.median / fast.median)]
    result.facts = {"inputs": len(rows), "batch_size": BATCH_SIZE, "pipeline_best_batch_size": best,
                    "pipeline_subsample_s": {f"bs={k}": round(v, 2) for k, v in calib.items()},
                    "calibration_rows": len(calib_rows), **compare_outputs(outputs)}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result, timings, outputs


# ------------------------------------------------- 1 text_classification + speed modes
def text_classification(s: Settings, log=print) -> list[RowResult]:
    """Row 1, and the speed modes on row 1's texts (row 1s): taskhub with model.quantize=int8
    (and model.dtype=bf16) against the fp32 limit, label agreement with fp32 on the timed
    texts, accuracy on the bundled food_captions test split."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from bench import native_bf16

    model_dir = fixtures.text_classifier(log)
    texts = fixtures.mixed_texts(2000)
    rows = subsample(texts, s.pick(2000, 100))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(s.device).eval()
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=torch.device(s.device))
    native = native_bf16()
    cpu = s.device == "cpu"  # speed modes (row 1s): int8 runs on the CPU only; bf16 is judged against CPU features

    def pipe_call(rs, size):
        return pipe([r["text"] for r in rs], batch_size=size)

    def make_limit(rs):
        return token_batches(tokenizer, [r["text"] for r in rs])

    def compare_outputs(outputs):
        taskhub_labels = [r["label"] for r in predictions_of(outputs["taskhub"])]
        limit_labels = [model.config.id2label[int(l.argmax())] for l in outputs["limit"]]
        pipe_labels = [r["label"] for r in outputs["pipeline bs=1"]]
        outputs["taskhub_labels"] = taskhub_labels
        return {"label_agreement_taskhub_vs_limit": _agreement(taskhub_labels, limit_labels),
                "label_agreement_taskhub_vs_pipeline": _agreement(taskhub_labels, pipe_labels)}

    speed = {}
    if cpu:
        # The bare forward of the int8 model too: the hardware's own int8 gain, apart from the engine's.
        from taskhub.config import ModelConfig, Quantization
        from taskhub.modeling import for_inference

        quantized = for_inference(model, ModelConfig(quantize=Quantization.int8))  # a quantized copy
        speed["taskhub int8"] = taskhub_predict("text_classification", model_dir, s.device, ("model.quantize=int8",))
        speed["limit int8"] = lambda inputs: forward_limit(quantized, inputs)
    if native and cpu:
        speed["taskhub bf16"] = taskhub_predict("text_classification", model_dir, s.device, ("model.dtype=bf16",))
        speed["limit bf16"] = lambda inputs: _autocast_limit(model, inputs)
    lengths = [len(ids) for ids in tokenizer([r["text"] for r in rows], truncation=True)["input_ids"]]
    result, timings, outputs = _pipeline_row(
        s, log, row="1", title=f"text_classification predict, {len(rows)} texts, MiniLM classifier", task="text_classification",
        model_dir=model_dir, rows=rows, warm_rows=subsample(texts, 32), calib_rows=subsample(texts, s.pick(200, 32)),
        pipe_call=pipe_call, make_limit=make_limit, model=model, compare_outputs=compare_outputs, extra_competitors=speed,
        batched_rounds=s.batched_pipeline_rounds, mixed_length_text=True,
    )
    result.facts["tokens"] = {"min": min(lengths), "mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}
    result.timings = [t for t in result.timings if t.name not in speed]
    if not cpu:
        return [result]

    # ---- speed modes (row 1s)
    started, load_start = time.perf_counter(), load()
    fp32 = dict(zip((r["id"] for r in rows), outputs["taskhub_labels"]))
    labels = {name: [r["label"] for r in predictions_of(outputs[name])] for name in speed if name.startswith("taskhub")}
    mode_timings = [timings["limit"], timings["taskhub"], *(timings[name] for name in speed)]
    bf16_rows = rows
    if not native:
        # Without bf16 instructions torch emulates bf16 (5-8x slower than fp32 here): time it on a
        # subsample, against the fp32 limit on the same subsample.
        bf16_rows = subsample(rows, s.pick(100, 20))
        inputs = Inputs(bf16_rows, fixtures.jsonl_file(f"1s_bf16_{len(bf16_rows)}", bf16_rows), make_limit(bf16_rows))  # CPU only
        warm_rows = subsample(texts, 16)
        warm = Inputs(warm_rows, fixtures.jsonl_file("1s_warm", warm_rows), make_limit(warm_rows))
        competitors = {"limit (bf16 subsample)": lambda inp: forward_limit(model, inp),
                       "taskhub bf16": taskhub_predict("text_classification", model_dir, s.device, ("model.dtype=bf16",))}
        got, out = compare(competitors, inputs, warm, len(bf16_rows), s.repeats, log)
        labels["taskhub bf16"] = [r["label"] for r in predictions_of(out["taskhub bf16"])]
        timings.update(got)
        mode_timings += list(got.values())
    bf16_base = timings["limit"] if native else timings["limit (bf16 subsample)"]
    agreement = {
        "int8": _agreement([fp32[r["id"]] for r in rows], labels["taskhub int8"]),
        "bf16": _agreement([fp32[r["id"]] for r in bf16_rows], labels["taskhub bf16"]),
    }
    speed_row = RowResult("1s", f"speed modes on row 1's texts ({len(rows)} texts; bf16 on {len(bf16_rows)})", mode_timings)
    speed_row.ratios = [
        ratio("1s", "taskhub int8 / limit fp32", timings["limit"].median / timings["taskhub int8"].median, 2.0),
        ratio("1s", "limit int8 / limit fp32 (bare forward)", timings["limit"].median / timings["limit int8"].median),
        ratio("1s", "taskhub bf16 / limit fp32", bf16_base.median / timings["taskhub bf16"].median, 2.0,
              note="" if native else "this CPU has no avx512_bf16/amx: torch emulates bf16"),
        *([ratio("1s", "limit bf16 / limit fp32 (bare forward)", timings["limit"].median / timings["limit bf16"].median)] if native else []),
        ratio("1s", "int8 label agreement with fp32", agreement["int8"]),
        ratio("1s", "bf16 label agreement with fp32", agreement["bf16"]),
    ]
    test = fixtures.food_test()
    accuracy = {}
    for mode, options in {"fp32": {}, "int8": {"quantize": "int8"}, "bf16": {"dtype": "bf16"}}.items():
        with quiet():
            task = taskhub.load_task("text_classification", model=model_dir, device="cpu", **options)
            predicted = task.predict([{"text": r["text"]} for r in test], batch_size=BATCH_SIZE)
        accuracy[mode] = sum(p["label"] == r["label"] for p, r in zip(predicted, test)) / len(test)
    for mode in ("int8", "bf16"):
        change = 100 * (accuracy[mode] - accuracy["fp32"])
        speed_row.ratios.append(ratio("1s", f"{mode} test accuracy change (points)", change, minimum=-0.5,
                                      note=f"food_captions test, {len(test)} rows; fp32 {100 * accuracy['fp32']:.1f}%"))
    speed_row.facts = {"inputs": len(rows), "bf16_inputs": len(bf16_rows), "native_bf16": native,
                       "label_agreement": agreement, "food_test_accuracy": accuracy}
    speed_row.load, speed_row.wall_s = (load_start, load()), time.perf_counter() - started
    return [result, speed_row]


# -------------------------------------------------------------------------- 2 ner
def ner(s: Settings, log=print) -> RowResult:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    model_dir = fixtures.ner_model(log)
    texts = fixtures.ner_texts(2000)
    rows = subsample(texts, s.pick(1000, 100))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).to(s.device).eval()
    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=torch.device(s.device), aggregation_strategy="simple")

    def pipe_call(rs, size):
        return pipe([r["text"] for r in rs], batch_size=size)

    def spans(entities):
        return [(e["entity_group"], e["start"], e["end"]) for e in entities]

    def compare_outputs(outputs):
        mine = [spans(r["entities"]) for r in predictions_of(outputs["taskhub"])]
        theirs = [spans(r) for r in outputs["pipeline bs=1"]]
        return {"rows_with_identical_entities_vs_pipeline": _agreement(mine, theirs),
                "entities_per_row": round(sum(map(len, mine)) / len(mine), 2)}

    lengths = [len(ids) for ids in tokenizer([r["text"] for r in rows], truncation=True)["input_ids"]]
    result, _, _ = _pipeline_row(
        s, log, row="2", title=f"ner predict (aggregation simple), {len(rows)} texts, MiniLM token classifier", task="ner",
        model_dir=model_dir, rows=rows, warm_rows=subsample(texts, 32), calib_rows=subsample(texts, s.pick(200, 32)),
        pipe_call=pipe_call, make_limit=lambda rs: token_batches(tokenizer, [r["text"] for r in rs]), model=model,
        compare_outputs=compare_outputs, batched_rounds=s.batched_pipeline_rounds, mixed_length_text=True,
    )
    result.facts["tokens"] = {"min": min(lengths), "mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}
    return result


# --------------------------------------------------------------------------- 3 qa
def qa(s: Settings, log=print) -> RowResult:
    """taskhub vs a loop that answers one question at a time with the same windowing (all of a
    question's windows in one forward pass), vs the limit (all windows, sorted, bare forward)."""
    import taskhub
    import torch
    from taskhub.engine.batching import ROW_KEY, model_inputs

    started, load_start = time.perf_counter(), load()
    model_dir = fixtures.qa_model(log)
    questions = fixtures.long_qa(32)
    rows = subsample(questions, s.pick(16, 4))
    warm_rows = questions[:2]
    task = taskhub.load_task("qa", model=model_dir, device=s.device)
    tokenizer, model = task.processor, task.model

    def windows(rs):
        features = task.preprocess({"question": [r["question"] for r in rs], "context": [r["context"] for r in rs]})
        return features

    def limit_batches(rs):
        features = model_inputs(windows(rs))
        n = len(features["input_ids"])
        order = sorted(range(n), key=lambda i: len(features["input_ids"][i]))
        return on_device([(order[i : i + BATCH_SIZE], tokenizer.pad([{k: v[j] for k, v in features.items()} for j in order[i : i + BATCH_SIZE]], return_tensors="pt"))
                          for i in range(0, n, BATCH_SIZE)], s.device)

    def loop(inputs: Inputs) -> list[dict]:
        answers = []
        for r in inputs.rows:
            batch = {"question": [r["question"]], "context": [r["context"]]}
            features = task.preprocess(batch)
            encoded = model_inputs(features)
            padded = tokenizer.pad([{k: v[i] for k, v in encoded.items()} for i in range(len(encoded["input_ids"]))], return_tensors="pt")
            with torch.inference_mode():
                outputs = model(**{k: v.to(model.device) for k, v in padded.items()})
            answers.extend(task.postprocess(outputs, batch, features))
        return answers

    def limit(inputs: Inputs):
        with torch.inference_mode():
            for _, batch in inputs.limit_batches:
                model(**batch)
        _synchronize(model)

    full = Inputs(rows, fixtures.jsonl_file(f"3_{len(rows)}", rows), limit_batches(rows))
    warm = Inputs(warm_rows, fixtures.jsonl_file("3_warm", warm_rows), limit_batches(warm_rows))
    competitors = {"taskhub": taskhub_predict("qa", model_dir, s.device), "one question at a time": loop, "limit": limit}
    timings, outputs = compare(competitors, full, warm, len(rows), s.repeats, log)
    n_windows = len(windows(rows)[ROW_KEY])
    mine = [(r["answer"], r["start"]) for r in predictions_of(outputs["taskhub"])]
    theirs = [(r["answer"], r["start"]) for r in outputs["one question at a time"]]
    th, lp, lim = (timings[k] for k in competitors)
    th.note = f"taskhub's own predict_runtime (excludes start-up and model load): {outputs['taskhub']['predict_runtime']:.2f} s (last round)"
    result = RowResult("3", f"qa predict, {len(rows)} questions over long contexts ({n_windows} windows of <= 384 tokens)", list(timings.values()))
    result.ratios = [ratio("3", "taskhub / one-question loop", lp.median / th.median), ratio("3", "taskhub / limit", lim.median / th.median)]
    result.facts = {"questions": len(rows), "windows": n_windows, "identical_answers_vs_loop": _agreement(mine, theirs)}
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result
