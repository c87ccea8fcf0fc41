"""image_to_text: caption images with a vision encoder-decoder model.

Rows have ``image`` (a file path, encoded bytes, PIL image or array) and, to train or
evaluate, ``text`` (the reference caption). The model is any
``AutoModelForImageTextToText`` that generates from pixels alone, e.g. a
``VisionEncoderDecoderModel`` (ViT / DeiT / Swin encoder + GPT-2 / BERT decoder); its
processor pairs an image processor with a tokenizer. Generation options, greedy decoding
by default, batching and decoding come from :class:`taskhub.generation.GenerationTask`;
the prediction field is ``generated_text``, as transformers 4's image-to-text pipeline
named it (transformers 5 has no such pipeline: its image-text-to-text pipeline needs a
text prompt and chat-style processors, and does not run vision encoder-decoder models).

Evaluation captions every held-out image, exactly as ``mode=predict`` would, and scores
the captions against the references: corpus BLEU and chrF (sacreBLEU, 0-100, the
translation task's scoring), ROUGE-1/2/L (rouge-score, 0-1, the summarization task's
scoring), CIDEr (pycocoevalcap's scorer, the COCO caption evaluation's, on lowercased
words without punctuation: its Java tokenizer is not used, see
:func:`taskhub.text_metrics.caption_words`) and the mean caption length in tokens.

With no model named, a tiny ViT encoder + GPT-2 decoder is trained from scratch with a
word-level tokenizer learned from the training captions, on bundled synthetic scenes of
coloured shapes captioned from their known contents (``plugins/data/shape_scenes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskhub import TaskSpec, hookimpl, option
from taskhub.errors import TaskhubError
from taskhub.generation import GenerationTask, GenerationTaskConfig, PaddingCollator
from taskhub.media import load_image
from taskhub.task import Task
from taskhub.text import CountsCutTexts, check_texts, tokenize
from taskhub.text_metrics import bleu_chrf_examples, cider_examples, corpus_bleu_chrf, rouge_examples

#: Special tokens of the tokenizer trained on the captions for a from-scratch model.
CAPTION_SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
#: ROUGE variants reported (captions are one sentence: ROUGE-Lsum would equal ROUGE-L).
CAPTION_ROUGE = ("rouge1", "rouge2", "rougeL")


@dataclass
class ImageToTextConfig(GenerationTaskConfig):
    name: str = "image_to_text"
    max_target_length: int = option(
        32,
        "Captions are cut to this many tokens for training (a run that cuts says how many); generation "
        "stops after as many new tokens unless the model or task.generate sets a length",
        ge=1,
    )


class CaptionCollator:
    """Stacks ``pixel_values`` into one float tensor; pads ``labels`` (training) with -100."""

    def __init__(self, pad_token_id: int):
        self.text = PaddingCollator(pad_token_id)

    def __call__(self, features):
        import numpy as np
        import torch

        batch = {"pixel_values": torch.from_numpy(np.stack([np.asarray(f["pixel_values"], dtype=np.float32) for f in features]))}
        rest = [{k: v for k, v in f.items() if k != "pixel_values"} for f in features]
        if rest[0]:
            batch.update(self.text(rest))
        return batch


class ImageToText(CountsCutTexts, GenerationTask):
    """Caption images with a vision encoder-decoder model (BLEU, chrF, ROUGE)."""

    name = "image_to_text"
    config_cls = ImageToTextConfig
    modality = "image"
    auto_model = "AutoModelForImageTextToText"
    processor_class = "AutoProcessor"
    encoder_decoder = True
    input_columns = ("image",)
    path_columns = ("image",)
    target_columns = ("text",)
    prediction_fields = ("generated_text",)
    text_field = "generated_text"
    main_metric = "bleu"
    evaluate_by_prediction = True
    # Decoded images are large (3x224x224 floats for a pretrained ViT): few batches at a time.
    chunk_batches = 4
    demo_data = "pkg://taskhub_plugins/data/shape_scenes"
    demo_description = "Upload an image to get a caption describing it."
    # With no model named: a tiny ViT encoder and GPT-2 decoder (with cross-attention),
    # trained from scratch with a word-level tokenizer learned from the training captions.
    # model.config.encoder.<key> / model.config.decoder.<key> change single values of these.
    default_model_config = {
        "model_type": "vision-encoder-decoder",
        "encoder": {
            "model_type": "vit",
            "image_size": 32,
            "patch_size": 4,
            "num_channels": 3,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
        "decoder": {
            "model_type": "gpt2",
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_positions": 64,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        },
    }
    # Tokenizer settings (taskhub.tokenizer_training) of the from-scratch model; its image
    # processor resizes to the encoder's image_size and scales pixels to [-1, 1].
    default_processor_config = {"algorithm": "wordlevel", "vocab_size": 2000, "min_frequency": 1}
    training_defaults = {
        "num_train_epochs": 30,
        "learning_rate": 2e-3,
        "per_device_train_batch_size": 32,
        "warmup_steps": 0.05,
        "weight_decay": 0.0,
        # held-out splits are scored by captioning them (evaluate_by_prediction)
        "eval_strategy": "no",
        "prediction_loss_only": True,
    }

    # ------------------------------------------------------------- processor
    def _get_processor(self):
        processor = Task.processor.fget(self)
        if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
            self._processor = processor = self._paired(processor)
        return processor

    #: The processor pairing an image processor with a tokenizer. A checkpoint that saved
    #: them separately (no processor_config.json: AutoProcessor gives one of them) gets the
    #: other loaded from the same folder, and both paired in a ``TrOCRProcessor``.
    processor = property(_get_processor, Task.processor.fset)

    def _paired(self, loaded):
        from transformers import AutoImageProcessor, AutoTokenizer, PreTrainedTokenizerBase, TrOCRProcessor

        from taskhub.modeling import _hub_kwargs, _loading, model_source

        name = model_source(self).name_or_path
        if name is None:  # a from-scratch model given a single processor class
            raise TaskhubError(
                f"task {self.name} needs an image processor and a tokenizer, not a {type(loaded).__name__} alone: "
                "leave model.processor.processor_class unset to learn a tokenizer from the captions"
            )
        tokenizer = loaded if isinstance(loaded, PreTrainedTokenizerBase) else getattr(loaded, "tokenizer", None)
        image_processor = getattr(loaded, "image_processor", None)
        if image_processor is None and tokenizer is not loaded and hasattr(loaded, "image_mean"):
            image_processor = loaded
        with _loading("processor", name):
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(name, **_hub_kwargs(self))
            if image_processor is None:
                image_processor = AutoImageProcessor.from_pretrained(name, **_hub_kwargs(self))
        return TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer)

    @property
    def image_processor(self):
        return self.processor.image_processor

    # ----------------------------------------------------------- from scratch
    def _scratch_parts(self) -> dict[str, dict[str, Any]]:
        """The from-scratch model's encoder and decoder settings: the defaults with the
        user's ``model.config.encoder.*`` / ``decoder.*`` values over them, key by key."""
        user = self.model_config.config
        parts = {}
        for part in ("encoder", "decoder"):
            given = user.get(part) or {}
            parts[part] = {**self.default_model_config[part], **{str(k): v for k, v in dict(given).items()}}
        return parts

    def _from_default_config(self) -> bool:
        from taskhub.modeling import model_source

        source = model_source(self)
        return source.name_or_path is None and source.config.get("model_type") == self.default_model_config["model_type"]

    def train_processor(self, train_dataset, settings):
        """A word-level tokenizer learned from the training captions (``model.processor.*``
        changes its settings) and an image processor at the encoder's image size."""
        import transformers
        from transformers import TrOCRProcessor

        from taskhub.tokenizer_training import tokenizer_settings, train_tokenizer

        settings = tokenizer_settings(settings, {})
        # Rows without a usable caption are reported with file and row when encoded.
        tokenizer = train_tokenizer(train_dataset["text"], special_tokens=CAPTION_SPECIAL_TOKENS, append_eos=True, **settings)
        encoder = self._scratch_parts()["encoder"] if self._from_default_config() else {}
        size = int(encoder.get("image_size", 224))
        image_processor_cls = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
        image_processor = image_processor_cls(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        return TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer)

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        """A from-scratch model takes its decoder's vocabulary and special tokens from the
        trained tokenizer, and starts decoding from its beginning-of-sequence token."""
        if not self._from_default_config():
            return super().model_init_kwargs(train_dataset)
        tokenizer = self.tokenizer
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        parts = self._scratch_parts()
        decoder = {**parts["decoder"], **ids, "vocab_size": len(tokenizer), "is_decoder": True, "add_cross_attention": True}
        return {
            "encoder": parts["encoder"],
            "decoder": decoder,
            "decoder_start_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }

    # ------------------------------------------------------------------ data
    def generation_defaults(self) -> dict[str, Any]:
        return {"max_new_tokens": self.config.max_target_length}

    def feature_length(self, features, index: int) -> int:
        pixels = features["pixel_values"][index]
        return pixels.shape[-2] * pixels.shape[-1]

    def preprocess(self, batch):
        images = [load_image(value, i) for i, value in enumerate(batch["image"])]
        return {"pixel_values": list(self.image_processor(images, return_tensors="np")["pixel_values"])}

    def encode_targets(self, batch, features):
        """Captions -> label ids ending with the end-of-sequence token (the model prepends
        its decoder start token itself, shifting the labels right)."""
        texts = check_texts(batch["text"])
        tokenizer = self.tokenizer
        limit = self.config.max_target_length
        encoded, cut = tokenize(tokenizer, limit, texts)
        self.note_cut(cut, "captions", f"task.max_target_length={limit}")
        start = getattr(self.model_settings, "decoder_start_token_id", None)
        eos = tokenizer.eos_token_id
        labels = []
        for ids in encoded["input_ids"]:
            ids = list(ids)
            if ids and ids[0] == start:
                ids = ids[1:]
            if eos is not None and (not ids or ids[-1] != eos):
                ids = ids[: limit - 1] + [eos]
            labels.append(ids)
        return {"labels": labels}

    def build_collator(self):
        return CaptionCollator(self.pad_token_id)

    def build_training_collator(self):
        return CaptionCollator(self.pad_token_id)

    # --------------------------------------------------------------- metrics
    def text_scores(self, predictions, references):
        """Sentence BLEU and chrF with the n-gram counts behind the corpus scores,
        ROUGE-1/2/L F-measures and CIDEr (idf over the split's references)."""
        examples = bleu_chrf_examples(predictions, references)
        for example, rouge, cider in zip(examples, rouge_examples(predictions, references, CAPTION_ROUGE), cider_examples(predictions, references)):
            example["scores"].update(rouge["scores"], **cider["scores"])
        return examples

    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        return self.generated_text_examples(predictions, references, "text")

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Corpus BLEU and chrF from the summed counts, mean ROUGE, CIDEr and caption length."""
        return {**corpus_bleu_chrf(columns), **{key: float(columns[key].mean()) for key in (*CAPTION_ROUGE, "cider", "gen_len") if key in columns}}


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ImageToText.name, ImageToText, ImageToTextConfig)]
