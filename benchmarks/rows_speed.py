"""Row 1o: taskhub's speed modes against ONNX Runtime by hand, on row 1's classifier and texts.

The peer a speed-minded CPU user picks is ONNX Runtime: the model exported with
torch.onnx (dynamo exporter), run with every graph optimization, and optionally
dynamically quantized to int8 (QInt8, one scale per output channel). All competitors
share one process and the rotating rounds of :func:`bench.compare`:

- ``eager fp32`` (the base of every ratio): the bare forward on length-sorted batches of
  32 (row 1's limit); ``eager fp32, token budget`` the same on batches capped at 4,096
  padded tokens (what taskhub's engine does on the CPU).
- ``ORT fp32`` / ``ORT int8``: ONNX Runtime by hand on the token-budget batches, already
  tokenized and padded (numpy), outside any framework.
- ``taskhub <mode>``: ``taskhub.run`` in mode=predict with each speed mode, everything
  (config, load, reading, tokenizing, batching, writing) inside the timing.

Each is judged on how often its labels differ from eager fp32's, on the timed texts and
the 200 held-out food_captions rows (validation and test) together: a mode that changes at
most 0.5% of the labels changes accuracy by at most 0.5 points on those texts, whatever
their true labels. That bound is what "within 0.5 points of accuracy" is held to; the
accuracy change measured on the 200 labelled rows (one row is half a point) is shown beside it.
"""

from __future__ import annotations

import time
from dataclasses import fields

import fixtures
import taskhub
from bench import CACHE, RowResult, Settings, compare, cpu_flags, load, quiet, ratio, subsample
from rows_predict import BATCH_SIZE, Inputs, _agreement, forward_limit, predictions_of, taskhub_predict, token_batches

#: Padded positions per batch of the token-budget competitors (taskhub's CPU default for text).
TOKEN_BUDGET = 4096
#: Accuracy change (points) a mode may cause and still count as taskhub's fastest: at most
#: this share (in %) of its labels may differ from eager fp32's.
ACCURACY_TOLERANCE = 0.5

#: taskhub's modes: name -> (overrides, model config fields they need).
TASKHUB_MODES = {
    "taskhub fp32": ((), ()),
    "taskhub bf16": (("model.dtype=bf16",), ()),
    "taskhub int8": (("model.quantize=int8",), ()),
    "taskhub compile": (("model.compile=true",), ("compile",)),
    "taskhub compile bf16": (("model.compile=true", "model.dtype=bf16"), ("compile",)),
    "taskhub compile bf16 freezing": (("model.compile=true", "model.dtype=bf16", "model.compile_freezing=true"), ("compile", "compile_freezing")),
    "taskhub onnxruntime": (("model.backend=onnxruntime",), ("backend",)),
    "taskhub onnxruntime int8": (("model.backend=onnxruntime", "model.quantize=int8"), ("backend",)),
}


def budget_batches(tokenizer, texts: list[str], numpy: bool = False) -> list:
    """Length-sorted batches of at most 32 texts and :data:`TOKEN_BUDGET` padded tokens
    (taskhub's own planner decides the cuts), tokenized and padded outside the timing."""
    from taskhub.engine.batching import plan_batches

    encoded = tokenizer(texts, truncation=True)
    keys = [k for k in tokenizer.model_input_names if k in encoded]
    lengths = [len(ids) for ids in encoded["input_ids"]]
    batches = []
    for indices in plan_batches(lengths, [1] * len(texts), BATCH_SIZE, TOKEN_BUDGET):
        padded = tokenizer.pad([{k: encoded[k][i] for k in keys} for i in indices], return_tensors="np" if numpy else "pt")
        batches.append((indices, dict(padded)))
    return batches


