"""Mode coverage and sample quality on 2-D Gaussian mixtures (ring8, grid25).

The protocol of the mode-collapse literature (Metz et al. 2017 Unrolled GAN, arXiv:1611.02163;
Srivastava et al. 2017 VEEGAN, arXiv:1705.07761; Lin et al. 2018 PacGAN, arXiv:1712.04086):

- a sample is *high quality* if it lies within 3 standard deviations of its nearest mode centre;
- a mode is *captured* if at least ``min_count`` high-quality samples fall in it. PacGAN counts a
  mode as lost with fewer than 20 of 2,500 samples; we scale that threshold to the sample count
  (40 of 5,000), which is stricter than "at least one sample".
- ``mode_kl``: KL(p_modes ‖ uniform) of the high-quality samples' mode histogram (0 when every
  mode gets the same share; log M when all collapse into one).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mode_stats(samples: Tensor, modes: Tensor, std: float, min_count: int | None = None) -> dict[str, float]:
    """``samples`` (N, 2), ``modes`` (M, 2) -> {'modes', 'hq', 'mode_kl'}."""
    samples = samples.double()
    modes = modes.to(samples)
    n, m = samples.shape[0], modes.shape[0]
    if min_count is None:
        min_count = max(1, round(20 * n / 2500))
    dist = torch.cdist(samples, modes)  # (N, M)
    nearest_d, nearest = dist.min(dim=1)
    hq = nearest_d <= 3.0 * std
    counts = torch.bincount(nearest[hq], minlength=m).double()  # (M,)
    total = counts.sum().item()
    if total > 0:
        p = counts / total
        nz = p > 0
        kl = float((p[nz] * (p[nz] * m).log()).sum())
    else:
        kl = math.log(m)
    return {
        "modes": int((counts >= min_count).sum()),
        "hq": float(hq.double().mean()),
        "mode_kl": kl,
    }
