"""Tokenizers: the tiny preset's byte-level BPE built from training captions, and special-token handling.

The tiny tokenizer is trained with the ``tokenizers`` library on the training captions. Byte-level
BPE keeps case and punctuation and decodes back to exactly the input text (a word-level tokenizer
would lose the spacing around punctuation). It is wrapped in ``PreTrainedTokenizerFast`` so the
tiny and the pretrained paths share one interface (``convert_tokens_to_ids``, ``save_pretrained``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clvnet.models.config import SPECIAL_TOKENS

BASE_SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def build_tiny_tokenizer(captions: Iterable[str], vocab_size: int = 1024) -> Any:
    """Train a byte-level BPE tokenizer on ``captions`` (tagged or plain) and add the special tokens.

    Args:
        captions: training texts; tags such as ``<p>`` are fine (they become special tokens).
        vocab_size: BPE vocabulary target (the result may be smaller on a small corpus).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with ``<pad> <unk> <s> </s>`` and the model's
        special tokens ``<image> <BOX> <p> </p> [SEG]``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from clvnet.data.record import strip_tags

    texts = [strip_tags(c) for c in captions]
    texts += [
        "Could you provide a global description of the image and a detailed description centered around "
        "the user-focused region, and indicate the corresponding object phrases that appear in the "
        "generated description?"
    ]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(BASE_SPECIALS.values()) + list(SPECIAL_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **BASE_SPECIALS)
    add_special_tokens(fast)
    return fast


def add_special_tokens(tokenizer: Any) -> int:
    """Add ``<image> <BOX> <p> </p> [SEG]`` (and a pad token if missing); return how many were new."""
    added = 0
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else "<pad>"
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        added = tokenizer.add_tokens(missing, special_tokens=True)
    # tokens that existed as ordinary vocab must still never be split or merged
    tokenizer.add_tokens([t for t in SPECIAL_TOKENS if t not in missing], special_tokens=True)
    return int(added)


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens, resolved with ``convert_tokens_to_ids`` (never by tokenizing)."""

    image: int
    box: int
    p_open: int
    p_close: int
    seg: int
    eos: int
    pad: int
    bos: int | None

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialIds:
        ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
        unk = tokenizer.unk_token_id
        for t, i in zip(SPECIAL_TOKENS, ids):
            if i is None or (unk is not None and i == unk):
                raise ValueError(f"tokenizer has no id for special token {t!r}; call add_special_tokens first")
        if tokenizer.eos_token_id is None:
            raise ValueError("tokenizer has no eos token")
        return cls(image=ids[0], box=ids[1], p_open=ids[2], p_close=ids[3], seg=ids[4],
                   eos=int(tokenizer.eos_token_id), pad=int(tokenizer.pad_token_id),
                   bos=None if tokenizer.bos_token_id is None else int(tokenizer.bos_token_id))


def decode(tokenizer: Any, ids: list[int]) -> str:
    """Decode generated ids verbatim (special tokens kept, no clean-up of spaces)."""
    return str(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))
