"""Adversarial losses and regularisers as pure functions of discriminator outputs.

Every function takes raw discriminator outputs (logits / critic values), never probabilities, so
the log-sigmoid terms are computed stably with softplus: ``log D = -softplus(-l)`` and
``log(1 - D) = -softplus(l)`` where ``D = sigmoid(l)``.

- minimax (Goodfellow et al. 2014, arXiv:1406.2661, eq. 1): D ascends
  ``E[log D(x)] + E[log(1 - D(G(z)))]``; G descends ``E[log(1 - D(G(z)))]``.
- non_saturating (same paper, Sec. 3): D as above; G ascends ``E[log D(G(z))]``.
- hinge (Lim & Ye 2017; Miyato et al. 2018): D ``E[relu(1 - l_r)] + E[relu(1 + l_f)]``; G ``-E[l_f]``.
- lsgan (Mao et al. 2017, arXiv:1611.04076, a=0, b=c=1): D ``½E[(l_r - 1)²] + ½E[l_f²]``;
  G ``½E[(l_f - 1)²]``.
- wgan (Arjovsky et al. 2017): critic ``E[l_f] - E[l_r]``; G ``-E[l_f]``; with
  :func:`gradient_penalty` (Gulrajani et al. 2017, arXiv:1704.00028) this is WGAN-GP.
- :func:`r1_penalty` (Mescheder et al. 2018), :func:`kl_normal` (for StackGAN's conditioning
  augmentation).

All D/G losses are *minimised*; the sign conventions above are already applied.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossPair = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]


def d_bce(real: Tensor, fake: Tensor) -> Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]): the discriminator side of V(D, G)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_minimax(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], descended by G: the lecture's min-max objective, saturates early."""
    return -F.softplus(fake).mean()


def g_non_saturating(fake: Tensor) -> Tensor:
    """-E[log D(G(z))]: same fixed point as minimax, strong gradients when D wins."""
    return F.softplus(-fake).mean()


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge(fake: Tensor) -> Tensor:
    return -fake.mean()


def d_lsgan(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()


def g_lsgan(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1.0).square().mean()


def d_wgan(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def g_wgan(fake: Tensor) -> Tensor:
    return -fake.mean()


LOSSES: dict[str, LossPair] = {
    "non_saturating": (d_bce, g_non_saturating),
    "minimax": (d_bce, g_minimax),
    "hinge": (d_hinge, g_hinge),
    "lsgan": (d_lsgan, g_lsgan),
    "wgan_gp": (d_wgan, g_wgan),
}


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """E[(‖∇ D(x̂)‖₂ - 1)²] at x̂ = α·x + (1-α)·G(z); ``alpha`` broadcasts per sample (B,1,...)."""
    x_hat = (alpha * real + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


def r1_penalty(real_out: Tensor, real: Tensor) -> Tensor:
    """E[‖∇_x D(x)‖²] on real data; ``real`` must require grad and produce ``real_out``."""
    (grad,) = torch.autograd.grad(real_out.sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(dim=1).mean()


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over dimensions, averaged over the batch."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
