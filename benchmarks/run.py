"""taskhub's benchmark suite: prints a table of speed and memory ratios (see docs/benchmarks.md).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run.py            # full run
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run.py --quick    # smoke check: fewer inputs and rounds
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run.py --only 1,5 # some rows

Rows: 1 text_classification (+ 1s speed modes), 1o the speed modes vs ONNX Runtime by hand (CPU), 2 ner, 3 qa, 4 image + audio
classification (4a, 4c images; 4b, 4d audio), 5 start-up, 6 peak memory, 7 training (7e: vs transformers'
example scripts, which go in benchmarks/examples/), 8 two processes
under torchrun vs one (predict and training). The first run builds
the checkpoints it needs under benchmarks/.cache (a few minutes); later runs reuse them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROWS = {
    "1": "text_classification + speed modes",
    "1o": "speed modes vs ONNX Runtime by hand",
    "2": "ner",
    "3": "qa",
    "4": "image and audio classification",
    "5": "start-up",
    "6": "peak memory",
    "7": "training",
    "7e": "training vs transformers' example scripts (run_qa.py, run_classification.py)",
    "8": "2 processes (torchrun) vs 1",
}
ALIASES = {"text": "1", "speed": "1", "onnx": "1o", "onnxruntime": "1o", "ner": "2", "qa": "3", "image": "4", "audio": "4", "media": "4",
           "startup": "5", "help": "5", "memory": "6", "rss": "6", "training": "7", "train": "7", "examples": "7e",
           "torchrun": "8", "scale": "8"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer inputs and rounds: a smoke check (a few minutes)")
    parser.add_argument("--only", default="", help="comma-separated rows to run: 1-8 or text, ner, qa, image, startup, memory, training, torchrun")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: the CPU cores this process may use)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per competitor (default: 3; --quick: 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where rows 1-4 and 7 run (default cpu; cuda on a GPU machine; row 1s needs the CPU)")
    parser.add_argument("--json", default=None, help="write the results as JSON here (default: benchmarks/.cache/results/<time>.json)")
    args = parser.parse_args(argv)
    rows = []
    for name in filter(None, (part.strip() for part in args.only.split(","))):
        key = ALIASES.get(name, name)
        if key not in ROWS:
            parser.error(f"--only: unknown row '{name}' (rows: {', '.join(ROWS)}; names: {', '.join(ALIASES)})")
        if key not in rows:
            rows.append(key)
    args.rows = rows or list(ROWS)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = args.threads or cores
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported; subprocesses inherit it
    # Pipelines switch tokenizer parallelism off for the whole process the first time they run;
    # fix it up front so every competitor tokenizes under the same setting (the library default).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import warnings

    warnings.filterwarnings("ignore")

    import bench
    import rows_examples
    import rows_media
    import rows_predict
    import rows_process
    import rows_scale
    import rows_speed

    settings = bench.Settings(quick=args.quick, threads=threads, repeats=args.repeats or (1 if args.quick else 3), device=args.device)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks: --device cuda but torch sees no CUDA GPU", file=sys.stderr)
        return 2
    machine = bench.machine()
    print("taskhub benchmarks" + (" (--quick: a smoke check, not figures to quote)" if args.quick else ""))
    print(f"  cpu: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; simd: {machine['simd']}; "
          f"avx512_bf16: {'yes' if machine['avx512_bf16'] else 'no'}")
    print(f"  torch {machine['torch']} ({threads} threads), transformers {machine['transformers']}, python {machine['python']}"
          + (f", GPU: {machine['cuda']}" + (" (used by rows 1-4, 7)" if args.device == "cuda" else " (not used: --device cpu)") if machine["cuda"] else ""))
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; rounds per competitor: {settings.repeats}")
    if os.getloadavg()[0] > cores - 0.5:
        print(f"  WARNING: the machine is busy (load {os.getloadavg()[0]:.1f} on {cores} cores): timings are noisy"
              + ("; with other processes running, --threads 1 avoids OpenMP threads waiting on each other" if threads > 1 else ""))
    print(flush=True)

    runners = {
        "1": rows_predict.text_classification,
        "1o": rows_speed.onnx_row,
        "2": rows_predict.ner,
        "3": rows_predict.qa,
        "4": lambda s, log: [*rows_media.image_classification(s, log), *rows_media.audio_classification(s, log)],
        "5": rows_process.startup,
        "6": rows_process.memory,
        "7": rows_process.training,
        "7e": rows_examples.examples,
        "8": rows_scale.scale_out,
    }

    def log(line: str) -> None:
        print(line, flush=True)

    import shutil

    shutil.rmtree(bench.RUNS, ignore_errors=True)  # this process's taskhub runs and predictions
    bench.CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[bench.RowResult] = []
    for key in args.rows:
        log(f"[row {key}] {ROWS[key]}")
        out = runners[key](settings, log)
        for result in out if isinstance(out, list) else [out]:
            results.append(result)
            log(render_row(result))
    total = time.perf_counter() - started
    shutil.rmtree(bench.RUNS, ignore_errors=True)

    print()
    print(render_table(results))
    print(f"\ntotal {total / 60:.1f} min; load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    path = Path(args.json) if args.json else bench.CACHE / "results" / time.strftime("%Y-%m-%d_%H-%M-%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "quick": args.quick, "threads": threads, "repeats": settings.repeats, "device": args.device,
                                "total_s": total, "rows": [r.as_dict() for r in results]}, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return 0


def _fmt(value: float) -> str:
    if value != value:  # nan
        return "-"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def render_row(result) -> str:
    lines = [f"  {result.title}  [{result.wall_s:.0f} s, load {result.load[0]:.1f} -> {result.load[1]:.1f}]"]
    for t in result.timings:
        rate = f"{t.per_second:9.1f}/s" if t.items else " " * 11
        spread = ", ".join(f"{x:.2f}" for x in t.seconds)
        lines.append(f"    {t.name:<36} {t.median:8.2f} s {rate}  [{spread}]" + (f"  {t.note}" if t.note else ""))
    for key, value in result.facts.items():
        lines.append(f"    {key}: {value}")
    return "\n".join(lines)


def render_table(results) -> str:
    header = ("row", "ratio", "value", "target", "met")
    rows = []
    for result in results:
        for r in result.ratios:
            met = "" if r.met is None else ("yes" if r.met else "NO")
            rows.append((r.row, r.name + (f" ({r.note})" if r.note else ""), _fmt(r.value), r.target, met))
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


if __name__ == "__main__":
    sys.exit(main())
