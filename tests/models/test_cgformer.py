"""CGFormer (eqs. 6-9): shapes, padding, threshold, and that relations change the output."""

from __future__ import annotations

import torch

from clvnet.models.cgformer import CGFormer


def test_shapes_padding_and_threshold() -> None:
    torch.manual_seed(0)
    cg = CGFormer(16, 4)
    f_h, f_r = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    f_g, r_e, a_o = cg(f_h, f_r, mask)
    assert f_g.shape == (2, 3, 16) and r_e.shape == (2, 3, 3) and a_o.dtype == torch.bool
    assert torch.allclose(r_e[0].sum(-1), torch.ones(3))
    assert torch.allclose(r_e[1, :2].sum(-1), torch.ones(2))
    assert float(r_e[1, 2].detach().abs().sum()) == 0 and float(r_e[1, :, 2].detach().abs().sum()) == 0
    assert not a_o[1, 2].any() and not a_o[1, :, 2].any()
    assert torch.equal(a_o[0], r_e[0] > 1 / 3) and torch.equal(a_o[1, :2, :2], r_e[1, :2, :2] > 1 / 2)
    # the padded object does not influence the valid ones
    f_h2 = f_h.clone()
    f_h2[1, 2] = 100.0
    f_g2, _, _ = cg(f_h2, f_r, mask)
    assert torch.allclose(f_g[1, :2], f_g2[1, :2], atol=1e-5)


def test_fixed_threshold_and_context_matters() -> None:
    torch.manual_seed(0)
    cg = CGFormer(16, 2, threshold=0.9)
    f_h, f_r = torch.randn(1, 4, 16), torch.randn(1, 6, 16)
    _, r_e, a_o = cg(f_h, f_r)
    assert torch.equal(a_o[0], r_e[0] > 0.9)
    # with τ = 1/N every row keeps at least one neighbour, so another object in the scene changes
    # object 0's features (relation modelling)
    cg_default = CGFormer(16, 2)
    f_h_b = f_h.clone()
    f_h_b[0, 3] = torch.randn(16)
    assert not torch.allclose(cg_default(f_h, f_r)[0][0, 0], cg_default(f_h_b, f_r)[0][0, 0])
