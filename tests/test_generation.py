"""Generative tasks: text_generation, summarization, translation.

Tiny random models (built in fixtures, with tokenizers trained here on the bundled
data) check the contract: equality with transformers' text-generation pipeline,
batched == one-at-a-time generation, generation options reaching ``generate``, prompt
and target handling, multilingual tokenizers, tokenizer training and bad input. The
slow tests train each task from scratch through the CLI on a slice of its demo data,
then evaluate and predict with the saved model.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import REPO, read_jsonl, run_cli, write_jsonl

import taskhub
from taskhub import RowError, TaskhubError
from taskhub.tokenizer_training import tokenizer_settings, train_tokenizer

DATA = REPO / "plugins" / "data"
CORPUS = DATA / "mlm_demo"
PAIRS = DATA / "translation_demo"
REPORTS = DATA / "summarization_demo"
PROMPTS = [
    "A good stock",
    "The tomato arrived in Italian kitchens surprisingly late, and",
    "Bread",
    "Fry the onions slowly until they turn golden, then",
    "Rice is",
]
GPT2_SPECIAL = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<pad>"}
T5_SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory) -> str:
    """A random 2-layer GPT-2 with a byte-level BPE tokenizer trained on the cooking corpus."""
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny_gpt2")
    texts = [r["text"] for r in read_jsonl(CORPUS / "train.jsonl")]
    tokenizer = train_tokenizer(texts, special_tokens=GPT2_SPECIAL, byte_level=True, vocab_size=400, model_max_length=96, padding_side="left")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=96, initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def seq2seq_lm(tmp_path_factory) -> str:
    """A random 1-layer T5 with a BPE tokenizer trained on the translation and summarization data."""
    from transformers import T5Config, T5ForConditionalGeneration

    path = tmp_path_factory.mktemp("tiny_t5")
    rows = read_jsonl(PAIRS / "train.jsonl") + read_jsonl(REPORTS / "train.jsonl")[:300]
    tokenizer = train_tokenizer([v for r in rows for v in (r["text"], r["target"])], special_tokens=T5_SPECIAL, vocab_size=500, append_eos=True)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        initializer_factor=5.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def sources(path, n=6) -> list[dict]:
    return [{"text": r["text"]} for r in read_jsonl(path / "test.jsonl")[:n]]


# ------------------------------------------------------------ text_generation
@pytest.mark.parametrize("full_text", [True, False])
def test_text_generation_equals_the_pipeline(causal_lm, full_text):
    from transformers import pipeline

    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu", return_full_text=full_text, generate={"max_new_tokens": 12})
    ours = [r["generated_text"] for r in task.predict([{"text": p} for p in PROMPTS], batch_size=3)]
    pipe = pipeline("text-generation", model=causal_lm, device="cpu")
    theirs = [pipe(p, do_sample=False, max_new_tokens=12, return_full_text=full_text)[0]["generated_text"] for p in PROMPTS]
    assert ours == theirs
    if full_text:
        assert all(text.startswith(prompt) for text, prompt in zip(ours, PROMPTS))
    assert len({text for text in ours}) == len(PROMPTS)


def test_stop_strings_stop_where_the_pipelines_stop_sequence_does(causal_lm):
    from transformers import pipeline

    free = taskhub.load_task("text_generation", model=causal_lm, device="cpu", return_full_text=False, generate={"max_new_tokens": 12})
    continuation = free.predict([{"text": PROMPTS[3]}])[0]["generated_text"]
    stop = re.search(r"[A-Za-z]{2}", continuation[2:]).group()  # a string the model writes a few characters in
    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu", return_full_text=False, stop_strings=[stop], generate={"max_new_tokens": 12})
    [ours] = task.predict([{"text": PROMPTS[3]}])
    pipe = pipeline("text-generation", model=causal_lm, device="cpu")
    [theirs] = pipe(PROMPTS[3], do_sample=False, max_new_tokens=12, return_full_text=False, stop_sequence=stop)
    assert ours["generated_text"] == theirs["generated_text"]
    assert stop in ours["generated_text"] and len(ours["generated_text"]) < len(continuation)


def test_prompts_are_padded_on_the_left_and_tokenized_as_given(causal_lm):
    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu")
    features = task.preprocess({"text": ["Bread", "A good stock"]})
    assert features["input_ids"] == [task.processor("Bread")["input_ids"], task.processor("A good stock")["input_ids"]]
    batch = task.collator([{k: v[i] for k, v in features.items()} for i in range(2)])
    short = len(features["input_ids"][0])
    width = batch["input_ids"].shape[1]
    assert batch["input_ids"][0, width - short :].tolist() == features["input_ids"][0]
    assert batch["attention_mask"][0].tolist() == [0] * (width - short) + [1] * short
    assert task.processor.pad_token_id in batch["input_ids"][0, : width - short].tolist()


def test_training_text_is_packed_into_blocks_ending_texts_with_eos(causal_lm):
    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu", block_size=16)
    texts = [r["text"] for r in read_jsonl(CORPUS / "validation.jsonl")[:3]]
    features = task.run_preprocess({"text": texts}, "x", [1, 2, 3], with_targets=True)
    eos = task.processor.eos_token_id
    joined = [t for ids in task.processor(texts)["input_ids"] for t in ids + [eos]]
    assert [t for block in features["input_ids"] for t in block] == joined
    assert max(map(len, features["input_ids"])) <= 16 and min(map(len, features["input_ids"])) >= 15
    assert features["labels"] == features["input_ids"]
    unpacked = taskhub.load_task("text_generation", model=causal_lm, device="cpu", block_size=16, packing=False)
    features = unpacked.run_preprocess({"text": texts}, "x", [1, 2, 3], with_targets=True)
    assert features["input_ids"] == [ids[:16] for ids in task.processor(texts)["input_ids"]]


# ------------------------------------------------------------ all three tasks
@pytest.mark.parametrize(
    "name, data, options",
    [
        ("text_generation", None, {"max_new_tokens": 10}),
        ("text_generation", None, {"max_new_tokens": 6, "num_beams": 3}),
        ("translation", PAIRS, {"max_new_tokens": 10}),
        ("summarization", REPORTS, {"max_new_tokens": 8, "num_beams": 2}),
    ],
)
def test_batched_generation_equals_one_at_a_time(causal_lm, seq2seq_lm, name, data, options):
    model = causal_lm if name == "text_generation" else seq2seq_lm
    records = [{"text": p} for p in PROMPTS] if data is None else sources(data)
    task = taskhub.load_task(name, model=model, device="cpu", generate=options)
    batched = task.predict(records, batch_size=len(records))
    single = [task.predict([r], batch_size=1)[0] for r in records]
    assert batched == single
    field = task.text_field
    assert len({r[field] for r in batched}) > 1  # the inputs do lead to different outputs


def test_generate_options_reach_the_model_on_top_of_its_generation_config(seq2seq_lm, monkeypatch):
    task = taskhub.load_task(
        "translation", model=seq2seq_lm, device="cpu",
        generate={"num_beams": 3, "max_new_tokens": 4, "repetition_penalty": 1.5, "num_return_sequences": 2},
    )
    task.model.generation_config.no_repeat_ngram_size = 2  # as if the checkpoint's generation_config.json set it
    seen, returned = [], []
    generate = task.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs["generation_config"])
        returned.append(generate(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(task.model, "generate", spy)
    predictions = task.predict(sources(PAIRS, 3))
    config = seen[0]
    assert (config.num_beams, config.max_new_tokens, config.repetition_penalty, config.num_return_sequences) == (3, 4, 1.5, 2)
    assert config.no_repeat_ngram_size == 2 and not config.do_sample
    assert all(isinstance(p["translation_text"], list) and len(p["translation_text"]) == 2 for p in predictions)
    assert returned[0].shape == (6, 1 + 4)  # 3 rows x 2 sequences: the decoder start token + at most 4 new tokens


def test_defaults_are_greedy_with_a_task_length_limit(causal_lm, seq2seq_lm):
    text = taskhub.load_task("text_generation", model=causal_lm, device="cpu")
    config = text.generation_config
    assert not config.do_sample and (config.num_beams or 1) == 1 and config.max_new_tokens == 50
    summary = taskhub.load_task("summarization", model=seq2seq_lm, device="cpu", max_target_length=20)
    assert summary.generation_config.max_new_tokens == 20 and not summary.generation_config.do_sample
    own_limit = taskhub.load_task("summarization", model=seq2seq_lm, device="cpu", generate={"max_length": 7})
    assert own_limit.generation_config.max_length == 7 and own_limit.generation_config.max_new_tokens is None


def test_sampling_is_seeded(causal_lm):
    options = {"do_sample": True, "top_k": 0, "max_new_tokens": 12}
    records = [{"text": p} for p in PROMPTS]
    first = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate=options).predict(records)
    again = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate=options).predict(records)
    other = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate=options)
    other.seed = 7
    greedy = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate={"max_new_tokens": 12}).predict(records)
    assert first == again
    assert other.predict(records) != first and first != greedy


def test_unknown_generate_field_is_an_error_listing_the_valid_ones(causal_lm):
    with pytest.raises(TaskhubError) as err:
        taskhub.load_task("text_generation", model=causal_lm, generate={"max_new_token": 5})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "task.generate.max_new_token: not a transformers.GenerationConfig field (did you mean 'max_new_tokens'?); valid fields: "
    )
    assert {"max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "repetition_penalty"} <= set(message.split("valid fields: ")[1].split(", "))


def test_contradictory_generate_values_are_an_error(causal_lm):
    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate={"temperature": 0.5})
    with pytest.raises(TaskhubError, match=r"^task.generate: `temperature`: `do_sample` is not set to `True`"):
        task.predict([{"text": "Bread"}])


def test_prompt_longer_than_the_model_is_an_error(causal_lm):
    task = taskhub.load_task("text_generation", model=causal_lm, device="cpu", generate={"max_new_tokens": 20})
    with pytest.raises(TaskhubError, match=r"^input, row 2: the prompt is \d+ tokens; with max_new_tokens=20 that is more than the 96 positions"):
        task.predict([{"text": "Bread"}, {"text": "bread " * 90}])


# ------------------------------------------------------------------- seq2seq
def test_seq2seq_inputs_get_the_prefix_and_both_sides_are_truncated(seq2seq_lm):
    task = taskhub.load_task("summarization", model=seq2seq_lm, device="cpu", prefix="summarize: ", max_source_length=12, max_target_length=5)
    row = read_jsonl(REPORTS / "test.jsonl")[0]
    features = task.run_preprocess({"text": [row["text"]], "target": [row["target"]]}, "x", [1], with_targets=True)
    tokenizer = task.processor
    full = tokenizer("summarize: " + row["text"])["input_ids"]
    assert features["input_ids"][0] == full[:11] + [tokenizer.eos_token_id]
    assert features["labels"][0] == tokenizer(row["target"])["input_ids"][:4] + [tokenizer.eos_token_id]
    assert tokenizer.decode(features["input_ids"][0], skip_special_tokens=True).startswith("summarize: Weather")


def test_prefix_from_the_model_configs_task_specific_params(seq2seq_lm, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(seq2seq_lm)
    config.task_specific_params = {"translation_en_to_fr": {"prefix": "translate English to French: ", "num_beams": 2}}
    task = taskhub.load_task("translation", model=seq2seq_lm, device="cpu", source_lang="en", target_lang="fr")
    task.model.config.task_specific_params = config.task_specific_params
    assert task.prefix == "translate English to French: "
    assert task.generation_config.num_beams == 2
    no_langs = taskhub.load_task("translation", model=seq2seq_lm, device="cpu")
    no_langs.model.config.task_specific_params = config.task_specific_params
    assert no_langs.prefix == "" and (no_langs.generation_config.num_beams or 1) == 1


def test_multilingual_tokenizer_gets_the_languages_and_forces_the_target_language(tmp_path):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    words = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁cat", "▁le", "▁chat", "."])}
    tokenizer = NllbTokenizer(vocab=words, merges=[], src_lang="eng_Latn", tgt_lang="fra_Latn")
    torch.manual_seed(0)
    config = M2M100Config(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
    )
    M2M100ForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    task = taskhub.load_task("translation", model=str(tmp_path), device="cpu", source_lang="deu_Latn", target_lang="ita_Latn", generate={"max_new_tokens": 4})
    deu, ita = (task.processor.convert_tokens_to_ids(code) for code in ("deu_Latn", "ita_Latn"))
    features = task.run_preprocess({"text": ["the cat."], "target": ["le chat."]}, "x", [1], with_targets=True)
    assert features["input_ids"][0][0] == deu and features["labels"][0][0] == ita
    assert task.generation_config.forced_bos_token_id == ita
    outputs = task.forward(task.collator([{k: v[0] for k, v in features.items() if k != "labels"}]))
    assert outputs["sequences"][0, 1].item() == ita  # the decoder start, then the forced language token
    with pytest.raises(TaskhubError, match="task.target_lang='klingon': not a language code of the tokenizer"):
        taskhub.load_task("translation", model=str(tmp_path), device="cpu", target_lang="klingon").predict([{"text": "the cat."}])


def test_bad_rows_are_row_errors(seq2seq_lm, causal_lm):
    translation = taskhub.load_task("translation", model=seq2seq_lm, device="cpu")
    with pytest.raises(RowError, match="empty 'text'") as err:
        translation.preprocess({"text": ["The cat sleeps.", "  "]})
    assert err.value.index == 1
    with pytest.raises(RowError, match="missing 'target'"):
        translation.encode_targets({"text": ["The cat sleeps."], "target": [None]}, {})
    generation = taskhub.load_task("text_generation", model=causal_lm, device="cpu")
    with pytest.raises(TaskhubError, match="^input, row 3: 'text' must be a string, not int$"):
        generation.predict([{"text": "Bread"}, {"text": "Rice"}, {"text": 7}])


def test_metrics_of_perfect_and_wrong_outputs(seq2seq_lm):
    rows = read_jsonl(PAIRS / "test.jsonl")[:20]
    translation = taskhub.load_task("translation", model=seq2seq_lm, device="cpu")
    perfect = translation.score_predictions([{"translation_text": r["target"]} for r in rows], {"target": [r["target"] for r in rows]})
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100)
    wrong = translation.score_predictions([{"translation_text": "Zut."} for r in rows], {"target": [r["target"] for r in rows]})
    assert wrong["bleu"] < 1 and wrong["gen_len"] == len(translation.processor("Zut.", add_special_tokens=False)["input_ids"])
    summarization = taskhub.load_task("summarization", model=seq2seq_lm, device="cpu")
    reports = read_jsonl(REPORTS / "test.jsonl")[:20]
    perfect = summarization.score_predictions([{"summary_text": r["target"]} for r in reports], {"target": [r["target"] for r in reports]})
    assert all(perfect[k] == pytest.approx(1.0) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"))


# --------------------------------------------------------- tokenizer training
def test_trained_tokenizers_decode_to_the_text_they_encode(tmp_path):
    from transformers import AutoTokenizer

    rows = read_jsonl(PAIRS / "train.jsonl")
    texts = [r["target"] for r in rows]
    unseen = ["Le vieil homme n'a pas 37 œufs, dit-il; «vraiment»?", "Pump 12 at Northgate: 45 mm of rain."]
    for algorithm in ("bpe", "unigram", "wordpiece", "wordlevel"):
        tokenizer = train_tokenizer(texts, special_tokens=T5_SPECIAL, algorithm=algorithm, vocab_size=400, append_eos=True)
        for text in texts[:50]:
            ids = tokenizer(text)["input_ids"]
            assert ids[-1] == tokenizer.eos_token_id
            assert tokenizer.decode(ids, skip_special_tokens=True) == text, algorithm
        if algorithm == "bpe":  # any digit and ASCII character is in the alphabet
            assert tokenizer.decode(tokenizer("Pump 12: 45 mm.")["input_ids"], skip_special_tokens=True) == "Pump 12: 45 mm."
    byte_level = train_tokenizer(texts, special_tokens=GPT2_SPECIAL, byte_level=True, vocab_size=400)
    for text in unseen:
        assert byte_level.decode(byte_level(text)["input_ids"]) == text
    byte_level.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert [reloaded(t)["input_ids"] for t in unseen] == [byte_level(t)["input_ids"] for t in unseen]
    assert reloaded.pad_token == "<pad>" and reloaded.eos_token == "<|endoftext|>"


def test_tokenizer_settings_are_checked():
    assert tokenizer_settings({"vocab_size": 300}, {"algorithm": "unigram"}) == {"algorithm": "unigram", "vocab_size": 300}
    with pytest.raises(TaskhubError, match="model.processor.vocab_sise: not a setting of a tokenizer trained from data"):
        tokenizer_settings({"vocab_sise": 300}, {})
    with pytest.raises(TaskhubError, match="model.processor.algorithm='sentencepiece': use one of bpe, unigram, wordpiece, wordlevel"):
        tokenizer_settings({"algorithm": "sentencepiece"}, {})
    with pytest.raises(TaskhubError, match="model.processor.vocab_size='big': expected int"):
        tokenizer_settings({"vocab_size": "big"}, {})


# ------------------------------------------------------ end to end (the CLI)
# text_generation trains through the real `taskhub` console script (its stdout is under
# test); the seq2seq trainings, evaluation and prediction go through taskhub.run, the same
# composition and runner in-process (each CLI start costs seconds of imports).
def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def run(*overrides: str, run_dir) -> dict:
    return taskhub.run([*overrides, "device=cpu"], run_dir=run_dir)


@pytest.mark.slow
def test_text_generation_trains_evaluates_and_predicts(tmp_path):
    train = tmp_path / "train"
    proc = run_cli(
        "task=text_generation", "data.limit=40", "task.block_size=64", "model.config.n_embd=32", "model.config.n_layer=1",
        "model.config.n_positions=128", "model.processor.vocab_size=300", "train.num_train_epochs=4", "train.learning_rate=5e-3",
        "task.samples=2", "task.generate.max_new_tokens=6", "device=cpu", f"hydra.run.dir={train}",
    )
    metrics = metrics_of(train)
    assert metrics["before_test_perplexity"] > 200  # about the vocabulary size: the untrained model
    assert metrics["test_perplexity"] < metrics["before_test_perplexity"] / 2
    assert "before" in proc.stdout and "samples (the first 6 words of 2 test texts, continued):" in proc.stdout
    model = train / "model"
    assert (model / "tokenizer.json").is_file() and (model / "generation_config.json").is_file()

    evaluate = run("task=text_generation", "mode=evaluate", f"model.name_or_path={model}", "task.block_size=64", "data.limit=40", run_dir=tmp_path / "evaluate")
    assert evaluate["metrics"]["test_perplexity"] == pytest.approx(metrics["test_perplexity"], rel=1e-4)

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": i, "text": p} for i, p in enumerate(PROMPTS)])
    predict = run("task=text_generation", "mode=predict", f"model.name_or_path={model}", f"data.predict={prompts}", "task.generate.max_new_tokens=8", run_dir=tmp_path / "predict")
    predictions = read_jsonl(predict["outputs"]["predictions"])
    assert [p["id"] for p in predictions] == list(range(len(PROMPTS))) and [p["text"] for p in predictions] == PROMPTS

    from transformers import pipeline

    pipe = pipeline("text-generation", model=str(model), device="cpu")
    assert [p["generated_text"] for p in predictions] == [pipe(p, do_sample=False, max_new_tokens=8)[0]["generated_text"] for p in PROMPTS]


def train_seq2seq(tmp_path, name: str, data, train_rows: int, epochs: int):
    """Train a tiny T5 from scratch (in-process, the CLI's overrides) on a slice of the demo data."""
    train_file = write_jsonl(tmp_path / "train.jsonl", read_jsonl(data / "train.jsonl")[:train_rows])
    test_file = write_jsonl(tmp_path / "test.jsonl", read_jsonl(data / "test.jsonl")[:40])
    run_dir = tmp_path / "train"
    run(
        f"task={name}", f"data.train={train_file}", f"data.test={test_file}", f"train.num_train_epochs={epochs}",
        "train.per_device_train_batch_size=16", "task.max_target_length=40", run_dir=run_dir,
    )
    return metrics_of(run_dir), run_dir / "model", test_file


@pytest.mark.slow
def test_translation_trains_evaluates_and_predicts(tmp_path):
    metrics, model, test_file = train_seq2seq(tmp_path, "translation", PAIRS, train_rows=800, epochs=4)
    assert metrics["test_chrf"] > 20 and metrics["test_bleu"] > 3  # an untrained model scores about 0 on both
    assert 3 < metrics["test_gen_len"] < 40
    assert (model / "tokenizer.json").is_file() and json.loads((model / "config.json").read_text())["model_type"] == "t5"

    evaluate = run("task=translation", "mode=evaluate", f"model.name_or_path={model}", f"data.test={test_file}", "task.max_target_length=40", run_dir=tmp_path / "evaluate")
    assert evaluate["metrics"]["test_bleu"] == pytest.approx(metrics["test_bleu"])

    predict = run("task=translation", "mode=predict", f"model.name_or_path={model}", f"data.predict={test_file}", "task.max_target_length=40", "batch_size=7", run_dir=tmp_path / "predict")
    predictions = read_jsonl(predict["outputs"]["predictions"])
    rows = read_jsonl(test_file)
    assert [p["text"] for p in predictions] == [r["text"] for r in rows] and [p["target"] for p in predictions] == [r["target"] for r in rows]
    reloaded = taskhub.load_task("translation", model=str(model), device="cpu", max_target_length=40)
    assert [p["translation_text"] for p in predictions[:10]] == [r["translation_text"] for r in reloaded.predict(rows[:10], batch_size=1)]


@pytest.mark.slow
def test_summarization_trains_evaluates_and_predicts(tmp_path):
    metrics, model, test_file = train_seq2seq(tmp_path, "summarization", REPORTS, train_rows=300, epochs=4)
    assert metrics["test_rougeL"] > 0.35  # an untrained model scores about 0
    assert set(metrics) >= {f"test_{k}" for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")}

    evaluate = run("task=summarization", "mode=evaluate", f"model.name_or_path={model}", f"data.test={test_file}", "task.max_target_length=40", run_dir=tmp_path / "evaluate")
    assert evaluate["metrics"]["test_rougeL"] == pytest.approx(metrics["test_rougeL"])

    predict = run("task=summarization", "mode=predict", f"model.name_or_path={model}", f"data.predict={test_file}", "task.max_target_length=40", run_dir=tmp_path / "predict")
    predictions = read_jsonl(predict["outputs"]["predictions"])
    assert len(predictions) == 40 and all(isinstance(p["summary_text"], str) and p["summary_text"] for p in predictions)
    reloaded = taskhub.load_task("summarization", model=str(model), device="cpu", max_target_length=40)
    assert reloaded.score_predictions(predictions, {"target": [p["target"] for p in predictions]})["rougeL"] == pytest.approx(metrics["test_rougeL"])


@pytest.mark.slow
def test_bad_input_is_a_one_line_error(seq2seq_lm, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"text": "The cat sleeps.", "target": "Le chat dort."}, {"text": "", "target": "Rien."}])
    # In-process: the CLI prints these messages as its one line "taskhub: error: <message>" and
    # exits 2 (tested on real subprocesses in test_bad_input.py and test_end_to_end.py).
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=translation", "mode=predict", f"model.name_or_path={seq2seq_lm}", f"data.predict={rows}"], run_dir=tmp_path / "a")
    assert str(err.value) == f"{rows}, row 2: empty 'text'"
    no_target = write_jsonl(tmp_path / "no_target.jsonl", [{"text": "The cat sleeps."}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=summarization", f"data.train={no_target}"], run_dir=tmp_path / "b")
    assert str(err.value) == (
        f"{no_target}: missing required column 'target' for task summarization "
        "(columns found: text; map yours with data.columns.<name>=<your column>)"
    )
    gaps = write_jsonl(tmp_path / "gaps.jsonl", [{"text": "The cat sleeps.", "target": "Le chat dort."}, {"text": "The dog runs.", "target": None}])
    with pytest.raises(TaskhubError) as err:
        taskhub.run(["task=translation", "mode=evaluate", f"model.name_or_path={seq2seq_lm}", f"data.test={gaps}", "task.generate.max_new_tokens=3", "device=cpu"], run_dir=tmp_path / "c")
    assert str(err.value) == f"{gaps}, row 2: missing 'target'"
    with pytest.raises(TaskhubError, match=r"^task.generate.beams: not a transformers.GenerationConfig field \(did you mean 'num_beams'\?\); valid fields: "):
        taskhub.run(["task=translation", "mode=predict", f"model.name_or_path={seq2seq_lm}", f"data.predict={rows}", "task.generate.beams=2"], run_dir=tmp_path / "d")
