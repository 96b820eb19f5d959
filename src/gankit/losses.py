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
  augmentation), :func:`info_nll` (InfoGAN's mutual-information bound, Chen et al. 2016).

All D/G losses are *minimised*; the sign conventions above are already applied.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossPair = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]


def d_bce(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]): the discriminator side of V(D, G). With
    ``real_target`` α < 1, one-sided label smoothing (Salimans et al. 2016, arXiv:1606.03498,
    Sec. 3.4): real samples are scored against α, -(α log D(x) + (1 - α) log(1 - D(x))); fakes keep 0."""
    loss_real = F.softplus(-real).mean() if real_target == 1.0 else \
        (real_target * F.softplus(-real) + (1.0 - real_target) * F.softplus(real)).mean()
    return loss_real + F.softplus(fake).mean()


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


def info_nll(q_logits: Tensor, code: Tensor) -> Tensor:
    """InfoGAN's (Chen et al. 2016, arXiv:1606.03657, eq. 4) variational bound for a categorical
    code, minimised by G and Q: -E log Q(c | G(z, c)) = H(c) - L_I(G, Q) >= H(c) - I(c; G(z, c)).
    ``q_logits`` (B, k), ``code`` (B,) int. H(c) (log k for a uniform code) is a constant, left out."""
    return F.cross_entropy(q_logits, code)


def d_matching_aware(real_right: Tensor, real_wrong: Tensor, fake_right: Tensor) -> Tensor:
    """GAN-CLS discriminator loss (Reed et al. 2016, arXiv:1605.05396, Algorithm 1), minimised:

    -(log s_r + ½(log(1 - s_w) + log(1 - s_f))) with s = sigmoid(logit): (real image, right text)
    is real; (real image, wrong text) and (fake image, right text) are fake, each weighted ½.
    """
    return F.softplus(-real_right).mean() + 0.5 * (F.softplus(real_wrong).mean() + F.softplus(fake_right).mean())


def contrastive_match(img: Tensor, txt: Tensor, exclude: Tensor, tau: float) -> Tensor:
    """Symmetric image-text contrastive loss (InfoNCE; XMC-GAN, Zhang et al. 2021, arXiv:2101.04702,
    eq. 2), minimised: with s_ij = cos(img_i, txt_j) / tau, cross-entropy of row i of s over texts
    with target i, plus the same over images for each text, averaged. ``img``, ``txt``: (B, E);
    ``exclude``: (B, B) bool, True where pair (i, j), j != i, is not a negative (e.g. two captions
    that may describe one image); those entries leave both softmaxes.
    """
    s = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T / tau  # (B, B)
    s = s.masked_fill(exclude & ~torch.eye(len(s), dtype=torch.bool, device=s.device), float("-inf"))
    target = torch.arange(len(s), device=s.device)
    return 0.5 * (F.cross_entropy(s, target) + F.cross_entropy(s.T, target))


def sje_loss(img: Tensor, txt: Tensor, negative: Tensor, margin: float = 1.0) -> Tensor:
    """Symmetric structured joint embedding loss (Reed et al. 2016, arXiv:1605.05395, eq. 3-5),
    over a minibatch: compatibility F(v, t) = θ(v)ᵀφ(t); for each image n, hinge
    max(0, margin + F(v_n, t_j) - F(v_n, t_n)) averaged over the texts t_j that do not describe it,
    and for each text n the same against the images it does not describe; the two sides are
    added. (The paper's surrogate takes the max over classes; the authors' code sums the hinges
    over the minibatch, which trains more smoothly — we average them.) ``img``, ``txt``: (B, E),
    text n written for image n; ``negative``: bool (B, B), ``negative[i, j]`` when text j does not
    describe image i (the paper's: their classes differ, :func:`different_class`).
    """
    s = img @ txt.T  # (B, B): s[i, j] = F(v_i, t_j)
    diag = s.diagonal()
    neg = negative.float()
    loss_v = (F.relu(margin + s - diag[:, None]) * neg).sum(1) / neg.sum(1).clamp(min=1)  # image i vs wrong texts
    loss_t = (F.relu(margin + s - diag[None, :]) * neg).sum(0) / neg.sum(0).clamp(min=1)  # text j vs wrong images
    return loss_v.mean() + loss_t.mean()


def different_class(labels: Tensor) -> Tensor:
    """bool (B, B): items i and j have different class ``labels`` (B,), so j's text is i's negative."""
    return labels[:, None] != labels[None, :]


def misdescribes(stated: Tensor, attrs: Tensor) -> Tensor:
    """bool (B, B): text j states an attribute value image i does not have.

    ``stated``: int (B, A), the value index text j states per attribute, -1 where it leaves it open;
    ``attrs``: int (B, A), image i's values. A text that leaves size open describes both sizes.
    """
    said = stated[None, :, :]  # (1, B, A)
    return ((said >= 0) & (said != attrs[:, None, :])).any(-1)


def cell_norms(h: Tensor, eps: float = 1e-8) -> Tensor:
    """‖h[:, :, y, x]‖ of a feature map (B, ch, H, W), flattened to (B, H·W); ``eps`` keeps the
    gradient finite where a cell is all zeros."""
    return h.pow(2).sum(1).add(eps).sqrt().flatten(1)


def feature_layout(h: Tensor, eps: float = 1e-8) -> Tensor:
    """Where a feature map (B, ch, H, W) holds content: each cell's feature norm ‖h[:, :, y, x]‖,
    divided by the image's mean over cells, flattened to (B, H·W) (mean 1 per image). Unchanged by
    any rotation of the channel space, so it does not say *what* the features encode, only where
    and how widely they respond: an object moved or resized changes it, one redrawn in place as
    another shape barely does."""
    e = cell_norms(h, eps)  # (B, H·W)
    return e / e.mean(1, keepdim=True)


def feature_occupancy(h: Tensor, eps: float = 1e-8) -> Tensor:
    """Where and how much a feature map (B, ch, H, W) holds content: each cell's feature norm, divided
    by the mean over all cells of *all* B images, flattened to (B, H·W). Like :func:`feature_layout`
    blind to what the channels encode, but an image's total keeps its size: a large object fills
    more cells than a small one. Dividing by each image's own mean instead makes a small object's
    few cells tall peaks, so two small objects in different places lie farther apart than two
    large ones (1.75x through a trained text2image D, against 1.09x here), and a distance that G
    is paid to grow then pays it for drawing small."""
    e = cell_norms(h, eps)  # (B, H·W)
    return e / e.mean()


def mode_seeking(fake1: Tensor, fake2: Tensor, z1: Tensor, z2: Tensor, eps: float = 1e-5) -> Tensor:
    """Mode-seeking regulariser (Mao et al. 2019, MSGAN, arXiv:1903.05628, eq. 3), minimised:
    1 / (E|G(c, z1) - G(c, z2)| / E|z1 - z2| + eps). Small when two latents give different images."""
    ratio = (fake1 - fake2).abs().flatten(1).mean(1) / (z1 - z2).abs().mean(1)  # (B,)
    return 1.0 / (ratio.mean() + eps)
