"""StackGAN-v1 generators and conditioning augmentation (Zhang, Xu, Li, Zhang, Wang, Huang &
Metaxas 2017, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative
Adversarial Networks", arXiv:1612.03242, Sec. 3 and Fig. 2).

- :class:`ConditioningAugmentation` (Sec. 3.1; defined in ``gankit.models.text2image``, whose G
  takes it as an option): a fully connected layer maps the text embedding φ_t to μ(φ_t) and
  log σ²(φ_t); the condition is ĉ = μ + σ ⊙ ε, ε ~ N(0, I) (``c_dim``: the paper's N_g = 128).
  The caller passes ε, so training noise and sampling latents stay explicit.
- :class:`StageIGenerator` (Sec. 3.2): [ĉ_0, z] -> FC -> 4x4 -> up-sampling blocks -> low-resolution
  image s_0. An up-sampling block is nearest-neighbour x2 then 3x3 stride-1 convolution, BN, ReLU
  (Sec. 4, implementation details).
- :class:`StageIIGenerator` (Sec. 3.3): s_0 -> a down-sampling encoder (3x3 conv + ReLU, then
  4x4 stride-2 conv + BN + ReLU blocks) to M_g x M_g; its own ĉ is replicated over that grid and
  concatenated; 3x3 conv + BN + ReLU joins them; residual blocks (3x3 conv, BN, ReLU); up-sampling
  blocks to 4x the Stage-I side; 3x3 conv + tanh. No z: its randomness is s_0's and ĉ's.

Both discriminators are Reed's matching-aware D (``gankit.models.text2image.MatchingDiscriminator``:
down-sampling to M_d = 4, φ_t compressed to N_d and replicated at 4x4, 1x1 then 4x4 convolution),
which is the paper's D up to its depth.

Deviations: φ_t is rescaled to norm sqrt(E) before the CA's FC layer, as in gankit's text2image
(the joint-embedding loss leaves its scale arbitrary). The CA's FC output is used as is (the
authors' code puts a ReLU before splitting it into μ and log σ², which forces σ >= 1; the paper
has no such non-linearity). M_g = Stage-I side / 4 as in the paper (64 -> 16) but at least 8: at
the built-in 16 px Stage-I a 4x4 grid would leave the object's position one cell wide.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gankit.models.text2image import ConditioningAugmentation  # beside Reed's text projection; text2image uses it too


def up_block(cin: int, cout: int) -> nn.Sequential:
    """(B, cin, H, W) -> (B, cout, 2H, 2W): nearest x2, 3x3 conv, BN, ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(True))


def _log2(size: int, what: str) -> int:
    n = int(math.log2(size))
    if 2**n != size:
        raise ValueError(f"{what} must be a power of two, got {size}")
    return n


class StageIGenerator(nn.Module):
    """(z (B, z_dim), ε (B, c_dim), φ_t (B, E)) -> (s_0 (B, C, S, S) in [-1, 1], μ, log σ²)."""

    def __init__(self, z_dim: int, emb_dim: int, c_dim: int, channels: int, size: int, ngf: int) -> None:
        super().__init__()
        ups = _log2(size, "Stage-I size") - 2  # 4x4 -> S
        ch = ngf * 2**ups  # channels at 4x4 (the paper: N_gf * 8 at 4x4 for 64 px)
        self.ca = ConditioningAugmentation(emb_dim, c_dim)
        self.fc = nn.Sequential(nn.Linear(c_dim + z_dim, ch * 16, bias=False), nn.BatchNorm1d(ch * 16), nn.ReLU(True))
        blocks = []
        for _ in range(ups):  # each doubles H, W and halves channels
            blocks.append(up_block(ch, ch // 2))
            ch //= 2
        self.up = nn.Sequential(*blocks)
        self.out = nn.Sequential(nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())
        self.ch4 = ch * 2**ups

    def forward(self, z: Tensor, eps: Tensor, emb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(emb, eps)  # (B, c_dim)
        h = self.fc(torch.cat([c, z], 1)).view(z.shape[0], self.ch4, 4, 4)  # (B, ch, 4, 4)
        return self.out(self.up(h)), mu, logvar  # (B, C, S, S)


class ResBlock(nn.Module):
    """x + F(x) with F = 3x3 conv, BN, ReLU, 3x3 conv, BN; then ReLU (shape kept)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),
                                  nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))
        self.act = nn.ReLU(True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


def grid_side(size_in: int) -> int:
    """M_g, the Stage-II generator's inner grid for a Stage-I side (paper: 64 -> 16; at least 8)."""
    return max(size_in // 4, min(size_in, 8))


class StageIIGenerator(nn.Module):
    """(s_0 (B, C, S, S), ε (B, c_dim), φ_t (B, E)) -> (image (B, C, 4S, 4S) in [-1, 1], μ, log σ²)."""

    def __init__(self, emb_dim: int, c_dim: int, channels: int, size_in: int, ngf: int, n_res: int) -> None:
        super().__init__()
        mg = grid_side(size_in)
        downs = _log2(size_in, "Stage-I size") - _log2(mg, "M_g")
        ups = downs + 2  # back to S, then x4
        self.ca = ConditioningAugmentation(emb_dim, c_dim)
        ch = ngf
        enc: list[nn.Module] = [nn.Conv2d(channels, ch, 3, 1, 1), nn.ReLU(True)]  # (B, ngf, S, S)
        for _ in range(downs):  # each halves H, W and doubles channels
            enc += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.ReLU(True)]
            ch *= 2
        self.encode = nn.Sequential(*enc)  # (B, ch, M_g, M_g)
        self.joint = nn.Sequential(nn.Conv2d(ch + c_dim, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResBlock(ch) for _ in range(n_res)])
        blocks = []
        for _ in range(ups):  # each doubles H, W and halves channels (at least 8 kept)
            blocks.append(up_block(ch, max(ch // 2, 8)))
            ch = max(ch // 2, 8)
        self.up = nn.Sequential(*blocks)  # (B, ch, 4S, 4S)
        self.out = nn.Sequential(nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())

    def forward(self, low: Tensor, eps: Tensor, emb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c, mu, logvar = self.ca(emb, eps)  # (B, c_dim)
        h = self.encode(low)  # (B, ch, M_g, M_g)
        c_map = c[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # (B, c_dim, M_g, M_g)
        h = self.residual(self.joint(torch.cat([h, c_map], 1)))  # (B, ch, M_g, M_g)
        return self.out(self.up(h)), mu, logvar  # (B, C, 4S, 4S)
