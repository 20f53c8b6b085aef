"""Shared fixtures for the evaluator tests: a tiny random BERT encoder and one METEOR JVM per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clvnet.eval.synthetic import COLORS, COUNTS, LINKS, NOUNS, SYNONYMS

WORDS = sorted({w for s in COUNTS + COLORS + NOUNS + LINKS + list(SYNONYMS.values()) for w in s.split()}
               | {n + "s" for n in NOUNS} | {"the", "image", "shows", "nothing", "river", "a", "."})


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT (hidden 32) with a word-level vocab, saved like a real checkpoint."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def meteor() -> Any:
    """The process-wide METEOR scorer (one JVM for the whole test session)."""
    from clvnet.eval.captions import get_meteor

    return get_meteor()
