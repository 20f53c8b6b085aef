"""VPReasoner: placeholder splicing (eq. 3), [SEG] / phrase gathering and the caption loss, with their errors."""

from __future__ import annotations

import pytest
import torch

from clvnet.models.modeling import CLVNet
from clvnet.models.reasoner import caption_loss, gather_objects


def _ids(model: CLVNet, text: str) -> torch.Tensor:
    return torch.tensor([model.tokenizer(text, add_special_tokens=False)["input_ids"]])


def test_embed_splices_features_into_placeholders(tiny_model: CLVNet) -> None:
    r = tiny_model.reasoner
    ids = torch.tensor([[r.ids.image, r.ids.image, 100, r.ids.box, 101]])
    img, reg = torch.randn(1, 2, r.hidden_size), torch.randn(1, 1, r.hidden_size)
    emb = r.embed(ids, img, reg)
    assert torch.equal(emb[0, :2], img[0]) and torch.equal(emb[0, 3], reg[0, 0])
    assert torch.equal(emb[0, 2], r.llm.get_input_embeddings().weight[100])


def test_placeholder_count_mismatch_is_an_error(tiny_model: CLVNet) -> None:
    r = tiny_model.reasoner
    ids = torch.tensor([[r.ids.image, r.ids.image, 100]])
    with pytest.raises(ValueError, match="image features and image placeholder tokens do not match: 2 placeholders, 3"):
        r.embed(ids, torch.randn(1, 3, r.hidden_size), None)
    with pytest.raises(ValueError, match="region features and region placeholder tokens do not match: 0 placeholders"):
        r.embed(ids, torch.randn(1, 2, r.hidden_size), torch.randn(1, 1, r.hidden_size))


def test_gather_objects_pairs_phrases_and_seg(tiny_model: CLVNet) -> None:
    ids = _ids(tiny_model, "A <p> red car </p> [SEG] and <p> tree </p> [SEG].")
    hidden = torch.arange(ids.shape[1], dtype=torch.float32)[None, :, None].expand(1, -1, 3)
    f_h, phrases, obj = gather_objects(hidden, ids, tiny_model.reasoner.ids, 3, torch.tensor([2]), ["r0"])
    seg = (ids[0] == tiny_model.reasoner.ids.seg).nonzero().flatten()
    assert obj.tolist() == [[True, True, False]]
    assert torch.equal(f_h[0, :2, 0], seg.float()) and float(f_h[0, 2].abs().sum()) == 0
    opens = (ids[0] == tiny_model.reasoner.ids.p_open).nonzero().flatten()
    closes = (ids[0] == tiny_model.reasoner.ids.p_close).nonzero().flatten()
    assert float(phrases[0, 0, 0]) == pytest.approx(float(torch.arange(opens[0] + 1, closes[0]).float().mean()))


@pytest.mark.parametrize("text, match", [
    ("A <p> car </p> and [SEG] [SEG].", r"record r0: 1 <p>, 1 </p> and 2 \[SEG\] tokens do not pair up"),
    ("A </p> car <p> [SEG].", "do not pair up"),
])
def test_gather_objects_rejects_unpaired_tags(tiny_model: CLVNet, text: str, match: str) -> None:
    ids = _ids(tiny_model, text)
    hidden = torch.zeros(1, ids.shape[1], 4)
    with pytest.raises(ValueError, match=match):
        gather_objects(hidden, ids, tiny_model.reasoner.ids, 4, None, ["r0"])


def test_gather_objects_checks_mask_count_and_slots(tiny_model: CLVNet) -> None:
    ids = _ids(tiny_model, "A <p> car </p> [SEG].")
    hidden = torch.zeros(1, ids.shape[1], 4)
    with pytest.raises(ValueError, match=r"record r0: 1 \[SEG\] tokens in the target text but 2 masks"):
        gather_objects(hidden, ids, tiny_model.reasoner.ids, 4, torch.tensor([2]), ["r0"])
    with pytest.raises(ValueError, match="only 0 object slots"):
        gather_objects(hidden, ids, tiny_model.reasoner.ids, 0, None, ["r0"])


def test_caption_loss_on_answer_tokens_only() -> None:
    logits = torch.zeros(1, 4, 5)
    logits[0, 1, 3] = 10.0                                  # predicts token 3 at position 2
    labels = torch.tensor([[-100, -100, 3, -100]])
    assert float(caption_loss(logits, labels)) < 1e-3
    assert float(caption_loss(logits, torch.full((1, 4), -100))) == 0.0
