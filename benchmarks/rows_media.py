"""Image and audio prediction rows: image_classification (4a, 4c), audio_classification (4b, 4d).

Besides the competitors of :func:`rows_predict._pipeline_row` (taskhub, the pipeline, the
bare-forward ``limit`` on already-preprocessed inputs), each row has a second limit that
counts what a user waits for:

- ``limit with decoding``: reading the files with the fastest decoder at hand, the
  processor / feature extractor called once per batch, and the bare forward, in the
  batches of the faster bare limit (sorted by duration for audio, as the limit is).
  Images: PIL, JPEGs drafted (libjpeg's DCT scaling to 1/2, 1/4 or 1/8) down to the
  processor's resize target; no EXIF handling (these files have none). Audio: soundfile.
  This is the limit taskhub's >= 0.85 target is held to here; the bare limit leaves out
  work that on the demo-sized models costs more than the forward pass.
"""

from __future__ import annotations

import math
import os

import fixtures
from bench import RowResult, Settings, ratio, subsample
from rows_predict import BATCH_SIZE, Inputs, _agreement, _pipeline_row, predictions_of

#: The decode-including limit (see the module docstring).
DECODE_LIMIT = "limit with decoding"


def _with_decode_limit(row: str, result: RowResult, timings: dict, size: int) -> RowResult:
    th, limit = timings["taskhub"], timings[DECODE_LIMIT]
    result.ratios.insert(0, ratio(row, f"taskhub / limit with decoding (batches of {size})", limit.median / th.median, 0.85))
    return result


# ------------------------------------------------------------------ 4a/4c images
def image_classification(s: Settings, log=print) -> list[RowResult]:
    """Row 4a: the tiny ResNet image_classification builds from its config, on the bundled
    8x8 digits, where decoding and resizing cost more than the forward pass. Row 4c: a
    ResNet-18-sized model on photo-sized JPEGs, where the forward pass is most of the work,
    as with real checkpoints."""
    digits, photos = fixtures.images(), fixtures.photos()
    return [
        _image_row(s, log, "4a", "the demo's from-config ResNet (32x32), bundled digit PNGs", fixtures.image_model(log),
                   subsample(digits, s.pick(len(digits), 200)), warm_rows=digits[:32], calib_rows=subsample(digits, s.pick(400, 64))),
        _image_row(s, log, "4c", "a ResNet-18-sized model (224x224), 320x240 to 800x600 JPEGs", fixtures.resnet18_image_model(log),
                   subsample(photos, s.pick(len(photos), 16)), warm_rows=photos[:4], calib_rows=subsample(photos, s.pick(32, 8)), small_limit=8),
    ]


def resize_floor(processor) -> tuple[int, int]:
    """The (width, height) both sides of a decoded image must keep for ``processor``'s
    resize to stay a downscale: height x width, or the shortest edge (ConvNext-style:
    shortest_edge / crop_pct). Written out here rather than taken from taskhub."""
    size = processor.size
    if size.get("height"):
        return size["width"], size["height"]
    edge = size["shortest_edge"]
    crop_pct = getattr(processor, "crop_pct", None)
    return (math.ceil(edge / crop_pct),) * 2 if crop_pct else (edge, edge)


def fast_decode(path: str, floor: tuple[int, int]):
    """An image file -> RGB PIL image, JPEGs decoded at the smallest 1/2^k scale that keeps ``floor``."""
    from PIL import Image

    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(image.mode, floor)
        return image.convert("RGB")


