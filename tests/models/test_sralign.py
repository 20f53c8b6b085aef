"""SRAlign: hand-computed cases for L_rec and L_csc (paper eqs. 10-11), the positives and the module."""

from __future__ import annotations

import math

import pytest
import torch

from clvnet.models.sralign import (
    SRAlign,
    phrase_positives,
    relationship_consistency_loss,
    semantic_consistency_loss,
)


def _rand_stochastic(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n, generator=g).softmax(-1)


def test_rec_zero_for_equal_and_symmetric() -> None:
    a, b = _rand_stochastic(4, 0), _rand_stochastic(4, 1)
    assert float(relationship_consistency_loss(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(relationship_consistency_loss(a, b)) == pytest.approx(float(relationship_consistency_loss(b, a)))
    assert float(relationship_consistency_loss(a, b)) > 0


def test_rec_exact_2x2() -> None:
    rt = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    rv = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    want = 0.0
    for p, q in zip(rt.flatten().tolist(), rv.flatten().tolist()):
        want += 0.5 * (p * math.log(p / q) + q * math.log(q / p))
    assert float(relationship_consistency_loss(rt, rv)) == pytest.approx(want, rel=1e-5)


def test_rec_zero_objects_and_clamp() -> None:
    one = torch.ones(1, 1)
    assert float(relationship_consistency_loss(one, one)) == 0.0
    rt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])            # zeros are clamped to 1e-8 inside the logs
    val = relationship_consistency_loss(rt, torch.full((2, 2), 0.5))
    assert torch.isfinite(val)
    with pytest.raises(ValueError):
        relationship_consistency_loss(torch.ones(2, 2), torch.ones(3, 3))


def test_rec_gradient_pulls_a_uniform_matrix_towards_a_sharp_one_and_vanishes_near_uniform() -> None:
    """The reason L_rec is tiny on SynthRS (design.md, SRAlign): its value and gradient shrink as both matrices
    approach uniform, while a sharp R_t gives R_v a real gradient."""
    rt = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    logits = torch.zeros(3, 3, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=1.0)
    first, g_sharp = None, 0.0
    for _ in range(50):
        loss = relationship_consistency_loss(rt, logits.softmax(-1))
        opt.zero_grad()
        loss.backward()
        if first is None:
            first, g_sharp = float(loss.detach()), float(logits.grad.norm())
        opt.step()
    assert first > 0.2 and float(loss.detach()) < 0.05 * first
    near = torch.full((3, 3), 1 / 3) + 0.01 * torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]])
    logits = torch.zeros(3, 3, requires_grad=True)
    loss = relationship_consistency_loss(near, logits.softmax(-1))
    loss.backward()
    assert float(loss.detach()) < 1e-3 and float(logits.grad.norm()) < 0.1 * g_sharp


def _one(x: torch.Tensor) -> torch.Tensor:
    return x[None]


def test_csc_is_eq10_summed_over_the_objects_with_dot_or_cosine_logits() -> None:
    m = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    s = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    pos = torch.eye(2, dtype=torch.bool)
    valid = torch.ones(2, dtype=torch.bool)
    tau = 0.5
    z = (m @ s.t()) / tau                                       # m_i·s_j / τ, no normalisation
    m2s = -(z.log_softmax(1).diagonal()).sum()                  # summed over the N objects
    s2m = -(z.t().log_softmax(1).diagonal()).sum()
    got = semantic_consistency_loss(_one(m), _one(s), _one(pos), _one(valid), torch.tensor(math.log(1 / tau)),
                                    similarity="dot")
    assert float(got) == pytest.approx(float(m2s + s2m), rel=1e-5)
    # printed eq. 10: the denominator sums over j != i only
    neg = -(z.diagonal() - z.flip(1).diagonal()).sum() - (z.t().diagonal() - z.t().flip(1).diagonal()).sum()
    got_neg = semantic_consistency_loss(_one(m), _one(s), _one(pos), _one(valid), torch.tensor(math.log(1 / tau)),
                                        denominator="negatives_only", similarity="dot")
    cos = torch.nn.functional.normalize(m, dim=-1) @ torch.nn.functional.normalize(s, dim=-1).t() / tau
    want_cos = -(cos.log_softmax(1).diagonal()).sum() - (cos.t().log_softmax(1).diagonal()).sum()
    got_cos = semantic_consistency_loss(_one(m), _one(s), _one(pos), _one(valid), torch.tensor(math.log(1 / tau)))
    assert float(got_cos) == pytest.approx(float(want_cos), rel=1e-5)
    assert float(got_neg) == pytest.approx(float(neg), rel=1e-5)


