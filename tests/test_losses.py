"""Losses against their closed forms, written with probabilities instead of logits."""

import math

import pytest
import torch

from gankit import losses

R = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
F_ = torch.tensor([-2.0, 0.3, 1.5, -0.7], dtype=torch.float64)
sig = torch.sigmoid


def test_d_bce_is_minus_value_function():
    v = (torch.log(sig(R))).mean() + torch.log(1 - sig(F_)).mean()  # V(D,G) of eq. 1
    assert losses.d_bce(R, F_).item() == pytest.approx(-v.item(), rel=1e-12)


def test_d_bce_one_sided_label_smoothing():
    a = 0.9  # Salimans et al. 2016: real samples scored against a, fakes against 0
    want = -(a * torch.log(sig(R)) + (1 - a) * torch.log(1 - sig(R))).mean() - torch.log(1 - sig(F_)).mean()
    assert losses.d_bce(R, F_, real_target=a).item() == pytest.approx(want.item(), rel=1e-12)


def test_g_minimax_is_log_one_minus_d():
    assert losses.g_minimax(F_).item() == pytest.approx(torch.log(1 - sig(F_)).mean().item(), rel=1e-12)


def test_g_non_saturating_is_minus_log_d():
    assert losses.g_non_saturating(F_).item() == pytest.approx(-torch.log(sig(F_)).mean().item(), rel=1e-12)


def test_minimax_saturates_where_non_saturating_does_not():
    # When D confidently rejects fakes (logit -10), d/dl of log(1-D) vanishes; -log D does not.
    l = torch.tensor([-10.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.g_minimax(l), l)
    (g_ns,) = torch.autograd.grad(losses.g_non_saturating(l), l)
    assert abs(g_mm.item()) < 1e-4 and abs(g_ns.item()) > 0.99


def test_optimal_discriminator_value():
    # At D* = p_data / (p_data + p_g) with p_g = p_data, D* = 1/2 and V = -log 4 (Theorem 1).
    zero = torch.zeros(8, dtype=torch.float64)
    assert -losses.d_bce(zero, zero).item() == pytest.approx(-math.log(4.0))


def test_hinge_lsgan_wgan():
    assert losses.d_hinge(R, F_).item() == pytest.approx((torch.clamp(1 - R, min=0).mean() + torch.clamp(1 + F_, min=0).mean()).item())
    assert losses.g_hinge(F_).item() == pytest.approx(-F_.mean().item())
    assert losses.d_lsgan(R, F_).item() == pytest.approx((0.5 * ((R - 1) ** 2).mean() + 0.5 * (F_**2).mean()).item())
    assert losses.g_lsgan(F_).item() == pytest.approx((0.5 * ((F_ - 1) ** 2).mean()).item())
    assert losses.d_wgan(R, F_).item() == pytest.approx((F_.mean() - R.mean()).item())
    assert losses.g_wgan(F_).item() == pytest.approx(-F_.mean().item())


def test_gradient_penalty_of_linear_critic():
    # D(x) = w.x has gradient w everywhere: penalty = (|w| - 1)^2 regardless of alpha.
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    gp = losses.gradient_penalty(critic, real, fake, torch.rand(5, 1, dtype=torch.float64))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_r1_penalty_of_quadratic():
    # D(x) = 0.5 |x|^2 -> grad = x -> penalty = mean |x|^2.
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    r1 = losses.r1_penalty(0.5 * (x**2).sum(1), x)
    assert r1.item() == pytest.approx((x.detach() ** 2).sum(1).mean().item())


def test_kl_normal_closed_form():
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -0.3]], dtype=torch.float64)
    var = logvar.exp()
    expected = sum(0.5 * (var[0, i] + mu[0, i] ** 2 - 1 - math.log(var[0, i])) for i in range(2))
    assert losses.kl_normal(mu, logvar).item() == pytest.approx(float(expected))
    assert losses.kl_normal(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_info_nll_is_minus_mean_log_q():
    logits = torch.randn(7, 4, dtype=torch.float64)
    code = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    naive = -sum(math.log(math.exp(logits[i, code[i]]) / sum(math.exp(v) for v in logits[i])) for i in range(7)) / 7
    assert losses.info_nll(logits, code).item() == pytest.approx(naive)
    # a Q that cannot tell the codes apart pays log k: the bound's L_I is 0 (no information)
    assert losses.info_nll(torch.zeros(5, 10), torch.arange(5)).item() == pytest.approx(math.log(10))


def test_registry_pairs():
    assert set(losses.LOSSES) == {"non_saturating", "minimax", "hinge", "lsgan", "wgan_gp"}
    assert losses.LOSSES["minimax"][0] is losses.LOSSES["non_saturating"][0]  # same D objective
