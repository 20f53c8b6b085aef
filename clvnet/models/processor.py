"""CLVNetProcessor: the model's inputs from data; one per model, saved with every checkpoint.

* the image side is :class:`clvnet.data.views.ImageViews` (global view, grounding view, region crop, mask
  size): the dataset and the predictor both prepare images with ``processor.views``;
* the text side turns a ``collate_gcg`` batch into token ids and labels (picklable for loader workers).

Prompt layout (one row)::

    [<s>] prompt_template.format(image=<image>×n_img, query=query with <BOX>×K) answer </s>

``labels`` are -100 everywhere except the answer tokens and the closing ``</s>`` (eq. 5 trains on
the answer only). Rows are right-padded. Nothing is truncated: a sequence longer than the LLM's
context raises ``ValueError`` naming the record.
"""

from __future__ import annotations

from typing import Any

import torch

from clvnet.data.views import ImageViews
from clvnet.models.tokenizer import SpecialIds

PASSTHROUGH = ("image", "grounding_image", "region", "region_window", "box", "masks", "mask_valid", "id", "phrase_texts", "caption", "target",
               "detections", "detections_valid")


class CLVNetProcessor:
    """The model's image views and its tokenisation of prompts and targets; counts come from the model.

    Args:
        tokenizer: a fast tokenizer with the special tokens added.
        views: the image-side sizes and preprocessing (built from the model's modules and config).
        n_image_tokens: image tokens per image (derived from the vision config).
        n_region_tokens: K (derived from the region config).
        prompt_template: with ``{image}`` and ``{query}`` fields.
        query_template: the default query (with ``<BOX>``).
        query_template_no_box: the query when ``use_box_prompt`` is off.
        use_box_prompt: splice region tokens or not.
        max_length: the LLM context length.
    """

    def __init__(self, tokenizer: Any, *, n_image_tokens: int, n_region_tokens: int, prompt_template: str,
                 query_template: str, query_template_no_box: str, use_box_prompt: bool = True,
                 max_length: int | None = None, views: ImageViews | None = None) -> None:
        self.tokenizer = tokenizer
        self.views = views or ImageViews()
        self.ids = SpecialIds.from_tokenizer(tokenizer)
        self.n_image_tokens, self.n_region_tokens = n_image_tokens, n_region_tokens
        self.prompt_template, self.query_template = prompt_template, query_template
        self.query_template_no_box, self.use_box_prompt = query_template_no_box, use_box_prompt
        self.max_length = max_length

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tokenizer, as saved in a checkpoint's ``processor_config.json``."""
        return {"views": self.views.to_dict(), "n_image_tokens": self.n_image_tokens,
                "n_region_tokens": self.n_region_tokens, "prompt_template": self.prompt_template,
                "query_template": self.query_template, "query_template_no_box": self.query_template_no_box,
                "use_box_prompt": self.use_box_prompt, "max_length": self.max_length}

    def _tok(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, query: str | None = None) -> list[int]:
        """Token ids of the prompt (BOS, image placeholders, query with region placeholders)."""
        if query is None:                             # the same for every sample: tokenised once
            cache: dict[tuple[Any, ...], list[int]] = self.__dict__.setdefault("_default_prompts", {})
            key = (self.use_box_prompt, self.query_template, self.query_template_no_box, self.prompt_template)
            if key not in cache:
                cache[key] = self._prompt_ids(self.query_template if self.use_box_prompt
                                              else self.query_template_no_box)
            return list(cache[key])
        return self._prompt_ids(query)

    def _prompt_ids(self, query: str) -> list[int]:
        if self.use_box_prompt and "<BOX>" not in query:
            raise ValueError(f"query must contain <BOX> when use_box_prompt is on: {query!r}")
        if not self.use_box_prompt and "<BOX>" in query:
            raise ValueError(f"query contains <BOX> but use_box_prompt is off: {query!r}")
        text = self.prompt_template.format(image="<image>", query=query)
        out: list[int] = [] if self.ids.bos is None else [self.ids.bos]
        for t in self._tok(text):
            if t == self.ids.image:
                out += [t] * self.n_image_tokens
            elif t == self.ids.box:
                out += [t] * self.n_region_tokens
            else:
                out.append(t)
        return out

    def answer_ids(self, target: str) -> list[int]:
        """Token ids of a tagged target text, closed with EOS."""
        return [*self._tok(target), self.ids.eos]

    def __call__(self, batch: dict[str, Any], queries: list[str] | None = None) -> dict[str, Any]:
        """Tokenise a ``collate_gcg`` batch.

        Returns:
            The batch's tensors plus ``input_ids`` (B, L), ``attention_mask`` (B, L) and ``labels`` (B, L).
        """
        targets: list[str] = list(batch["target"])
        rec_ids = [str(x) for x in batch.get("id", range(len(targets)))]
        valid = batch.get("mask_valid")
        rows, labels = [], []
        answers = self.tokenizer(targets, add_special_tokens=False)["input_ids"] if targets else []   # one batch call
        for i, ids in enumerate(answers):
            p = self.prompt_ids(None if queries is None else queries[i])
            a = [*ids, self.ids.eos]
            n_seg = a.count(self.ids.seg)
            if valid is not None and n_seg != int(valid[i].sum()):
                raise ValueError(f"record {rec_ids[i]}: {n_seg} [SEG] tokens in the target text but "
                                 f"{int(valid[i].sum())} masks")
            if self.max_length is not None and len(p) + len(a) > self.max_length:
                raise ValueError(f"record {rec_ids[i]}: {len(p) + len(a)} tokens exceed the LLM context "
                                 f"{self.max_length}")
            rows.append(p + a)
            labels.append([-100] * len(p) + a)
        length = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [self.ids.pad] * (length - len(r)) for r in rows], dtype=torch.long)
        label_t = torch.tensor([lab + [-100] * (length - len(lab)) for lab in labels], dtype=torch.long)
        attn = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows], dtype=torch.long)
        out = {k: batch[k] for k in PASSTHROUGH if k in batch}
        out.update(input_ids=input_ids, attention_mask=attn, labels=label_t)
        return out
