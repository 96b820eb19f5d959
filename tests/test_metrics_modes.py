import math

import torch

from gankit.data import toy_mixture
from gankit.metrics.modes import mode_stats


def naive(samples, modes, std, min_count):
    counts = [0] * len(modes)
    hq = 0
    for s in samples.tolist():
        d = [math.dist(s, m) for m in modes.tolist()]
        j = min(range(len(d)), key=d.__getitem__)
        if d[j] <= 3 * std:
            hq += 1
            counts[j] += 1
    return sum(c >= min_count for c in counts), hq / len(samples), counts


def test_matches_naive_count():
    g = torch.Generator().manual_seed(0)
    modes, std = toy_mixture("ring8")
    # 6 modes populated, plus junk between modes
    idx = torch.randint(0, 6, (900,), generator=g)
    pts = torch.cat([modes[idx] + std * torch.randn(900, 2, generator=g), 3 * torch.rand(100, 2, generator=g)])
    got = mode_stats(pts, modes, std, min_count=5)
    n_modes, hq, counts = naive(pts, modes, std, 5)
    assert got["modes"] == n_modes == 6
    assert abs(got["hq"] - hq) < 1e-12
    p = [c / sum(counts) for c in counts if c]
    assert abs(got["mode_kl"] - sum(q * math.log(q * 8) for q in p)) < 1e-9


def test_perfect_and_collapsed():
    modes, std = toy_mixture("grid25")
    perfect = modes.repeat(200, 1)
    s = mode_stats(perfect, modes, std)
    assert s == {"modes": 25, "hq": 1.0, "mode_kl": 0.0}
    collapsed = modes[:1].repeat(5000, 1)
    s = mode_stats(collapsed, modes, std)
    assert s["modes"] == 1 and abs(s["mode_kl"] - math.log(25)) < 1e-12
    assert mode_stats(torch.full((10, 2), 100.0), modes, std)["hq"] == 0.0
