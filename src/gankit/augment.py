"""Differentiable augmentation for D's inputs (DiffAugment, Zhao et al. 2020, arXiv:2006.10738).

D sees every image, real or generated, through the same random transformation family, and G's
gradient flows back through it, so G is not pushed to generate augmented-looking images. With
small datasets (the built-in MNIST is 5,000 digits, seen ~40 times in a 3-minute run) this keeps
D from memorising the training set.

Implemented policies (names as in the paper's code):
- ``translation``: shift each image by an integer (dy, dx) drawn uniformly from [-s, s], s =
  round(side / 8); pixels shifted in are filled with ``fill``.
- ``cutout``: set a square of half the image side, centred uniformly at random, to ``fill``.

Deviation: the paper's code fills with 0 (mid-grey for images in [-1, 1]); here ``fill`` is -1
(black) by default, the background of digit data, so translated real digits stay on-manifold.

The functions are pure: randomness comes in as uniform [0, 1) tensors (drawn by the caller from
the engine's RNG, so exact resume still holds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

POLICIES = ("translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ("translation", "cutout"); "" -> (). Raises ValueError on unknown names."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    for p in names:
        if p not in POLICIES:
            raise ValueError(f"unknown augmentation {p!r} (valid: {', '.join(POLICIES)})")
    return names


def translate(x: Tensor, u: Tensor, ratio: float = 0.125, fill: float = -1.0) -> Tensor:
    """x (B, C, H, W), u (B, 2) uniform in [0, 1) -> x shifted per sample by up to ratio·side."""
    B, C, H, W = x.shape
    s = int(H * ratio + 0.5)
    if s == 0:
        return x
    shift = (u * (2 * s + 1)).floor().long().clamp_(0, 2 * s) - s  # (B, 2) in [-s, s]
    xp = F.pad(x, (s, s, s, s), value=fill)  # (B, C, H+2s, W+2s)
    iy = (torch.arange(H, device=x.device) + s)[None, :] - shift[:, :1]  # (B, H) rows to read
    ix = (torch.arange(W, device=x.device) + s)[None, :] - shift[:, 1:]  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)


def cutout(x: Tensor, u: Tensor, ratio: float = 0.5, fill: float = -1.0) -> Tensor:
    """x (B, C, H, W), u (B, 2) uniform in [0, 1) -> x with a (ratio·H, ratio·W) square set to ``fill``."""
    B, C, H, W = x.shape
    h, w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = (u[:, :1] * (H + (1 - h % 2))).floor()  # (B, 1) centre row, as the paper's code draws it
    cx = (u[:, 1:] * (W + (1 - w % 2))).floor()
    rows = torch.arange(H, device=x.device)[None, :] - cy + h // 2  # (B, H) offset into the square
    cols = torch.arange(W, device=x.device)[None, :] - cx + w // 2
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (B, H, W)
    return torch.where(inside[:, None], torch.full_like(x, fill), x)


def diff_augment(x: Tensor, policy: tuple[str, ...], u: Tensor, fill: float = -1.0) -> Tensor:
    """Apply ``policy`` in order; ``u`` is (B, 2·len(policy)) uniform [0, 1) random numbers."""
    for i, p in enumerate(policy):
        ui = u[:, 2 * i : 2 * i + 2]
        x = translate(x, ui, fill=fill) if p == "translation" else cutout(x, ui, fill=fill)
    return x
