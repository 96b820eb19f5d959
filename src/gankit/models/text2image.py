"""Text-conditional DCGAN generator and matching-aware discriminator (Reed et al. 2016, "Generative
Adversarial Text to Image Synthesis", arXiv:1605.05396, Sec. 4.1 and Fig. 2).

G(z, φ(t)): the text embedding φ(t) is compressed by a fully connected layer + LeakyReLU(0.2) to
``t_dim`` (128 in the paper), concatenated to z, and decoded by the DCGAN generator.

D(x, φ(t)): the DCGAN discriminator's convolutions down to 4x4; φ(t) is compressed the same way
(by D's own layer), replicated over the 4x4 grid and concatenated depth-wise; a 1x1 convolution
(+ BN + LeakyReLU) and a 4x4 convolution give the logit.

Option, off-paper: G may read φ(t) through StackGAN's conditioning augmentation instead
(``ConditioningAugmentation``, Zhang et al. 2017, arXiv:1612.03242, Sec. 3.1): ĉ = μ(φ) + σ(φ) ⊙ ε,
its noise ε then part of G's latent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator, _sn, num_stages


def rescale_embedding(emb: Tensor) -> Tensor:
    """φ(t) (B, E) rescaled to norm sqrt(E): unit variance per component (see :class:`TextProjection`)."""
    return F.normalize(emb, dim=1) * emb.shape[1] ** 0.5


class TextProjection(nn.Module):
    """φ(t) (B, E) -> compressed (B, t_dim): FC + LeakyReLU(0.2).

    φ(t) is first rescaled to norm sqrt(E) (unit variance per component): the joint-embedding
    loss leaves its scale arbitrary (gankit's encoders give norms well below 1), and a tiny text
    input lets G ignore the caption early on. Not in the paper.
    """

    def __init__(self, emb_dim: int, t_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(emb_dim, t_dim)
        self.act = nn.LeakyReLU(0.2, True)

    def forward(self, emb: Tensor) -> Tensor:
        return self.act(self.fc(rescale_embedding(emb)))


class ConditioningAugmentation(nn.Module):
    """StackGAN's conditioning augmentation (Zhang et al. 2017, arXiv:1612.03242, Sec. 3.1):
    (φ_t (B, E), ε (B, c_dim)) -> (ĉ = μ + σ ⊙ ε, μ, log σ²), each (B, c_dim), with (μ, log σ²)
    from one fully connected layer on the rescaled φ_t."""

    def __init__(self, emb_dim: int, c_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(emb_dim, 2 * c_dim)

    def stats(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²), each (B, c_dim)."""
        mu, logvar = self.fc(rescale_embedding(emb)).chunk(2, dim=1)
        return mu, logvar

    def forward(self, emb: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.stats(emb)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


class TextToImageGenerator(nn.Module):
    """(w (B, z_dim [+ t_dim]), φ(t) (B, E)) -> image (B, C, S, S) in [-1, 1].

    w is z alone, or with ``ca`` [z, ε]: φ(t) then reaches G through StackGAN's conditioning
    augmentation (``ConditioningAugmentation``, ĉ = μ(φ) + σ(φ) ⊙ ε, ``t_dim`` components) instead
    of the paper's FC + LeakyReLU, and ε is part of the latent.
    """

    def __init__(self, z_dim: int, emb_dim: int, t_dim: int, channels: int, size: int, width: int,
                 ca: bool = False) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.text = ConditioningAugmentation(emb_dim, t_dim) if ca else TextProjection(emb_dim, t_dim)
        self.body = DCGANGenerator(z_dim + t_dim, channels, size, width)

    def forward(self, w: Tensor, emb: Tensor) -> Tensor:
        if isinstance(self.text, ConditioningAugmentation):
            c = self.text(emb, w[:, self.z_dim:])[0]  # (B, t_dim)
        else:
            c = self.text(emb)
        return self.body(torch.cat([w[:, :self.z_dim], c], 1))  # (B, z_dim + t_dim) -> (B, C, S, S)


class MatchingDiscriminator(nn.Module):
    """(image (B, C, S, S), φ(t) (B, E)) -> logit (B,): does the image look real *and* match the text?"""

    def __init__(self, emb_dim: int, t_dim: int, channels: int, size: int, width: int, norm: str = "batch",
                 spectral_norm: bool = False, projection: bool = False) -> None:
        super().__init__()
        wrap = _sn if spectral_norm else (lambda m: m)
        ch = width * 2 ** (num_stages(size) - 1)  # channels at 4x4
        self.image = DCGANDiscriminator(channels, size, width, norm=norm, spectral_norm=spectral_norm).net[:-1]  # (B, ch, 4, 4)
        self.text = TextProjection(emb_dim, t_dim)
        if spectral_norm:
            self.text.fc = _sn(self.text.fc)
        self.joint = nn.Sequential(
            wrap(nn.Conv2d(ch + t_dim, ch, 1, 1, 0, bias=norm == "none")),  # (B, ch, 4, 4)
            nn.BatchNorm2d(ch) if norm == "batch" else nn.Identity(),
            nn.LeakyReLU(0.2, True),
            wrap(nn.Conv2d(ch, 1, 4, 1, 0, bias=False)),  # (B, 1, 1, 1)
        )
        # projection term (Miyato & Koyama 2018): + <W φ(t), mean_xy h>, an inner product D cannot ignore
        self.proj = wrap(nn.Linear(emb_dim, ch, bias=False)) if projection else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.score(self.image(x), emb)

    def score(self, h: Tensor, emb: Tensor) -> Tensor:
        """Logit (B,) from image features ``h`` = ``self.image(x)`` (B, ch, 4, 4) and φ(t) (B, E)."""
        t = self.text(emb)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # (B, t_dim, 4, 4)
        out = self.joint(torch.cat([h, t], 1)).flatten()  # (B,)
        if self.proj is not None:
            out = out + (self.proj(rescale_embedding(emb)) * h.mean((2, 3))).sum(1)  # (B, ch)·(B, ch) -> (B,)
        return out

    def pair_codes(self, h: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        """The projection's two sides, (mean_xy h (B, ch), W φ(t) (B, ch)): what the contrastive
        term compares across the minibatch."""
        assert self.proj is not None, "pair_codes needs projection=True"
        return h.mean((2, 3)), self.proj(rescale_embedding(emb))

