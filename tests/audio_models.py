"""Tiny seeded random audio models and synthetic recordings for the audio tests."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

#: Characters of the tiny CTC models' vocabulary (after <pad>, <unk>, |).
CHARS = "abcdefghijklmnopqrstuvwxyz'"
LABELS = ["yes", "no", "up", "down"]

# Tiny wav2vec2: 3 conv layers (stride 5*4*4 = 80 samples per frame), 2 transformer layers.
W2V = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [16, 16, 16],
    "conv_stride": [5, 4, 4],
    "conv_kernel": [10, 4, 4],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "output_hidden_size": 32,
    "classifier_proj_size": 32,
    "conv_depthwise_kernel_size": 5,
}


def _w2v_config(norm: str, **extra):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(**W2V, feat_extract_norm=norm, do_stable_layer_norm=False, **extra)


def _w2v_extractor(norm: str):
    from transformers import Wav2Vec2FeatureExtractor

    # Models with layer norm in the feature encoder take attention masks (padding-safe);
    # group-norm ones (like wav2vec2-base) do not.
    return Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=norm == "layer")


def ctc_tokenizer():
    from transformers import Wav2Vec2CTCTokenizer

    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.json"
        path.write_text(json.dumps(vocab))
        return Wav2Vec2CTCTokenizer(str(path), bos_token=None, eos_token=None)


def classifier(path, family: str = "wav2vec2-layer") -> Path:
    """A 4-label audio classifier: wav2vec2 (layer or group norm) or wav2vec2-bert."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertForSequenceClassification, Wav2Vec2ForSequenceClassification

    labels = {"id2label": dict(enumerate(LABELS)), "label2id": {l: i for i, l in enumerate(LABELS)}}
    torch.manual_seed(0)
    if family == "wav2vec2-bert":
        model = Wav2Vec2BertForSequenceClassification(Wav2Vec2BertConfig(**BERT, **labels))
        extractor = SeamlessM4TFeatureExtractor()
    else:
        norm = family.split("-")[1]
        model = Wav2Vec2ForSequenceClassification(_w2v_config(norm, classifier_proj_size=32, **labels))
        extractor = _w2v_extractor(norm)
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return Path(path)


def ctc_model(path, family: str = "wav2vec2-layer") -> Path:
    """A CTC model over CHARS: wav2vec2 (layer or group norm) or wav2vec2-bert."""
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertForCTC,
        Wav2Vec2BertProcessor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    tokenizer = ctc_tokenizer()
    torch.manual_seed(0)
    if family == "wav2vec2-bert":
        model = Wav2Vec2BertForCTC(Wav2Vec2BertConfig(**BERT, vocab_size=len(tokenizer), pad_token_id=0))
        processor = Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer)
    else:
        norm = family.split("-")[1]
        model = Wav2Vec2ForCTC(_w2v_config(norm, vocab_size=len(tokenizer), pad_token_id=0))
        processor = Wav2Vec2Processor(feature_extractor=_w2v_extractor(norm), tokenizer=tokenizer)
    # Random heads favour a few characters everywhere; a spread of output biases makes the
    # greedy transcript change along the recording, so stitching errors would show.
    with torch.no_grad():
        model.lm_head.bias.copy_(torch.randn(len(tokenizer)) * 0.5)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def whisper_model(path) -> Path:
    """A 1-layer Whisper with a byte-level tokenizer (256 byte tokens + Whisper's specials)
    that writes lowercase letters and spaces only (the others are suppressed), with weights
    large enough for the transcript to depend on the recording."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # fmt: skip
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for token in specials:
        vocab[token] = len(vocab)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n")
        eot = "<|endoftext|>"
        tokenizer = WhisperTokenizer(str(Path(folder) / "vocab.json"), str(Path(folder) / "merges.txt"), unk_token=eot,
                                     bos_token=eot, eos_token=eot, pad_token=eot, additional_special_tokens=specials[1:])  # fmt: skip
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
        max_target_positions=64, decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=vocab[eot],
        pad_token_id=vocab[eot], bos_token_id=vocab[eot], init_std=0.5, begin_suppress_tokens=None,
        suppress_tokens=[i for token, i in vocab.items() if token not in "abcdefghijklmnopqrstuvwxyzĠ" and token != eot],
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # keep the decoder off its start token so transcripts are not empty
        model.proj_out.weight[vocab["<|startoftranscript|>"]] = 0
    model.save_pretrained(path)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(path)
    return Path(path)


def signal(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A float32 test recording: gliding tones with amplitude bursts and a little noise,
    different in each channel; shape (samples,) or (samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    columns = []
    for c in range(channels):
        f0 = rng.uniform(150, 400)
        tone = np.sin(2 * np.pi * (f0 * t + rng.uniform(50, 200) * t**2 / max(seconds, 1)))
        bursts = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + c)
        columns.append(0.4 * tone * bursts + 0.02 * rng.standard_normal(t.shape))
    out = np.stack(columns, axis=1).astype(np.float32)
    return out[:, 0] if channels == 1 else out


def write(path, seconds: float, rate: int, channels: int = 1, seed: int = 0, subtype: str | None = None) -> Path:
    sf.write(path, signal(seconds, rate, channels, seed), rate, subtype=subtype)
    return Path(path)


def read_mono(path) -> dict:
    """What a pipeline gets for a file: soundfile's float32 samples, channels averaged."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return {"array": data.mean(axis=1, dtype="float32"), "sampling_rate": rate}
