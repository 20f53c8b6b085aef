"""The tiny byte-level BPE tokenizer and special-token ids (resolved by id, never by tokenizing)."""

from __future__ import annotations

import pytest

from clvnet.models.tokenizer import SpecialIds, add_special_tokens, build_tiny_tokenizer, decode


def test_tokenizer_roundtrip_and_special_ids() -> None:
    text = "Hello, World! The <p> two cars </p> [SEG] near <p> a 3-lane road </p> [SEG]."
    tok = build_tiny_tokenizer([text], vocab_size=300)
    ids = SpecialIds.from_tokenizer(tok)
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert decode(tok, enc) == text
    assert enc.count(ids.seg) == 2 and ids.seg == tok.convert_tokens_to_ids("[SEG]")
    assert decode(tok, tok("unseen wörds ✓", add_special_tokens=False)["input_ids"]) == "unseen wörds ✓"
    assert add_special_tokens(tok) == 0                       # idempotent


def test_missing_special_token_is_an_error() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(["a b c"], trainer=trainers.BpeTrainer(vocab_size=50, special_tokens=["<unk>", "</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="</s>")
    with pytest.raises(ValueError, match=r"no id for special token '<image>'"):
        SpecialIds.from_tokenizer(tok)
    assert add_special_tokens(tok) == 5
    assert SpecialIds.from_tokenizer(tok).seg == tok.convert_tokens_to_ids("[SEG]")
