"""DiffAugment (gankit.augment) against naive per-sample loops."""

import pytest
import torch

from gankit.augment import cutout, diff_augment, parse_policy, translate


def naive_translate(x, dy, dx, fill):
    out = torch.full_like(x, fill)
    C, H, W = x.shape
    for i in range(H):
        for j in range(W):
            si, sj = i - dy, j - dx
            if 0 <= si < H and 0 <= sj < W:
                out[:, i, j] = x[:, si, sj]
    return out


def test_translate_matches_a_naive_shift_for_every_offset():
    x = torch.randn(25, 3, 16, 16)
    s = 2  # round(16 / 8)
    offsets = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    u = torch.tensor([[(dy + s + 0.5) / (2 * s + 1), (dx + s + 0.5) / (2 * s + 1)] for dy, dx in offsets])
    y = translate(x, u)
    for b, (dy, dx) in enumerate(offsets):
        assert torch.equal(y[b], naive_translate(x[b], dy, dx, -1.0)), (dy, dx)


def test_cutout_blanks_one_half_side_square_inside_the_image():
    x = torch.rand(200, 1, 16, 16) + 1  # all > 0, so the fill -1 is easy to find
    y = cutout(x, torch.rand(200, 2))
    blank = (y == -1).squeeze(1)
    for b in range(200):
        rows, cols = blank[b].any(1).nonzero().flatten(), blank[b].any(0).nonzero().flatten()
        assert blank[b].sum() == len(rows) * len(cols)  # a rectangle
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8  # clipped at the border, never larger
        assert torch.equal(y[b][~blank[b][None]], x[b][~blank[b][None]])
    # centres are uniform over 17 positions per axis, 9 of which keep the square inside: (9/17)² ≈ 0.28
    assert 0.18 < (blank.sum((1, 2)) == 64).float().mean() < 0.38


def test_gradient_flows_to_the_generator_side():
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    diff_augment(x, ("translation", "cutout"), torch.rand(4, 4)).sum().backward()
    assert x.grad is not None and (x.grad != 0).any()


def test_policy_names_are_checked():
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="colour"):
        parse_policy("translation,colour")