def _image_row(s: Settings, log, row: str, what: str, model_dir: str, rows: list[dict], warm_rows: list[dict], calib_rows: list[dict],
               small_limit: int | None = None) -> RowResult:
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    from taskhub.media import load_image

    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir).to(s.device).eval()
    pipe = pipeline("image-classification", model=model, image_processor=processor, device=torch.device(s.device))
    floor, size = resize_floor(processor), small_limit or BATCH_SIZE

    def pipe_call(rs, size):
        return pipe([r["image"] for r in rs], batch_size=size)

    def make_limit(rs, size=BATCH_SIZE):
        pixels = processor([load_image(r["image"], i) for i, r in enumerate(rs)], return_tensors="pt")["pixel_values"]
        return [(list(range(i, min(i + size, len(rs)))), {"pixel_values": pixels[i : i + size]}) for i in range(0, len(rs), size)]

    def decode_limit(inputs: Inputs) -> None:
        with torch.inference_mode():
            for i in range(0, len(inputs.rows), size):
                pixels = processor([fast_decode(r["image"], floor) for r in inputs.rows[i : i + size]], return_tensors="pt")["pixel_values"]
                model(pixel_values=pixels.to(model.device)).logits.cpu()

    result, timings, outputs = _pipeline_row(
        s, log, row=row, title=f"image_classification predict, {len(rows)} images: {what}",
        task="image_classification", model_dir=model_dir, rows=rows, warm_rows=warm_rows, calib_rows=calib_rows,
        pipe_call=pipe_call, make_limit=make_limit, model=model, compare_outputs=_classifier_agreements(model),
        extra_competitors={DECODE_LIMIT: decode_limit}, small_limit=small_limit,
    )
    # What drafting changes (outside the timings): pixel_values of drafted vs fully decoded
    # images, and the model's labels on each.
    full = processor([load_image(r["image"], i) for i, r in enumerate(rows)], return_tensors="pt")["pixel_values"]
    drafted = processor([fast_decode(r["image"], floor) for r in rows], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        labels = [model(pixel_values=p.to(model.device)).logits.argmax(-1).tolist() for p in (full, drafted)]
    result.facts["drafted_images"] = sum(_drafted(r["image"], floor) for r in rows)
    result.facts["draft_vs_full_decode_pixel_values_max_abs_diff"] = round(float((full - drafted).abs().max()), 4)
    result.facts["draft_vs_full_decode_pixel_values_mean_abs_diff"] = round(float((full - drafted).abs().mean()), 5)
    result.facts["draft_vs_full_decode_label_agreement"] = _agreement(labels[0], labels[1])
    return _with_decode_limit(row, result, timings, size)


def _drafted(path: str, floor: tuple[int, int]) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        before = image.size
        if image.format == "JPEG":
            image.draft(image.mode, floor)
        return image.size != before


def _classifier_agreements(model):
    """Label agreement of taskhub's predictions with the pipeline's (bs=1) and the limit's logits."""

    def compare_outputs(outputs):
        mine = [r["label"] for r in predictions_of(outputs["taskhub"])]
        return {"label_agreement_taskhub_vs_pipeline": _agreement(mine, [r[0]["label"] for r in outputs["pipeline bs=1"]]),
                "label_agreement_taskhub_vs_limit": _agreement(mine, [model.config.id2label[int(l.argmax())] for l in outputs["limit"]])}

    return compare_outputs


# ------------------------------------------------------------------- 4b/4d audio
def audio_classification(s: Settings, log=print) -> list[RowResult]:
    """Row 4b: the small wav2vec2-BERT audio_classification builds from its config, on 1-s
    keyword clips, where log-mel feature extraction costs more than the forward pass. Row
    4d: a wav2vec2-base-sized model on raw waveforms of mixed duration (0.6 to 3.2 s)."""
    keywords, digits = fixtures.clips(), fixtures.digit_clips()
    return [
        _audio_row(s, log, "4b", "1-s keyword clips, the demo's from-config wav2vec2-BERT", fixtures.audio_model(log),
                   subsample(keywords, s.pick(400, 32)), warm_rows=keywords[:16], calib_rows=subsample(keywords, s.pick(128, 16))),
        _audio_row(s, log, "4d", "0.6-3.2 s spoken digits, wav2vec2 (base's conv encoder, 2 layers)", fixtures.wav2vec2_base_audio_model(log),
                   subsample(digits, s.pick(48, 8)), warm_rows=digits[:2], calib_rows=subsample(digits, s.pick(16, 8)), small_limit=1),
    ]


def _audio_row(s: Settings, log, row: str, what: str, model_dir: str, rows: list[dict], warm_rows: list[dict], calib_rows: list[dict],
               small_limit: int | None = None) -> RowResult:
    import soundfile as sf
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).to(s.device).eval()
    pipe = pipeline("audio-classification", model=model, feature_extractor=extractor, device=torch.device(s.device))
    size = small_limit or BATCH_SIZE

    def pipe_call(rs, size):
        # The pipeline reads files with ffmpeg; decode them with soundfile (as taskhub does) inside the timing.
        clips = []
        for r in rs:
            array, rate = sf.read(r["audio"], dtype="float32")
            clips.append({"array": array, "sampling_rate": rate})
        return pipe(clips, batch_size=size)

    def features(arrays: list):
        return extractor(arrays, sampling_rate=extractor.sampling_rate, padding=True, return_tensors="pt")

    def make_limit(rs, size=BATCH_SIZE):
        arrays = [sf.read(r["audio"], dtype="float32")[0] for r in rs]
        order = sorted(range(len(rs)), key=lambda i: len(arrays[i]))
        return [(order[i : i + size], dict(features([arrays[j] for j in order[i : i + size]]))) for i in range(0, len(order), size)]

    def decode_limit(inputs: Inputs) -> None:
        with torch.inference_mode():
            arrays = [sf.read(r["audio"], dtype="float32")[0] for r in inputs.rows]
            order = sorted(range(len(arrays)), key=lambda i: len(arrays[i]))
            for i in range(0, len(order), size):
                batch = features([arrays[j] for j in order[i : i + size]])
                model(**{k: v.to(model.device) for k, v in batch.items()}).logits.cpu()

    result, timings, _ = _pipeline_row(
        s, log, row=row, title=f"audio_classification predict, {len(rows)} clips: {what}",
        task="audio_classification", model_dir=model_dir, rows=rows, warm_rows=warm_rows, calib_rows=calib_rows,
        pipe_call=pipe_call, make_limit=make_limit, model=model, compare_outputs=_classifier_agreements(model),
        extra_competitors={DECODE_LIMIT: decode_limit}, small_limit=small_limit,
    )
    return _with_decode_limit(row, result, timings, size)


