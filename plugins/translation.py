"""translation: translate texts with an encoder-decoder model.

transformers 5 removed the translation pipeline; this task keeps its output field
(``translation_text``). Rows have ``text`` (and ``target``, the reference translation, to
train or evaluate). ``source_lang`` / ``target_lang`` are honoured as the v4 pipeline did:
a multilingual tokenizer (mBART, M2M100, NLLB: one with ``src_lang`` / ``tgt_lang``) gets
them, and generation starts with the target language's token (``forced_bos_token_id``);
a T5 checkpoint's ``task_specific_params["translation_<src>_to_<tgt>"]`` supplies the prefix.
Evaluation generates a translation of every held-out text, exactly as ``mode=predict``
would, and scores them with sacreBLEU and chrF (0-100, the ``sacrebleu`` package), plus the
mean generated length in tokens. Shared seq2seq logic: :class:`taskhub.generation.Seq2SeqTask`.

With no model named, a tiny T5 is trained from scratch with a tokenizer learned from the
training split, on a bundled synthetic English -> French corpus (``plugins/data/translation_demo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from taskhub import TaskhubError, TaskSpec, hookimpl
from taskhub.generation import Seq2SeqConfig, Seq2SeqTask
from taskhub.text_metrics import bleu_chrf_examples, corpus_bleu_chrf


@dataclass
class TranslationConfig(Seq2SeqConfig):
    name: str = "translation"
    # Language codes, for multilingual models (e.g. en_XX / fr_XX for mBART-50,
    # eng_Latn / fra_Latn for NLLB, en / fr for M2M100 and T5's task prefixes).
    source_lang: Optional[str] = None
    target_lang: Optional[str] = None


class Translation(Seq2SeqTask):
    """Translate texts with an encoder-decoder model (sacreBLEU, chrF)."""

    name = "translation"
    config_cls = TranslationConfig
    prediction_fields = ("translation_text",)
    text_field = "translation_text"
    main_metric = "bleu"
    demo_data = "pkg://taskhub_plugins/data/translation_demo"
    demo_description = "Type a text to get its translation."
    training_defaults = {
        **Seq2SeqTask.training_defaults,
        "num_train_epochs": 16,
        "learning_rate": 5e-3,
        "per_device_train_batch_size": 64,
        "warmup_steps": 20,
    }

    @property
    def task_params_key(self) -> str:  # type: ignore[override]
        src, tgt = self.config.source_lang, self.config.target_lang
        return f"translation_{src}_to_{tgt}" if src and tgt else ""

    @property
    def multilingual(self) -> bool:
        """Whether the tokenizer takes source/target languages (mBART, M2M100, NLLB)."""
        tokenizer = self.processor
        return hasattr(tokenizer, "src_lang") and hasattr(tokenizer, "tgt_lang")

    def prepare_tokenizer(self) -> None:
        if not self.multilingual:
            return
        tokenizer = self.processor
        if self.config.source_lang and tokenizer.src_lang != self.config.source_lang:
            self._check_language(self.config.source_lang, "source_lang")
            tokenizer.src_lang = self.config.source_lang
        if self.config.target_lang and tokenizer.tgt_lang != self.config.target_lang:
            self._check_language(self.config.target_lang, "target_lang")
            tokenizer.tgt_lang = self.config.target_lang  # used when encoding targets (text_target)

    def _language_id(self, code: str) -> int | None:
        tokenizer = self.processor
        if hasattr(tokenizer, "get_lang_id"):
            try:
                return tokenizer.get_lang_id(code)
            except (KeyError, ValueError):
                return None
        token_id = tokenizer.convert_tokens_to_ids(code)
        return None if token_id is None or token_id == tokenizer.unk_token_id else token_id

    def _check_language(self, code: str, option: str) -> None:
        if self._language_id(code) is None:
            raise TaskhubError(f"task.{option}={code!r}: not a language code of the tokenizer ({type(self.processor).__name__})")

    def generation_defaults(self) -> dict[str, Any]:
        defaults = super().generation_defaults()
        if self.multilingual and self.config.target_lang:
            self._check_language(self.config.target_lang, "target_lang")
            defaults["forced_bos_token_id"] = self._language_id(self.config.target_lang)
        return defaults

    def text_scores(self, predictions, references):
        """Sentence BLEU and chrF of each translation, with the n-gram counts whose sums
        give sacreBLEU's corpus scores."""
        return bleu_chrf_examples(predictions, references)

    def aggregate_examples(self, columns):
        """Corpus BLEU and chrF (sacreBLEU, 0-100) from summed counts; mean generated length."""
        return {**corpus_bleu_chrf(columns), "gen_len": float(columns["gen_len"].mean())}


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(Translation.name, Translation, TranslationConfig)]