def ort_sessions(model, example: dict, log) -> dict[str, object]:
    """ONNX Runtime by hand: export with torch.onnx (dynamo; batch and sequence dynamic),
    int8 with quantize_dynamic (QInt8 per channel), sessions with all graph optimizations on
    the benchmark's thread count. Files cached under benchmarks/.cache/onnx by checkpoint."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from taskhub.fingerprints import folder_digest

    folder = CACHE / "onnx" / folder_digest(model.name_or_path)[:16]
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    if not int8.is_file():
        log("    exporting the classifier to ONNX by hand (torch.onnx dynamo exporter) and quantizing it...")
        folder.mkdir(parents=True, exist_ok=True)
        names = list(example)
        dims = {k: {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")} for k in names}
        with quiet():
            torch.onnx.export(model, (), str(fp32), kwargs=example, input_names=names, output_names=["logits"],
                              dynamic_shapes=dims, opset_version=18, dynamo=True)
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in (("ORT fp32", fp32), ("ORT int8", int8))}


def ort_logits(session, batches: list, n: int) -> list:
    out: list = [None] * n
    for indices, batch in batches:
        logits = session.run(["logits"], batch)[0]
        for i, row in zip(indices, logits):
            out[i] = row
    return out


def available_modes(model_dir: str, probe: Inputs, log) -> dict[str, tuple[str, ...]]:
    """taskhub's modes that run in this checkout (tried once on ``probe``, which also
    exports or compiles outside the timings); the others are skipped, saying why."""
    from taskhub.config import ModelConfig

    known = {f.name for f in fields(ModelConfig)}
    modes = {}
    for name, (overrides, needs) in TASKHUB_MODES.items():
        missing = [n for n in needs if n not in known]
        if missing:
            log(f"    skipped {name}: this taskhub has no model.{missing[0]} option")
            continue
        try:
            with quiet():
                predictions_of(taskhub_predict("text_classification", model_dir, "cpu", overrides)(probe))
        except Exception as exc:  # a mode another change is still building: the row goes on without it
            log(f"    skipped {name}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]}")
            continue
        modes[name] = overrides
    return modes


def _held_out_labels(model_dir: str, overrides: tuple[str, ...], test: list[dict]) -> list[str]:
    """Labels of the held-out food_captions rows through the Python API with the mode's options."""
    from omegaconf import OmegaConf

    from taskhub.config import ModelConfig

    with quiet():
        task = taskhub.load_task("text_classification", model=model_dir, device="cpu")
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.from_dotlist([o.removeprefix("model.") for o in overrides]))
        task.model_config = OmegaConf.to_object(OmegaConf.merge(merged, {"name_or_path": model_dir}))
        predicted = task.predict([{"text": r["text"]} for r in test], batch_size=BATCH_SIZE)
    return [p["label"] for p in predicted]


