"""DCGAN generator and discriminator (Radford et al. 2015, arXiv:1511.06434, Sec. 3 and Fig. 1).

Architecture guidelines implemented: no pooling (strided convolutions in D, fractionally-strided
/ transposed convolutions in G); BatchNorm in both nets except G's output and D's input layer;
ReLU in G with tanh output; LeakyReLU(0.2) in D; weights N(0, 0.02), BN scale N(1, 0.02).

For an image of side S (a power of two >= 16) there are log2(S/4) up/down-sampling stages; the
widest layer has ``width * 2**(stages-1)`` channels at 4x4 (S=64, width=64: 512 channels as in
the paper's Fig. 1; S=32: 256).

G's first layer (a 4x4 transposed convolution of the 1x1 noise input) is computed as the matrix
product it is (``ProjectZ``): same parameter, same result, faster on CPU.

Options (not in the paper, off by default): ``d_norm`` "none"/"layer" for losses whose gradient
penalty is per sample (WGAN-GP) and for spectrally normalised D (Miyato et al. 2018,
arXiv:1802.05957), where BN in D is customarily dropped. ``cat`` / ``q_dim``: InfoGAN's categorical
latent code (Chen et al. 2016, arXiv:1606.03657): G also reads c = one_hot(argmax z[:cat]), and D's
last convolution has ``q_dim`` more output channels, the logits of Q(c | x) on D's shared
features (see ``gankit.recipes.dcgan``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn


def num_stages(size: int) -> int:
    stages = int(math.log2(size)) - 2
    if size < 16 or 2 ** (stages + 2) != size:
        raise ValueError(f"DCGAN image size must be a power of two >= 16, got {size}")
    return stages


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":
        return nn.GroupNorm(1, ch)  # LayerNorm over (C,H,W), per sample
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    return nn.Identity()


class ProjectZ(nn.ConvTranspose2d):
    """G's first layer, ``ConvTranspose2d(z_dim, ch, 4, 1, 0)`` of a 1x1 input, computed as the one
    matrix product it is: (B, z_dim) @ (z_dim, 4*4*ch). Same parameter, same result; 2.35x faster
    (forward + backward, 100 -> 128x4x4, batch 64, 2 CPU cores) than oneDNN's deconvolution in
    ``benchmarks/throughput.py``'s run quoted in the README.
    """

    def forward(self, x: Tensor) -> Tensor:  # (B, z_dim, 1, 1) -> (B, ch, 4, 4)
        w = self.weight  # (z_dim, ch, 4, 4); (z_dim, 4, 4, ch) is contiguous when channels-last
        y = x.flatten(1) @ w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)  # (B, 4*4*ch)
        return y.view(-1, 4, 4, w.shape[1]).permute(0, 3, 1, 2)  # NHWC memory, NCHW view


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, C, S, S) in [-1, 1]. With ``cat`` = k > 0, G's input is z and the
    one-hot categorical code one_hot(argmax z[:k]) (B, z_dim + k): z ~ N(0, I) makes the code uniform
    over k values, so sampling and exports keep one Gaussian latent."""

    def __init__(self, z_dim: int, channels: int, size: int, width: int, cat: int = 0) -> None:
        super().__init__()
        if not 0 <= cat <= z_dim:
            raise ValueError(f"cat must be in [0, z_dim={z_dim}], got {cat}")
        stages = num_stages(size)
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            ProjectZ(z_dim + cat, ch, 4, 1, 0, bias=False),  # (B, ch, 4, 4)
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):  # each doubles H, W and halves channels
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]  # (B, C, S, S)
        self.net = nn.Sequential(*layers)
        self.z_dim, self.cat = z_dim, cat

    def forward(self, z: Tensor) -> Tensor:
        z = z.reshape(z.shape[0], self.z_dim)
        if self.cat:
            code = nn.functional.one_hot(latent_category(z, self.cat), self.cat).to(z.dtype)  # (B, k)
            z = torch.cat([z, code], 1)
        return self.net(z[:, :, None, None])


def latent_category(z: Tensor, k: int) -> Tensor:
    """InfoGAN's categorical code carried by a Gaussian latent: argmax z[:, :k] (B,), uniform over k."""
    return z[:, :k].argmax(1)


class DCGANDiscriminator(nn.Module):
    """image (B, C, S, S) -> logit (B,); with ``q_dim`` = k > 0, (B, 1 + k): the logit, then the
    k logits of InfoGAN's Q(c | x), one 4x4 convolution on the same features (the paper's Q shares
    all of D but its last layer)."""

    def __init__(self, channels: int, size: int, width: int, norm: str = "batch", spectral_norm: bool = False,
                 q_dim: int = 0) -> None:
        super().__init__()
        stages = num_stages(size)
        wrap = _sn if spectral_norm else (lambda m: m)
        ch = width
        layers: list[nn.Module] = [wrap(nn.Conv2d(channels, ch, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):  # each halves H, W and doubles channels
            layers += [wrap(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none")), _norm(norm, ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers.append(wrap(nn.Conv2d(ch, 1 + q_dim, 4, 1, 0, bias=False)))  # (B, 1 + q_dim, 1, 1)
        self.net = nn.Sequential(*layers)
        self.q_dim = q_dim

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x).flatten(1)  # (B, 1 + q_dim)
        return out[:, 0] if not self.q_dim else out


def dcgan_init_(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02); BN scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
