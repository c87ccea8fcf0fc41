"""asr: speech recognition, recordings -> text, with CTC (wav2vec2 & co.) or
sequence-to-sequence (Whisper & co.) models.

CTC models decode greedily (argmax per frame, repeats and blanks collapsed by the
tokenizer). Long recordings are cut into overlapping chunks and the per-frame tokens of
the chunks' middles are stitched, as transformers' ASR pipeline does. Seq2seq models
``generate`` with ``task.generate.*`` settings (:class:`~taskhub.generation.GenerationTask`).
Training fine-tunes CTC models (or trains one from scratch with a character vocabulary
built from the training transcripts) and seq2seq models on ``audio`` + ``text``;
evaluation transcribes the held-out split and scores WER and CER with jiwer.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import TaskSpec, hookimpl
from taskhub.audio import SMALL_DATA_WAV2VEC2, AudioTask, extract, forward_rows, main_input_name
from taskhub.errors import RowError, TaskhubError
from taskhub.generation import GenerationTask, GenerationTaskConfig
from taskhub.task import ROW_KEY

#: Recordings longer than this are chunked when ``task.chunk_length_s`` is unset (CTC models).
AUTO_CHUNK_S = 30.0
#: Tokens of a vocabulary built from transcripts: CTC blank/padding, unknown, word delimiter.
PAD, UNK, DELIMITER = "<pad>", "<unk>", "|"
#: Side feature: a chunk's (samples, left overlap, right overlap); None for a whole recording.
STRIDE = "_stride"


@dataclass
class AsrConfig(GenerationTaskConfig):
    name: str = "asr"
    # CTC models: split recordings into chunks of this many seconds that overlap by
    # stride_length_s on each side, and stitch the transcript (as transformers' ASR
    # pipeline does). None: recordings longer than 30 s are chunked (shorter ones give the
    # same text either way); 0: never chunk. Applies when transcribing (predict, evaluate).
    chunk_length_s: Optional[float] = None
    # Overlap on each side of a chunk, in seconds; None: chunk_length_s / 6.
    stride_length_s: Optional[float] = None


class Asr(AudioTask, GenerationTask):
    """Transcribe recordings; any sample rate, mono or multi-channel."""

    name = "asr"
    config_cls = AsrConfig
    processor_class = "AutoProcessor"
    pipeline_tag = "automatic-speech-recognition"
    target_columns = ("text",)
    prediction_fields = ("text",)
    text_field = "text"
    main_metric = "wer"
    demo_data = "pkg://taskhub_plugins/data/spoken_digits"
    demo_description = "Upload or record speech to get it written out as text."
    evaluate_by_prediction = True
    evaluate_before_training = True
    # With no model named: a small wav2vec2-BERT CTC model (a conformer over log-mel
    # features) trained from scratch, with a character vocabulary built from the training
    # transcripts (see train_processor).
    default_model_config = {
        **SMALL_DATA_WAV2VEC2,
        "model_type": "wav2vec2-bert",
        "hidden_size": 96,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 192,
        "output_hidden_size": 96,
        "conv_depthwise_kernel_size": 15,
        "final_dropout": 0.0,
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
    }
    # Feature extractor arguments of the from-scratch model; its class follows the model
    # type (SeamlessM4TFeatureExtractor for wav2vec2-bert, else Wav2Vec2FeatureExtractor)
    # unless feature_extractor_class names one.
    default_processor_config: dict = {}
    training_defaults = {
        "num_train_epochs": 12,
        "learning_rate": 2e-3,
        "warmup_steps": 0.1,
        "weight_decay": 0.0,
        "per_device_train_batch_size": 16,
        # held-out splits are scored by transcribing them (evaluate_by_prediction)
        "eval_strategy": "no",
        "prediction_loss_only": True,
    }

    def __init__(self, config=None, model=None, device: str = "auto"):
        super().__init__(config, model, device)
        for option in ("chunk_length_s", "stride_length_s"):
            value = getattr(self.config, option)
            if value is not None and value < 0:
                raise TaskhubError(f"task.{option}: must be >= 0, got {value}")
        self._encoder_decoder: bool | None = None
        self._transcribing = False

    # ------------------------------------------------------------ model family
    @property
    def encoder_decoder(self) -> bool:  # type: ignore[override]
        """Whether the model is a sequence-to-sequence one (generate) rather than CTC."""
        if self._model is not None:
            return bool(getattr(self._model.config, "is_encoder_decoder", False))
        if self._encoder_decoder is None:
            from transformers import AutoConfig

            from taskhub.modeling import _hub_kwargs, _loading, model_source

            source = model_source(self)
            with _loading("model", source.name_or_path or source.config["model_type"]):
                if source.name_or_path is None:
                    config = AutoConfig.for_model(source.config["model_type"])
                else:
                    config = AutoConfig.from_pretrained(source.name_or_path, **_hub_kwargs(self))
            self._encoder_decoder = bool(config.is_encoder_decoder)
        return self._encoder_decoder

    @classmethod
    def auto_models(cls) -> tuple[str, ...]:
        return ("AutoModelForCTC", "AutoModelForSpeechSeq2Seq")

    @property
    def auto_model(self) -> str:  # type: ignore[override]
        """AutoModelForSpeechSeq2Seq for encoder-decoder checkpoints (Whisper), else AutoModelForCTC."""
        return "AutoModelForSpeechSeq2Seq" if self.encoder_decoder else "AutoModelForCTC"

    @property
    def tokenizer(self):
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is None:
            raise TaskhubError(f"the processor ({type(self.processor).__name__}) has no tokenizer to turn the model's output into text")
        return tokenizer

    @property
    def pad_token_id(self) -> int:
        tokenizer = self.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generation_defaults(self) -> dict[str, Any]:
        # transformers' ASR pipeline's defaults where the model's generation config sets
        # neither: room for a 30 s window's transcript, and OpenAI Whisper's beam width
        return {"max_new_tokens": 256, "num_beams": 5}

    # --------------------------------------------------------- from scratch
    def train_processor(self, train_dataset, settings):
        """A CTC processor for a from-scratch model: a character vocabulary from the
        training transcripts (spaces become the word delimiter '|'; '<pad>' is the CTC
        blank) and a feature extractor from ``settings`` (``model.processor.*``)."""
        if self.encoder_decoder:
            return super().train_processor(train_dataset, settings)  # no tokenizer to build for those
        import transformers
        from transformers import Wav2Vec2CTCTokenizer

        from taskhub.modeling import model_source, transformers_attr

        # Rows without a usable transcript are reported with file and row when encoded.
        chars = {char for text in train_dataset["text"] if isinstance(text, str) for char in text}
        chars.discard(" ")
        vocab = {PAD: 0, UNK: 1, DELIMITER: 2}
        for char in sorted(chars - set(vocab)):
            vocab[char] = len(vocab)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "vocab.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(vocab, f, ensure_ascii=False)
            tokenizer = Wav2Vec2CTCTokenizer(path, unk_token=UNK, pad_token=PAD, word_delimiter_token=DELIMITER, bos_token=None, eos_token=None)
        settings = dict(settings)
        bert = model_source(self).config.get("model_type") == "wav2vec2-bert"
        fe_class = settings.pop("feature_extractor_class", "SeamlessM4TFeatureExtractor" if bert else "Wav2Vec2FeatureExtractor")
        try:
            feature_extractor = transformers_attr(fe_class)(**settings)
        except TypeError as exc:
            raise TaskhubError(f"model.processor: {exc}") from None
        processor_cls = transformers.Wav2Vec2BertProcessor if bert else transformers.Wav2Vec2Processor
        return processor_cls(feature_extractor=feature_extractor, tokenizer=tokenizer)

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        from taskhub.modeling import processor_from_data

        if not processor_from_data(self):
            return {}
        return {"vocab_size": len(self.tokenizer), "pad_token_id": self.tokenizer.pad_token_id}

    # ------------------------------------------------------------------ data
    def chunking(self) -> tuple[int, int] | None:
        """(chunk, overlap on each side) in samples, aligned to the model's frame step,
        when recordings are to be chunked; None otherwise."""
        chunk_s = self.config.chunk_length_s
        if self.encoder_decoder:
            if chunk_s:
                raise TaskhubError(
                    "task.chunk_length_s: chunking is for CTC models; sequence-to-sequence models (Whisper) "
                    "transcribe long recordings themselves"
                )
            return None
        if chunk_s is None:
            chunk_s = AUTO_CHUNK_S
        if not chunk_s:
            return None
        stride_s = self.config.stride_length_s if self.config.stride_length_s is not None else chunk_s / 6
        align = self.frame_step
        rate = self.feature_extractor.sampling_rate
        chunk = int(round(chunk_s * rate / align) * align)
        stride = int(round(stride_s * rate / align) * align)
        if chunk <= 2 * stride:
            raise TaskhubError(
                f"task.chunk_length_s ({chunk_s:g}) must be longer than twice task.stride_length_s ({stride_s:g})"
            )
        return chunk, stride

    @property
    def frame_step(self) -> int:
        """Input samples per output frame (logit), as the ASR pipeline aligns chunks."""
        step = int(getattr(self.model.config, "inputs_to_logits_ratio", 1))
        if self.model.config.model_type == "lasr_ctc":  # mel features in, logits per feature frame
            step *= self.feature_extractor.hop_length
        return step

    def predict_iter(self, records, batch_size: int = 32, source: str = "input", **engine):
        # Chunking applies when transcribing (predict, evaluation); training rows stay whole.
        self._transcribing = True
        try:
            yield from super().predict_iter(records, batch_size=batch_size, source=source, **engine)
        finally:
            self._transcribing = False

    def preprocess(self, batch):
        fe = self.feature_extractor
        chunking = self.chunking() if self._transcribing else None
        features: dict[str, list] = {ROW_KEY: [], STRIDE: []}

        def add(values: dict[str, Any], row: int, stride=None) -> None:
            for key, value in values.items():
                features.setdefault(key, []).append(value)
            features[ROW_KEY].append(row)
            features[STRIDE].append(stride)

        for i, waveform in enumerate(self.waveforms(batch)):
            if self.encoder_decoder:
                # Whisper: longer than its 30 s window -> untruncated features, long-form generation
                long = waveform.shape[0] > getattr(fe, "n_samples", float("inf"))
                options = {"truncation": False, "padding": "longest"} if long else {}
                add(extract(fe, waveform, return_attention_mask=True, **options), i)
            elif chunking is None or waveform.shape[0] <= chunking[0]:
                add(extract(fe, waveform), i)
            else:
                chunk, overlap = chunking
                for start in range(0, waveform.shape[0], chunk - 2 * overlap):
                    piece = waveform[start : start + chunk]
                    last = start + chunk >= waveform.shape[0]
                    stride = (piece.shape[0], 0 if start == 0 else overlap, 0 if last else overlap)
                    if piece.shape[0] > stride[1]:
                        add(extract(fe, piece), i, stride)
                    if last:
                        break
        return features

    def encode_targets(self, batch, features):
        texts = batch["text"]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise RowError(i, "missing 'text'" if text is None else f"'text' must be a string, not {type(text).__name__}")
        labels = self.tokenizer(texts, add_special_tokens=self.encoder_decoder)["input_ids"]
        if self.encoder_decoder:
            # The model prepends the decoder start token itself (shifting labels right).
            start = getattr(self.model.config, "decoder_start_token_id", None)
            labels = [ids[1:] if ids and ids[0] == start else ids for ids in labels]
        return {"labels": [labels[row] for row in features[ROW_KEY]]}

    # ------------------------------------------------------------- inference
    def _forward(self, inputs):
        inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if self.encoder_decoder:
            name = main_input_name(self.feature_extractor)
            config = self.generation_config

            def generate(model, part, lengths):
                out = model.generate(**{name: part[name]}, attention_mask=part.get("attention_mask"), generation_config=config)
                return list(getattr(out, "sequences", out))

            return forward_rows(self.model, inputs, generate)

        output_lengths = getattr(self.model, "_get_feat_extract_output_lengths", None)

        def greedy(model, part, lengths):
            ids = model(**part).logits.argmax(-1)
            if output_lengths is None:  # rows of one length, or each alone
                return list(ids)
            # the frames of each row's own length, as if it ran alone
            return [row[:n] for row, n in zip(ids, output_lengths(lengths).tolist())]

        return forward_rows(self.model, inputs, greedy, padded_ok=output_lengths is not None)

    def postprocess(self, outputs, batch, features):
        if self.encoder_decoder:
            texts = self.tokenizer.batch_decode([ids.tolist() for ids in outputs], skip_special_tokens=True)
            return [{"text": text} for text in self.per_row(texts, len(batch["audio"]))]
        import torch

        step = self.frame_step
        rows: list[list] = [[] for _ in batch["audio"]]
        for ids, row, stride in zip(outputs, features[ROW_KEY], features[STRIDE]):
            if stride is not None:  # keep the chunk's middle: its frames that no neighbour covers better
                total, left, right = stride
                frames = int(round(total / step))
                ids = ids[int(round(left / total * frames)) : frames - int(round(right / total * frames))]
            rows[row].append(ids.cpu())
        return [{"text": self.tokenizer.decode(torch.cat(parts).tolist())} for parts in rows]

    # --------------------------------------------------------------- metrics
    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """Per recording: WER and CER (jiwer), with the error and reference counts whose
        sums give the corpus WER / CER jiwer reports for the whole split."""
        import jiwer

        targets = list(references["text"])
        for i, target in enumerate(targets):
            if not isinstance(target, str):
                raise TaskhubError(f"{self._source}, row {i + 1}: missing 'text' to score the transcript against")
        if not any(t.strip() for t in targets):
            raise TaskhubError(f"{self._source}: every reference transcript is empty: WER and CER are undefined")
        examples = []
        # With generate.num_return_sequences > 1, the first (best) transcript is scored.
        for target, text in zip(targets, (p["text"] for p in predictions)):
            hypothesis = text[0] if isinstance(text, list) else text
            stats = {}
            for unit, measure in (("word", jiwer.process_words), ("char", jiwer.process_characters)):
                counts = measure(target, hypothesis)
                stats[f"{unit}_errors"] = counts.substitutions + counts.deletions + counts.insertions
                stats[f"{unit}s"] = counts.hits + counts.substitutions + counts.deletions
            scores = {name: stats[f"{unit}_errors"] / max(stats[f"{unit}s"], 1) for name, unit in (("wer", "word"), ("cer", "char"))}
            examples.append({"scores": scores, "stats": stats})
        return examples

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Corpus WER / CER: all errors over all reference words / characters."""
        return {name: float(columns[f"{unit}_errors"].sum() / columns[f"{unit}s"].sum()) for name, unit in (("wer", "word"), ("cer", "char"))}


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(Asr.name, Asr, AsrConfig)]