def onnx_row(s: Settings, log=print) -> RowResult:
    """Row 1o (CPU only): taskhub's speed modes against ONNX Runtime by hand."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started, load_start = time.perf_counter(), load()
    if s.device != "cpu":
        log("    skipped: row 1o compares CPU runtimes (ONNX Runtime's CPU provider, int8); run it with --device cpu")
        return RowResult("1o", "speed modes vs ONNX Runtime by hand: skipped (CPU only)")
    model_dir = fixtures.text_classifier(log)
    texts = fixtures.mixed_texts(2000)
    rows = subsample(texts, s.pick(2000, 100))
    warm_rows = subsample(texts, 32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    id2label = model.config.id2label
    example = dict(tokenizer([r["text"] for r in warm_rows[:4]], padding=True, return_tensors="pt"))
    sessions = ort_sessions(model, example, log)

    def inputs_of(name: str, rs: list[dict]) -> Inputs:
        return Inputs(rs, fixtures.jsonl_file(name, rs), token_batches(tokenizer, [r["text"] for r in rs]))

    full, warm = inputs_of(f"1o_{len(rows)}", rows), inputs_of("1o_warm", warm_rows)
    # The token-budget batches of each input set (torch tensors, and numpy for ONNX Runtime).
    budget = {id(x): Inputs(x.rows, x.file, budget_batches(tokenizer, [r["text"] for r in x.rows])) for x in (full, warm)}
    budget_np = {id(x): budget_batches(tokenizer, [r["text"] for r in x.rows], numpy=True) for x in (full, warm)}
    modes = available_modes(model_dir, warm, log)
    competitors = {
        "eager fp32": lambda inputs: forward_limit(model, inputs),
        "eager fp32, token budget": lambda inputs: forward_limit(model, budget[id(inputs)]),
        **{name: (lambda inputs, session=session: ort_logits(session, budget_np[id(inputs)], len(inputs.rows))) for name, session in sessions.items()},
        **{name: taskhub_predict("text_classification", model_dir, "cpu", overrides) for name, overrides in modes.items()},
    }
    timings, outputs = compare(competitors, full, warm, len(rows), s.repeats, log)

    labels = {}
    for name, out in outputs.items():
        if name.startswith("taskhub"):
            labels[name] = [r["label"] for r in predictions_of(out)]
        else:
            labels[name] = [id2label[int(torch.as_tensor(x).argmax())] for x in out]
    reference = labels["eager fp32"]

    test = fixtures.food_held_out()
    test_texts = [r["text"] for r in test]
    test_inputs = Inputs(test, None, token_batches(tokenizer, test_texts))
    held_out = {"eager fp32": [id2label[int(x.argmax())] for x in forward_limit(model, test_inputs)]}
    test_np = budget_batches(tokenizer, test_texts, numpy=True)
    for name, session in sessions.items():
        held_out[name] = [id2label[int(x.argmax())] for x in ort_logits(session, test_np, len(test))]
    for name, overrides in modes.items():
        held_out[name] = _held_out_labels(model_dir, overrides, test)
    held_out["eager fp32, token budget"] = held_out["eager fp32"]  # the same forward, batched otherwise

    base = timings["eager fp32"].median
    result = RowResult("1o", f"speed modes vs ONNX Runtime by hand ({len(rows)} texts, {torch.get_num_threads()} thread(s))", list(timings.values()))
    accuracy = {name: _accuracy(held_out[name], test) for name in timings}
    change = {name: 100 * (accuracy[name] - accuracy["eager fp32"]) for name in timings}
    # Labels that differ from eager fp32's over every text the mode labelled, in %: the most
    # its accuracy on those texts can differ from eager fp32's, whatever their true labels.
    differ = {name: 100 * (1 - _agreement(labels[name] + held_out[name], reference + held_out["eager fp32"])) for name in timings}
    for name, t in timings.items():
        t.note = (f"x{base / t.median:.2f} eager fp32; labels {100 * _agreement(labels[name], reference):.2f}% equal; "
                  f"held-out accuracy {change[name]:+.1f} pts; at most {differ[name]:.2f} pts of accuracy changed")
    result.ratios = [ratio("1o", f"{name} / eager fp32", base / timings[name].median) for name in timings if name != "eager fp32"]
    ort_best = min(sessions, key=lambda n: timings[n].median)
    eligible = [n for n in modes if differ[n] <= ACCURACY_TOLERANCE]
    amx = "amx_bf16" in cpu_flags()
    if eligible:
        best = min(eligible, key=lambda n: timings[n].median)
        result.ratios += [
            ratio("1o", f"taskhub's fastest ({best.removeprefix('taskhub ')}) / fastest ONNX Runtime ({ort_best})",
                  timings[ort_best].median / timings[best].median, 1.0),
            ratio("1o", f"taskhub's fastest ({best.removeprefix('taskhub ')}) / eager fp32", base / timings[best].median,
                  2.5 if amx else None, note="" if amx else "no AMX on this CPU: the 2.5x target is for AMX CPUs"),
        ]
    result.facts = {
        "inputs": len(rows), "token_budget": TOKEN_BUDGET, "amx": amx,
        "label_agreement_with_eager_fp32": {n: round(_agreement(labels[n], reference), 4) for n in timings},
        "held_out_accuracy": {n: round(accuracy[n], 4) for n in timings},
        "held_out_rows": len(test),
        "labels_differing_from_eager_fp32_pct": {n: round(differ[n], 3) for n in timings},
    }
    result.load, result.wall_s = (load_start, load()), time.perf_counter() - started
    return result


def _accuracy(predicted: list[str], test: list[dict]) -> float:
    return sum(p == r["label"] for p, r in zip(predicted, test)) / len(test)