def test_csc_is_per_sample_and_averaged_over_the_batch() -> None:
    g = torch.Generator().manual_seed(0)
    m, s = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    pos = torch.eye(3, dtype=torch.bool).expand(2, -1, -1)
    scale = torch.tensor(0.0)
    both = semantic_consistency_loss(m, s, pos, valid, scale)
    first = semantic_consistency_loss(m[:1], s[:1], pos[:1], valid[:1], scale)
    second = semantic_consistency_loss(m[1:, :2], s[1:, :2], pos[1:, :2, :2], valid[1:, :2], scale)
    assert float(both) == pytest.approx((float(first) + float(second)) / 2, rel=1e-5)
    m[1, 2] = 1e6                                              # a padded object never enters the loss
    assert float(semantic_consistency_loss(m, s, pos, valid, scale)) == pytest.approx(float(both), rel=1e-5)


def test_csc_aligned_lower_than_shuffled() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.randn(1, 6, 16, generator=g)
    pos, valid = torch.eye(6, dtype=torch.bool)[None], torch.ones(1, 6, dtype=torch.bool)
    scale = torch.tensor(-2.0)
    aligned = semantic_consistency_loss(m, m + 0.05 * torch.randn(1, 6, 16, generator=g), pos, valid, scale)
    shuffled = semantic_consistency_loss(m, m[:, torch.tensor([1, 2, 3, 4, 5, 0])], pos, valid, scale)
    assert float(aligned) < float(shuffled)


def test_csc_multi_positive_and_finite_gradients() -> None:
    m = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], requires_grad=True)
    s = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], requires_grad=True)
    pos = torch.tensor([[[True, True, False], [True, True, False], [False, False, True]]])  # one phrase, two masks
    valid = torch.ones(1, 3, dtype=torch.bool)
    z = m[0] @ s[0].t()
    want = sum(-(z[i].log_softmax(0)[pos[0, i]]).mean() for i in range(3)) * 2      # symmetric here
    got = semantic_consistency_loss(m, s, pos, valid, torch.tensor(0.0), similarity="dot")
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    only = semantic_consistency_loss(m, s, pos, valid, torch.tensor(0.0), denominator="negatives_only")
    only.backward()                                            # anchors with no negative contribute 0, finitely
    assert torch.isfinite(m.grad).all() and torch.isfinite(s.grad).all()
    with pytest.raises(ValueError, match="must be"):
        semantic_consistency_loss(m, s, pos[:, :2], valid, torch.tensor(0.0))


def test_phrase_positives_and_mismatch_is_an_error() -> None:
    valid = torch.tensor([[True, True, True], [True, False, False]])
    pos = phrase_positives([["Two  cars", "a tree", "two cars"], ["x"]], valid)
    assert pos[0].tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    assert pos[1].tolist() == [[True, False, False], [False, False, False], [False, False, False]]
    with pytest.raises(ValueError, match="sample 1: 2 phrase texts but 1 objects"):
        phrase_positives([["a", "b", "c"], ["c", "d"]], valid)


def test_sralign_module_heads_follow_the_switches() -> None:
    torch.manual_seed(0)
    both = SRAlign(8, 6, 4, text_relation=True)
    assert {n.split(".")[0] for n, _ in both.named_parameters()} == {
        "mask_proj", "phrase_proj", "logit_scale", "visual_relation", "text_relation"}
    assert not list(SRAlign(8, 6, 4, csc=False, rec=False).parameters())
    tokens, phrase_h, f_h = torch.randn(2, 3, 6), torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    l_csc, l_rec, r_t, r_v = both(tokens, phrase_h, f_h, None, valid, [["a", "b", "a"], ["c", "d"]])
    assert float(l_csc) > 0 and float(l_rec) > 0 and r_t is not None and r_v is not None
    assert float(r_v[1, 2].abs().sum()) == 0                          # padded objects take no part
    none_valid = torch.zeros(2, 3, dtype=torch.bool)
    zero_csc, *_ = both(tokens, phrase_h, f_h, None, none_valid, [[], []])
    assert float(zero_csc) == 0.0 and zero_csc.requires_grad
