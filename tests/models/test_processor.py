"""CLVNetProcessor: prompt layout, labels, pickling (loader workers) and every error path."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch

from clvnet.models.modeling import CLVNet
from clvnet.models.processor import CLVNetProcessor
from clvnet.models.tokenizer import decode


def test_processor_pickles_and_labels_the_answer_only(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    proc = pickle.loads(pickle.dumps(tiny_model.processor))
    a, b = proc(batch), tiny_model.processor(batch)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    labels = b["labels"][0]
    answer = labels[labels != -100].tolist()
    assert decode(tiny_model.tokenizer, answer[:-1]) == batch["target"][0]   # answer tokens only, then EOS
    assert answer[-1] == tiny_model.reasoner.ids.eos


def test_prompt_expands_placeholders_to_the_feature_counts(tiny_model: CLVNet) -> None:
    proc = tiny_model.processor
    assert proc is not None
    ids = proc.prompt_ids()
    assert ids.count(proc.ids.image) == proc.n_image_tokens == 16     # 64 px / patch 8 / pool 2 = 4x4
    assert ids.count(proc.ids.box) == proc.n_region_tokens == tiny_model.region.num_tokens


def test_seg_count_must_match_masks(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    batch["mask_valid"][1, 0] = False
    with pytest.raises(ValueError, match=r"record rec1: 1 \[SEG\] tokens in the target text but 0 masks"):
        tiny_model.processor(batch)


def test_context_overflow_names_the_record(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    proc = tiny_model.processor
    assert proc is not None
    short = CLVNetProcessor(proc.tokenizer, n_image_tokens=proc.n_image_tokens, n_region_tokens=proc.n_region_tokens,
                            prompt_template=proc.prompt_template, query_template=proc.query_template,
                            query_template_no_box=proc.query_template_no_box, max_length=40)
    with pytest.raises(ValueError, match=r"record rec0: \d+ tokens exceed the LLM context 40"):
        short(batch)


def test_query_and_box_prompt_must_agree(tiny_model: CLVNet) -> None:
    proc = tiny_model.processor
    assert proc is not None
    with pytest.raises(ValueError, match="must contain <BOX>"):
        proc.prompt_ids("Describe the scene.")
    proc.use_box_prompt = False
    with pytest.raises(ValueError, match="contains <BOX> but use_box_prompt is off"):
        proc.prompt_ids("Describe <BOX>.")
