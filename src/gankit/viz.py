"""Pictures of a run: image grids, 2-D scatter frames, training GIFs and metric curves.

Everything writes PNG/GIF files atomically (a temporary file in the same directory, then
:func:`os.replace`), so a viewer or a killed run never sees a half-written picture.

Conventions:

- Generated images are float in ``[-1, 1]`` (tanh outputs) or ``uint8``, shaped ``(N, C, H, W)``
  with ``C`` 1 (grey) or 3 (RGB). :func:`to_uint8` maps floats with
  ``round((x + 1) * 127.5)`` using round-half-to-even (``torch.round``), so -1 / 0 / 1 map to
  0 / 128 / 255 (``127.5`` rounds to the even ``128``).
- :func:`make_grid` follows torchvision's layout: ``nrow`` is the number of images *per row*,
  and ``padding`` pixels surround every cell, outer border included.
- matplotlib is imported lazily and only through ``matplotlib.figure.Figure`` with an explicit
  Agg canvas: it renders headless without ``matplotlib.use("Agg")`` and so never switches the
  backend (or closes the figures) of a notebook or script that imported pyplot itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["to_uint8", "make_grid", "save_grid", "save_points", "save_gif", "plot_metrics", "read_jsonl"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_DPI = 100
# Keys that are bookkeeping, not metrics: never plotted unless asked for by name.
_SKIP_KEYS = ("step", "time", "epoch")


# --------------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def _atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success move it over ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A pyplot-free figure with an Agg canvas (no global backend state, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Figure, path: PathLike) -> None:
    with _atomic_path(path) as tmp:
        # format= is required: the temp suffix (".tmp-<pid>") tells matplotlib nothing.
        fig.savefig(tmp, format="png", dpi=_DPI, facecolor="white")


def _as_points(x: Any, name: str) -> np.ndarray:
    """(N, 2) float64 array from a tensor / array-like; rejects other shapes."""
    arr = torch.as_tensor(x).detach().cpu().to(torch.float64).numpy()
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {tuple(arr.shape)}")
    return arr


# --------------------------------------------------------------------------------------------------
# image grids


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map float images in ``[-1, 1]`` to ``uint8`` via ``round((x + 1) * 127.5)``, clamped.

    Works element-wise on any shape (normally ``(N, C, H, W)``); ``uint8`` input is returned as
    is. Rounding is half-to-even, so -1 / 0 / 1 give 0 / 128 / 255. NaN maps to 0 and +-inf to the
    ends of the range, so one diverged sample cannot poison a whole grid with undefined casts.
    """
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"to_uint8 expects float images in [-1, 1] or uint8, got dtype {images.dtype}")
    # float32 math: half precision cannot represent every integer step of 0..255 exactly.
    x = images.detach().float()
    x = torch.nan_to_num(x, nan=-1.0, posinf=1.0, neginf=-1.0)
    return torch.round((x + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


def make_grid(
    images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> torch.Tensor:
    """Tile ``uint8`` images ``(N, C, H, W)`` (C = 1 or 3) into one ``uint8`` image ``(C, H', W')``.

    ``nrow`` images per row (default ``ceil(sqrt(N))``, capped at ``N``); the last row may be
    partly empty, its free cells filled with ``pad_value``. ``H' = rows * (H + padding) + padding``
    and ``W' = cols * (W + padding) + padding``. Float input is accepted and passed through
    :func:`to_uint8` first.
    """
    if images.ndim != 4:
        raise ValueError(f"make_grid expects (N, C, H, W) images, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    if c not in (1, 3):
        raise ValueError(f"make_grid supports 1 or 3 channels, got {c}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    images = to_uint8(images)
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding),
        pad_value,
        dtype=torch.uint8,
        device=images.device,
    )
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def save_grid(images: torch.Tensor, path: PathLike, nrow: int | None = None, upscale: int = 1) -> None:
    """Write images (float ``[-1, 1]`` or ``uint8``, ``(N, C, H, W)`` or one ``(C, H, W)``) as a PNG grid.

    The PNG is mode ``L`` for C = 1 and ``RGB`` for C = 3. ``upscale`` enlarges the whole grid
    (padding included) by an integer factor with nearest-neighbour sampling, so tiny images such
    as 8x8 digits stay crisp instead of being blurred by the viewer.
    """
    if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
        raise ValueError(f"upscale must be an integer >= 1, got {upscale!r}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    grid = make_grid(to_uint8(images.detach().cpu()), nrow=nrow)
    if grid.shape[0] == 1:
        arr = grid[0].numpy()
    else:
        arr = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(np.ascontiguousarray(arr))
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.Resampling.NEAREST)
    with _atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


# --------------------------------------------------------------------------------------------------
# 2-D toy distributions


def save_points(
    points: torch.Tensor,
    path: PathLike,
    real: torch.Tensor | None = None,
    modes: torch.Tensor | None = None,
    std: float | None = None,
    title: str | None = None,
    lim: float | None = None,
) -> None:
    """Scatter generated 2-D samples ``(N, 2)`` over optional real samples and mixture modes.

    Real samples are light grey, generated ones small blue dots, mode centres red crosses with a
    dashed circle of radius ``3 * std`` when ``std`` is given. The view is ``[-lim, lim]^2`` with a
    square aspect at 480x480 px. Without ``lim`` it is ``1.25 * max |coord|`` of ``modes`` (widened
    to fit the 3-std circles), else of ``real``, else of ``points``; frames of one run line up in a
    GIF as long as they get the same ``modes`` (or ``lim``, or the same ``real`` set). Generated
    points outside the view or non-finite are counted in a corner note, so a diverged generator
    shows up as such rather than as an empty plot.
    """
    pts = _as_points(points, "points")
    real_np = _as_points(real, "real") if real is not None else None
    modes_np = _as_points(modes, "modes") if modes is not None else None

    finite = np.isfinite(pts).all(axis=1)
    pts_ok = pts[finite]
    if lim is None:
        if modes_np is not None and len(modes_np):
            ref = float(np.abs(modes_np).max())
            lim = 1.25 * ref
            if std is not None:
                lim = max(lim, ref + 3.5 * std)  # keep the whole 3-std circles in view
        elif real_np is not None and len(real_np):
            lim = 1.25 * float(np.abs(real_np[np.isfinite(real_np).all(axis=1)]).max(initial=0.0))
        else:
            lim = 1.25 * float(np.abs(pts_ok).max(initial=0.0))
        if not math.isfinite(lim) or lim <= 0:
            lim = 1.0
    elif not (math.isfinite(lim) and lim > 0):
        raise ValueError(f"lim must be a positive finite number, got {lim!r}")

    fig = _new_figure(4.8, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    if real_np is not None and len(real_np):
        ax.scatter(real_np[:, 0], real_np[:, 1], s=4, c="#c8c8c8", linewidths=0, label="real")
    if len(pts_ok):
        ax.scatter(pts_ok[:, 0], pts_ok[:, 1], s=3, c="tab:blue", alpha=0.7, linewidths=0, label="generated")
    if modes_np is not None and len(modes_np):
        from matplotlib.patches import Circle

        ax.scatter(modes_np[:, 0], modes_np[:, 1], s=18, c="tab:red", marker="x", linewidths=1)
        if std is not None and std > 0:
            for cx, cy in modes_np:
                ax.add_patch(Circle((cx, cy), 3 * std, fill=False, ec="tab:red", lw=0.6, ls="--", alpha=0.6))
    outside = int((~finite).sum() + (np.abs(pts_ok) > lim).any(axis=1).sum())
    if outside:
        ax.text(0.01, 0.01, f"{outside}/{len(pts)} generated points outside view", transform=ax.transAxes,
                fontsize=7, color="dimgray", va="bottom", ha="left")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    # tight_layout keeps the figure size fixed (unlike bbox_inches="tight"), so every frame is
    # exactly 480x480 and the axes sit at the same pixels.
    fig.tight_layout()
    _save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# animation


def _load_rgb(path: Path) -> Image.Image:
    """Open a frame as RGB, compositing any transparency onto white (GIF has no partial alpha)."""
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")


def save_gif(
    frames: list[Path],
    path: PathLike,
    duration_ms: int = 300,
    max_frames: int = 60,
    hold_last_ms: int = 1500,
) -> None:
    """Build a looping animated GIF from PNG frames (e.g. one :func:`save_grid` per eval step).

    More than ``max_frames`` frames are sub-sampled evenly, always keeping the first and last.
    Each frame shows ``duration_ms``; the last one ``max(hold_last_ms, duration_ms)`` so the final
    state can be read. Frames are converted to RGB, resized to the first frame's size if they
    differ, and quantised to one shared 256-colour palette (no colour flicker between frames).
    Note that Pillow merges consecutive *identical* frames, so ``n_frames`` of the result can be
    lower than the number of frames selected. Raises ``ValueError`` for an empty list.
    """
    frames = [Path(f) for f in frames]
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be > 0, got {duration_ms}")
    n = len(frames)
    if n > max_frames:
        if max_frames == 1:
            frames = [frames[-1]]  # the final state is the informative one
        else:
            # step (n-1)/(max_frames-1) > 1, so rounded indices are distinct; ends are exact.
            idx = np.linspace(0, n - 1, max_frames).round().astype(int)
            frames = [frames[i] for i in idx]

    images = [_load_rgb(f) for f in frames]
    size = images[0].size
    images = [im if im.size == size else im.resize(size, Image.Resampling.LANCZOS) for im in images]

    # One palette for all frames, fitted on a montage of up to 16 evenly spaced frames: cheap, and
    # per-frame palettes would make flat areas shimmer as their colour is re-approximated.
    pick = sorted({round(i) for i in np.linspace(0, len(images) - 1, min(16, len(images)))})
    montage = Image.new("RGB", (size[0], size[1] * len(pick)))
    for k, i in enumerate(pick):
        montage.paste(images[i], (0, k * size[1]))
    palette = montage.quantize(colors=256)
    quantised = [im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for im in images]

    durations = [duration_ms] * (len(quantised) - 1) + [max(hold_last_ms, duration_ms)]
    with _atomic_path(path) as tmp:
        quantised[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=quantised[1:],
            duration=durations,
            loop=0,
            disposal=1,  # frames are full images: leave each in place, no flashing to background
        )


# --------------------------------------------------------------------------------------------------
# metrics


def read_jsonl(path: PathLike) -> list[dict]:
    """Read a JSON-lines file, skipping blank, malformed and non-object lines.

    A run killed mid-write can leave a partial last line (possibly cut inside a multi-byte UTF-8
    character, hence ``errors="replace"``); that line is dropped instead of failing the reader.
    A missing file raises ``FileNotFoundError``.
    """
    records: list[dict] = []
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                skipped += 1
    if skipped:
        logger.debug("read_jsonl(%s): skipped %d malformed line(s)", path, skipped)
    return records


def _is_number(v: Any) -> bool:
    # bool is an int subclass but a flag, not a metric.
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average whose window shrinks at the ends (no edge droop toward zero)."""
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo = np.maximum(i - half, 0)
    hi = np.minimum(i + half + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one key, sorted by step; for a repeated step the *later* record wins,
    which after a resume from an older checkpoint is the timeline the run actually continued."""
    by_step: dict[float, float] = {}
    for r in records:
        step, v = r.get("step"), r.get(key)
        if _is_number(step) and _is_number(v):
            by_step[float(step)] = float(v)
    steps = np.array(sorted(by_step), dtype=np.float64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def _draw_series(ax: Any, steps: np.ndarray, values: np.ndarray, label: str, color: Any) -> None:
    if len(values) > 50:
        ax.plot(steps, values, color=color, alpha=0.25, lw=0.8)
        window = min(max(len(values) // 25, 5), 101)
        ax.plot(steps, _smooth(values, window), color=color, lw=1.4, label=label)
    else:
        ax.plot(steps, values, color=color, lw=1.2, marker="o" if len(values) < 15 else None, ms=3,
                label=label)


def plot_metrics(records: list[dict], path: PathLike, keys: list[str] | None = None, title: str | None = None) -> None:
    """Plot metric curves against ``step`` from parsed ``metrics.jsonl`` records into one PNG.

    Records without a finite numeric ``step`` are ignored, as are non-numeric and non-finite
    values, so sparse keys (eval metrics every N steps) and NaN losses are fine. ``keys=None``
    plots every numeric key except ``step``, ``time``, ``epoch`` and ``lr*``, in first-seen order.
    Keys starting with ``loss`` share one wide plot on top; every other key gets its own small
    subplot. Series with more than 50 points are drawn faintly with a moving-average line on top.
    With nothing to plot a placeholder figure is written (so a dashboard never shows a stale one).
    """
    if keys is None:
        keys = []
        for r in records:
            if not _is_number(r.get("step")):
                continue
            for k, v in r.items():
                if k in keys or k in _SKIP_KEYS or k.startswith("lr") or not _is_number(v):
                    continue
                keys.append(k)
    series = {k: _series(records, k) for k in keys}
    empty = [k for k, (s, _) in series.items() if len(s) == 0]
    if empty:
        logger.debug("plot_metrics: no finite values for %s", empty)
    series = {k: sv for k, sv in series.items() if len(sv[0])}
    loss_keys = [k for k in series if k.startswith("loss")]
    other_keys = [k for k in series if not k.startswith("loss")]

    ncols = max(1, min(3, len(other_keys)))
    small_rows = math.ceil(len(other_keys) / ncols) if other_keys else 0
    big_rows = 1 if loss_keys else 0
    heights = [3.0] * big_rows + [2.2] * small_rows
    fig = _new_figure(9.0, max(sum(heights), 2.5) + (0.4 if title else 0.0))
    if title:
        fig.suptitle(title, fontsize=11)

    if not series:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no numeric metrics yet", ha="center", va="center", color="dimgray")
        ax.set_axis_off()
        _save_figure(fig, path)
        return

    gs = fig.add_gridspec(len(heights), ncols, height_ratios=heights)
    colors = [f"C{i}" for i in range(10)]
    axes = []
    if loss_keys:
        ax = fig.add_subplot(gs[0, :])
        for i, k in enumerate(loss_keys):
            _draw_series(ax, *series[k], label=k, color=colors[i % 10])
        ax.set_title("losses", fontsize=9)
        ax.legend(fontsize=8, loc="best")
        axes.append(ax)
    for j, k in enumerate(other_keys):
        r, q = divmod(j, ncols)
        ax = fig.add_subplot(gs[big_rows + r, q])
        _draw_series(ax, *series[k], label=k, color=colors[(len(loss_keys) + j) % 10])
        ax.set_title(k, fontsize=9)
        axes.append(ax)
    # One x range for all subplots, so sparse eval metrics line up with the losses above them.
    lo = min(float(s[0]) for s, _ in series.values())
    hi = max(float(s[-1]) for s, _ in series.values())
    margin = 0.02 * (hi - lo) if hi > lo else 0.5
    for ax in axes:
        ax.set_xlim(lo - margin, hi + margin)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)
