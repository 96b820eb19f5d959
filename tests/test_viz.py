"""Behavioural tests of gankit.viz: pixel values, grid layout, files PIL can read back."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import viz


def _no_tmp_left(d: Path) -> bool:
    return not [p for p in d.iterdir() if ".tmp-" in p.name]


# --- to_uint8 ---------------------------------------------------------------------------------------


def test_to_uint8_values_and_rounding() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, -2.0, 3.0, float("nan"), float("inf"), -float("inf")])
    # 0 -> 127.5 rounds half-to-even to 128; out-of-range clamps; NaN -> 0, +-inf -> 255 / 0.
    assert viz.to_uint8(x).tolist() == [0, 128, 255, 0, 255, 0, 255, 0]
    assert viz.to_uint8(x).dtype == torch.uint8
    imgs = torch.rand(2, 3, 4, 4) * 2 - 1
    assert viz.to_uint8(imgs).shape == (2, 3, 4, 4)


def test_to_uint8_passes_uint8_through_and_rejects_ints() -> None:
    u = torch.randint(0, 256, (2, 1, 3, 3), dtype=torch.uint8)
    assert viz.to_uint8(u) is u
    with pytest.raises(TypeError):
        viz.to_uint8(torch.zeros(2, dtype=torch.int64))


# --- make_grid --------------------------------------------------------------------------------------


def test_make_grid_layout_partial_last_row() -> None:
    n, h, w, pad = 5, 3, 4, 2
    imgs = torch.stack([torch.full((1, h, w), 10 * (i + 1), dtype=torch.uint8) for i in range(n)])
    grid = viz.make_grid(imgs, nrow=3, padding=pad, pad_value=7)
    rows, cols = 2, 3
    assert grid.dtype == torch.uint8
    assert grid.shape == (1, rows * (h + pad) + pad, cols * (w + pad) + pad)

    mask = torch.zeros(grid.shape[1:], dtype=torch.bool)  # True where an image was placed
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        cell = grid[0, y : y + h, x : x + w]
        assert (cell == 10 * (i + 1)).all(), f"cell {i}"
        mask[y : y + h, x : x + w] = True
    # Padding and the empty 6th cell are pad_value.
    assert (grid[0][~mask] == 7).all()
    y, x = pad + 1 * (h + pad), pad + 2 * (w + pad)
    assert (grid[0, y : y + h, x : x + w] == 7).all()


def test_make_grid_default_nrow_and_rgb() -> None:
    imgs = torch.zeros(10, 3, 2, 2, dtype=torch.uint8)
    imgs[:, 0] = 200  # red channel only
    grid = viz.make_grid(imgs, padding=1)
    # ceil(sqrt(10)) = 4 per row -> 3 rows.
    assert grid.shape == (3, 3 * 3 + 1, 4 * 3 + 1)
    assert (grid[0, 1:3, 1:3] == 200).all() and (grid[1:, 1:3, 1:3] == 0).all()
    # nrow larger than N is capped at N columns.
    assert viz.make_grid(imgs[:2], nrow=8, padding=0).shape == (3, 2, 4)


def test_make_grid_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        viz.make_grid(torch.zeros(0, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError):
        viz.make_grid(torch.zeros(2, 2, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError):
        viz.make_grid(torch.zeros(1, 2, 2, dtype=torch.uint8))


# --- save_grid --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_save_grid_png_mode_size(tmp_path: Path, channels: int, mode: str) -> None:
    imgs = torch.rand(4, channels, 8, 8) * 2 - 1
    out = tmp_path / "grid.png"
    viz.save_grid(imgs, out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == mode
        assert im.size == (2 * 10 + 2, 2 * 10 + 2)  # 2x2 cells of 8 px + 2 px padding
    assert _no_tmp_left(tmp_path)


def test_save_grid_upscale_nearest(tmp_path: Path) -> None:
    imgs = torch.full((3, 1, 8, 8), 1.0)  # white digits on black padding
    out = tmp_path / "sub" / "up.png"  # parent is created
    viz.save_grid(imgs, out, nrow=3, upscale=4)
    base_w, base_h = 3 * 10 + 2, 1 * 10 + 2
    with Image.open(out) as im:
        assert im.size == (4 * base_w, 4 * base_h)
        arr = np.asarray(im)
    # Nearest-neighbour: only the two original values, no blurred in-betweens.
    assert set(np.unique(arr).tolist()) == {0, 255}
    assert (arr[8:16, 8:16] == 255).all()  # first image starts at 2 px * 4
    with pytest.raises(ValueError):
        viz.save_grid(imgs, out, upscale=0)


# --- save_points ------------------------------------------------------------------------------------


def test_save_points_png(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    angles = torch.arange(8) * (2 * math.pi / 8)
    modes = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    real = modes[torch.randint(0, 8, (400,), generator=g)] + 0.02 * torch.randn(400, 2, generator=g)
    fake = torch.randn(300, 2, generator=g)
    fake[0] = float("nan")  # a diverged sample must not break the plot
    out = tmp_path / "pts.png"
    viz.save_points(fake, out, real=real, modes=modes, std=0.02, title="step 100")
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (480, 480)
    # Minimal call (no real/modes) with fixed lim also works.
    viz.save_points(fake[1:], tmp_path / "p2.png", lim=3.0)
    assert (tmp_path / "p2.png").stat().st_size > 0
    assert _no_tmp_left(tmp_path)
    with pytest.raises(ValueError):
        viz.save_points(torch.zeros(5, 3), tmp_path / "bad.png")


# --- save_gif ---------------------------------------------------------------------------------------


def _solid_frames(d: Path, n: int) -> tuple[list[Path], list[tuple[int, int, int]]]:
    paths, colours = [], []
    for i in range(n):
        colour = (25 * i, 255 - 25 * i, (97 * i) % 256)
        p = d / f"f{i:03d}.png"
        if i == 3:
            Image.new("L", (16, 12), 25 * i).save(p)  # different mode -> converted
            colour = (25 * i,) * 3
        elif i == 4:
            Image.new("RGB", (32, 24), colour).save(p)  # different size -> resized
        else:
            Image.new("RGBA", (16, 12), (*colour, 255)).save(p)
        paths.append(p)
        colours.append(colour)
    return paths, colours


def test_save_gif_subsamples_keeps_ends_and_holds_last(tmp_path: Path) -> None:
    frames, colours = _solid_frames(tmp_path, 10)
    out = tmp_path / "train.gif"
    viz.save_gif(frames, out, duration_ms=200, max_frames=4, hold_last_ms=1000)
    with Image.open(out) as im:
        assert im.format == "GIF" and im.is_animated
        assert im.n_frames == 4
        assert im.size == (16, 12)
        assert im.info.get("loop") == 0
        durations, firsts = [], []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
            firsts.append(im.convert("RGB").getpixel((5, 5)))
    assert durations == [200, 200, 200, 1000]
    # First and last frames are the first and last inputs (palette is exact for 10 colours).
    for got, want in ((firsts[0], colours[0]), (firsts[-1], colours[9])):
        assert max(abs(a - b) for a, b in zip(got, want)) <= 2
    assert _no_tmp_left(tmp_path)


def test_save_gif_all_frames_when_few_and_empty_raises(tmp_path: Path) -> None:
    frames, _ = _solid_frames(tmp_path, 3)
    out = tmp_path / "a.gif"
    viz.save_gif(frames, out, max_frames=60)
    with Image.open(out) as im:
        assert im.n_frames == 3
    with pytest.raises(ValueError):
        viz.save_gif([], tmp_path / "empty.gif")


# --- read_jsonl / plot_metrics ----------------------------------------------------------------------


def test_read_jsonl_skips_blank_malformed_and_truncated(tmp_path: Path) -> None:
    p = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": 1, "loss_D": 0.5}), "", "[1, 2]", "not json", json.dumps({"step": 2})]
    # A run killed mid-write: partial last line, cut inside a multi-byte character.
    p.write_bytes(("\n".join(lines) + "\n").encode() + b'{"step": 3, "note": "\xc3')
    assert viz.read_jsonl(p) == [{"step": 1, "loss_D": 0.5}, {"step": 2}]


def test_plot_metrics_sparse_keys_nan_and_smoothing(tmp_path: Path) -> None:
    records: list[dict] = []
    for s in range(120):  # > 50 points -> smoothed line
        r: dict = {"step": s, "time": 0.1 * s, "lr_G": 2e-4, "loss_D": 1.0 / (s + 1), "loss_G": float(s % 7)}
        if s % 20 == 0:
            r["fid"] = 100.0 - s / 2  # eval metric only every 20 steps
            r["tag"] = "eval"  # non-numeric: ignored
        if s == 50:
            r["loss_G"] = float("nan")
        records.append(r)
    records.append({"loss_D": 3.0})  # no step: ignored
    out = tmp_path / "metrics.png"
    viz.plot_metrics(records, out, title="run")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width == 900
    # Explicit keys, including one that never appears.
    viz.plot_metrics(records, tmp_path / "m2.png", keys=["fid", "missing"])
    assert (tmp_path / "m2.png").exists()
    assert _no_tmp_left(tmp_path)


def test_plot_metrics_from_jsonl_roundtrip_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for s in range(5):
            fh.write(json.dumps({"step": s, "loss_D": s * 0.1, "loss_G": float("nan")}) + "\n")
        fh.write('{"step": 5, "loss_')
    viz.plot_metrics(viz.read_jsonl(p), tmp_path / "m.png")
    assert (tmp_path / "m.png").exists()
    viz.plot_metrics([], tmp_path / "none.png")  # placeholder, no error
    assert (tmp_path / "none.png").exists()


def test_smooth_is_centred_moving_average() -> None:
    y = np.arange(10, dtype=float)
    s = viz._smooth(y, 3)
    assert s[0] == pytest.approx(0.5) and s[5] == pytest.approx(5.0) and s[-1] == pytest.approx(8.5)


# --- import cost ------------------------------------------------------------------------------------


def test_import_does_not_load_matplotlib() -> None:
    src = str(Path(viz.__file__).resolve().parents[1])
    code = "import sys, gankit.viz; print('matplotlib' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": src}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