# ------------------------------------------------- preprocessing before / after
def preprocess_before_after(rounds: int = 5, log=print) -> dict[str, float]:
    """The image and audio tasks' ``preprocess`` against what it was before JPEG drafting
    and batched feature extraction (full decode, the processor's output stacked then split;
    one extractor call per clip), on the same inputs in one process, rotating rounds,
    medians. Returns before / after per input set."""
    import statistics
    import time

    import taskhub
    from bench import CACHE
    from taskhub.audio import extract
    from taskhub.media import load_image

    def before_image(task, values):
        images = [load_image(v, i) for i, v in enumerate(values)]
        return {"pixel_values": list(task.processor(images, return_tensors="np")["pixel_values"])}

    def before_audio(task, values):
        rows = [extract(task.feature_extractor, w) for w in task.waveforms({"audio": values})]
        return {k: [r[k] for r in rows] for k in rows[0]}

    digits, photos, clips = fixtures.images(), fixtures.photos(), subsample(fixtures.clips(), 400)
    large = _large_photos(CACHE / "data" / "photos_1600x1200", photos[:24])
    tiny = taskhub.load_task("image_classification", model=fixtures.image_model(log), device="cpu")
    resnet = taskhub.load_task("image_classification", model=fixtures.resnet18_image_model(log), device="cpu")
    audio = taskhub.load_task("audio_classification", model=fixtures.audio_model(log), device="cpu")
    cases = {
        f"4a: {len(digits)} digit PNGs": (tiny, [r["image"] for r in digits], before_image),
        f"4c: {len(photos)} photos 320x240-800x600": (resnet, [r["image"] for r in photos], before_image),
        f"{len(large)} JPEGs of 1600x1200, ResNet-18 processor": (resnet, large, before_image),
        f"4b: {len(clips)} 1-s clips": (audio, [r["audio"] for r in clips], before_audio),
    }
    ratios = {}
    for name, (task, values, before) in cases.items():
        column = "audio" if task.modality == "audio" else "image"
        runs = {"before": lambda: before(task, values), "after": lambda: task.preprocess({column: values})}
        seconds: dict[str, list[float]] = {k: [] for k in runs}
        for k in runs:
            runs[k]()  # warm-up
        for r in range(rounds):
            for k in (("before", "after") if r % 2 == 0 else ("after", "before")):
                started = time.perf_counter()
                runs[k]()
                seconds[k].append(time.perf_counter() - started)
        b, a = statistics.median(seconds["before"]), statistics.median(seconds["after"])
        ratios[name] = b / a
        log(f"  {name}: before {b:.3f} s, after {a:.3f} s, before / after {b / a:.2f}x (load {os.getloadavg()[0]:.1f})")
    return ratios


def _large_photos(folder, photos: list[dict]) -> list[str]:
    """The photos scaled to 1600x1200 (1200x1600 portrait) and saved as JPEG (quality 90)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in photos:
        path = folder / os.path.basename(r["image"])
        if not path.is_file():
            with Image.open(r["image"]) as image:
                size = (1600, 1200) if image.width >= image.height else (1200, 1600)
                image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


if __name__ == "__main__":  # HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rows_media.py
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    preprocess_before_after()
