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

Off-paper, the recipe's default (``cond=image``; ``RetrievalPrior``): G is conditioned on a
training image's embedding θ(x) by the text encoder's image side instead of φ(t); at sampling a
caption picks the training image whose θ G reads, among those its text could describe (the
two-stage prior → decoder split of unCLIP, Ramesh et al. 2022, arXiv:2204.06125, with a
nearest-neighbour prior in place of a learned one). See the text2image recipe's docstring for why.
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


def normal_cdf(w: Tensor) -> Tensor:
    """Φ(w): a standard normal latent component -> uniform on (0, 1)."""
    return 0.5 * (1 + torch.erf(w / 2 ** 0.5))


class RetrievalPrior(nn.Module):
    """p(i | t) over the N training images: softmax_i(s_i / τ), s_i the cosine of φ(t) to the
    nearest of image i's captions; the condition G reads is θ(x_i), the image's embedding.

    A caption that leaves an attribute open is as near to the images of every value of it (each
    has a caption that says no more), so the choice among them is the data's split; a caption that
    states it is nearest the images that have it. Buffers only, no parameters; they are filled
    once from the training data (``fill``) and travel in checkpoints and exports:
    ``theta`` (N, E) float32, ``captions`` (N, K, E) unit-norm caption embeddings in float16
    (zeros past ``n_caps``: half the size, and a cosine error below 1e-4 for random unit vectors of
    128 components, a hundredth of τ's default),
    ``n_caps`` (N,) int64.
    """

    def __init__(self, n: int, k: int, emb_dim: int, tau: float, chunk: int = 256) -> None:
        super().__init__()
        self.tau, self.chunk = tau, chunk
        self.register_buffer("theta", torch.zeros(n, emb_dim))
        self.register_buffer("captions", torch.zeros(n, k, emb_dim, dtype=torch.float16))
        self.register_buffer("n_caps", torch.ones(n, dtype=torch.int64))

    @torch.no_grad()
    def fill(self, theta: Tensor, captions: Tensor, n_caps: Tensor) -> None:
        """θ(x) (N, E), caption embeddings (N, K, E) with ``n_caps`` (N,) of each row valid."""
        valid = torch.arange(captions.shape[1], device=captions.device)[None] < n_caps[:, None]  # (N, K)
        self.theta.copy_(theta)
        self.captions.copy_(F.normalize(captions.float(), dim=2) * valid[..., None])
        self.n_caps.copy_(n_caps)

    def scores(self, emb: Tensor) -> Tensor:
        """s (B, N): the cosine of each φ(t) in ``emb`` (B, E) to the nearest caption of each image."""
        e = F.normalize(emb.float(), dim=1)
        valid = torch.arange(self.captions.shape[1], device=e.device)[None] < self.n_caps[:, None]  # (N, K)
        out = []
        for j in range(0, self.theta.shape[0], 4096):  # float32 copies of 4,096 images' captions at a time
            sim = torch.einsum("be,nke->bnk", e, self.captions[j : j + 4096].float())  # (B, n, K)
            out.append(sim.masked_fill(~valid[None, j : j + 4096], -2.0).amax(2))
        return torch.cat(out, 1)

    @torch.no_grad()
    def index(self, emb: Tensor, u: Tensor) -> Tensor:
        """The training image (B,) int64 each caption picks: the inverse CDF of p(i | t) at ``u`` (B,) in (0, 1)."""
        out = []
        for j in range(0, emb.shape[0], self.chunk):
            p = F.softmax(self.scores(emb[j : j + self.chunk]) / self.tau, 1)  # (b, N)
            k = (p.cumsum(1) < u[j : j + self.chunk, None]).sum(1)
            out.append(k.clamp(max=p.shape[1] - 1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64, device=emb.device)

    def forward(self, emb: Tensor, u: Tensor) -> Tensor:
        """θ(x_i) (B, E) of the images picked for φ(t) ``emb`` (B, E) by ``u`` (B,)."""
        return self.theta[self.index(emb, u)]


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

