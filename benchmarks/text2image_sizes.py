"""Which sizes does a text2image run draw when the caption leaves the size open?

    python benchmarks/text2image_sizes.py RUN [RUN ...] [--n 30] [--interpolate | --distances | --logits]

The attribute classifier of ``gankit eval`` must call every image small or large. This script
looks at the object itself: for each shape, it draws ``n`` samples for every colour and background
(18 captions) from the plain caption with "small", with "large", and from the held-out caption
that leaves size open ("i see a red circle against a black background"), and measures the object's
area as the share of pixels that differ from the caption's background colour by more than 60 in
some channel. Real ``shapes`` images at the run's side give the reference: their two sizes' median
areas, and the "medium" band, the middle third between them, where no real object lies.

A generator that follows the data draws open captions half small and half large, so half of their
areas near each real median and none in the medium band. Prints, per shape: the medians of the
three caption kinds, the share of open-caption samples below the midpoint between the real sizes,
the share in the medium band, and a 12-bin histogram of the open-caption areas.

``--interpolate``: also feed G embeddings between the plain "small" and "large" captions,
(1-β)·φ(small) + β·φ(large), and print the median area and medium share at each β: a G that reads
size as a continuous quantity grows the object gradually, one that picks a size jumps.

``--distances``: what the mode-seeking term pays for, through the run's trained D (its last
checkpoint). For real ``shapes`` images at the run's side that differ only in position, the mean
L1 distance (per component) of each ``ms_space`` view between the two, separately for small and
for large objects, their ratio, and the distance when only the size changes. A view in which
moving a small object counts for more than moving a large one (ratio above 1) pays G, under the
term, for drawing small objects where the caption leaves the size open. Then, what the term rewards
in expectation: the mean distance between two real images of one colour, shape and background
drawn from both sizes (as the data is), from small objects only and from large only. A view in
which small-only lies farther apart than both sizes pays G for dropping the large ones.

``--logits``: what D (the run's last checkpoint) says about real images of each size under a
caption that leaves the size open: D's mean logit, and its projection and concatenation parts,
for the 270 small and 270 large real images (every colour, shape, background and position once)
under the held-out open caption, a training open caption ("this image shows a ... backdrop"),
"a {colour} {shape}", and the plain small and large captions. A D that favours small objects
for open captions would pull G toward them; one that favours large ones does not. Then the same
for the run's own samples (``--n`` per colour, shape and background, its sampling G), split by
the size ``gankit eval``'s attribute classifier calls: what D says about the large objects G does
draw for an open caption, against its small ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit import load
from gankit.data import shapes
from gankit.engine import checkpoint

def captions(shape: str, template: str, **extra: str) -> tuple[list[str], list[str]]:
    """One caption per colour and background (18) for ``shape``, and each caption's background."""
    combos = [(c, b) for c in shapes.COLOURS for b in shapes.BACKGROUNDS]
    return ([shapes.caption({"colour": c, "shape": shape, "background": b, **extra}, template) for c, b in combos],
            [b for _, b in combos])


def report(run: str, r: Any, ref: dict[str, tuple[float, float]], n: int, seed: int) -> list[str]:
    """Areas for the small, large and open captions of each shape (``r``: the run's loaded recipe)."""
    gen = torch.Generator().manual_seed(seed)
    lines = [f"{run}: {r.spec.shape[-1]} px, {n} samples per caption, 18 captions per shape and kind"]
    for s in shapes.SHAPES:
        out = {}
        for kind, template, extra in (("small", shapes.PLAIN_TEMPLATE, {"size": "small"}),
                                      ("large", shapes.PLAIN_TEMPLATE, {"size": "large"}),
                                      ("open", shapes.DIVERSITY_TEMPLATE, {})):
            caps, bgs = captions(s, template, **extra)
            caps, bgs = [c for c in caps for _ in range(n)], [b for b in bgs for _ in range(n)]
            z = torch.randn(len(caps), r.latent_dim, generator=gen)  # z, and ε with ca
            imgs = torch.cat([r.generate(r.modules, r.inputs_for(caps[i : i + 500], z[i : i + 500])).cpu()
                              for i in range(0, len(caps), 500)])
            out[kind] = shapes.object_area(imgs, bgs)
        lo, hi = ref[s]
        o = out["open"]
        band = (o > lo + (hi - lo) / 3) & (o < hi - (hi - lo) / 3)
        hist = torch.histc(o, bins=12, min=0.0, max=1.5 * hi).int().tolist()
        lines.append(f"  {s:9s} real small / large median area {lo:.3f} / {hi:.3f}; generated: small caption "
                     f"{out['small'].median():.3f}, large {out['large'].median():.3f}, open {o.median():.3f}")
        lines.append(f"  {'':9s} open caption: {float((o < (lo + hi) / 2).float().mean()):.0%} below the midpoint, "
                     f"{float(band.float().mean()):.0%} medium (middle third); histogram 0-{1.5 * hi:.2f}: {hist}")
    return lines


def interpolation(run: str, r: Any, ref: dict[str, tuple[float, float]], n: int, seed: int) -> list[str]:
    """Areas for embeddings between each shape's small and large plain captions."""
    mods = r.modules
    gen = torch.Generator().manual_seed(seed)
    lines = [f"{run}: between the small and large captions' embeddings, {n} samples x 18 captions per β"]
    for s in shapes.SHAPES:
        emb = {z: r.embed(mods, captions(s, shapes.PLAIN_TEMPLATE, size=z)[0]) for z in ("small", "large")}
        bgs = captions(s, shapes.PLAIN_TEMPLATE, size="small")[1]
        lo, hi = ref[s]
        cells = []
        for beta in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0):
            e = ((1 - beta) * emb["small"] + beta * emb["large"]).repeat_interleave(n, 0)  # (18 n, E)
            z = torch.randn(len(e), r.latent_dim, generator=gen)  # z, and ε with ca
            a = shapes.object_area(r.generate_from_embeddings(mods, z, e).cpu(), [b for b in bgs for _ in range(n)])
            medium = (a > lo + (hi - lo) / 3) & (a < hi - (hi - lo) / 3)
            cells.append(f"β {beta:.1f}: {a.median():.3f} ({float(medium.float().mean()):.0%} medium)")
        lines.append(f"  {s:9s} " + ", ".join(cells))
    return lines


@dataclass
class RealThroughD:
    """Every ``shapes`` attribute combination once as a real image, through a run's trained D."""

    D: Any  # the run's D from its last checkpoint (exports hold no D), in eval mode
    step: int
    attrs: torch.Tensor  # (540, 5) int
    x: torch.Tensor  # (540, 3, S, S) in [-1, 1]
    h: torch.Tensor  # (540, ch, 4, 4) = D.image(x)


def real_through_d(run: str, r: Any) -> RealThroughD:
    state = checkpoint.load_latest(Path(run) / "checkpoints")
    if state is None:
        raise SystemExit(f"{run}: --distances and --logits need a run directory with checkpoints (D is not in "
                         "exports)")
    D = r.modules["D"]
    D.load_state_dict(state["modules"]["D"])
    D.eval()
    attrs = shapes.all_combinations(1)  # (540, 5): every combination once
    x = shapes.draw_attributes(attrs, r.spec.shape[-1], 0).float().div(127.5).sub(1)
    with torch.no_grad():
        h = D.image(x)
    return RealThroughD(D, state["step"], attrs, x, h)


def distances(run: str, real: RealThroughD) -> list[str]:
    """Each mode-seeking view's distance between real images that differ only in position (small
    objects, large objects) or only in size, through ``run``'s trained D."""
    from gankit.recipes.text2image import ms_view

    attrs, x, h = real.attrs, real.x, real.h
    index = {tuple(a): i for i, a in enumerate(attrs.tolist())}
    col = list(shapes.ATTRIBUTES)

    def pairs(attr: str, where: dict[str, int]) -> tuple[list[int], list[int]]:
        """Rows (i, j) that differ only in ``attr`` (i's value below j's), with ``where`` fixed."""
        k, first, second = col.index(attr), [], []
        for a in attrs.tolist():
            if any(a[col.index(c)] != v for c, v in where.items()):
                continue
            for v in range(a[k] + 1, len(shapes.ATTRIBUTES[attr])):
                b = list(a)
                b[k] = v
                first.append(index[tuple(a)])
                second.append(index[tuple(b)])
        return first, second

    small, large = (pairs("position", {"size": i}) for i in range(2))
    resized = pairs("size", {})
    lines = [f"{run} (step {real.step}): mean |a - b| between real images, {len(small[0])} pairs per size"]
    key = attrs[:, [col.index("colour"), col.index("shape"), col.index("background")]]
    groups = [(key == k).all(1).nonzero().flatten() for k in torch.unique(key, dim=0)]  # 54 of 10 images
    size = attrs[:, col.index("size")]
    for space in ("occupancy", "layout", "features", "pixels"):
        v = ms_view(space, x, h).flatten(1)
        d = [float((v[i] - v[j]).abs().mean()) for i, j in (small, large, resized)]
        lines.append(f"  {space:10s} moved: small {d[0]:.4f}, large {d[1]:.4f}, ratio {d[0] / d[1]:.2f}; "
                     f"resized in place {d[2]:.4f}")
        e = torch.zeros(3)  # E d(a, b) within each group: both sizes, small only, large only
        for g in groups:
            dist = torch.cdist(v[g], v[g], p=1) / v.shape[1]  # (10, 10) mean |a - b|
            sm = size[g] == 0
            e += torch.stack([dist.mean(), dist[sm][:, sm].mean(), dist[~sm][:, ~sm].mean()]) / len(groups)
        lines.append(f"  {'':10s} expected, two images of one caption: both sizes {e[0]:.4f}, small only "
                     f"{e[1]:.4f} ({e[1] / e[0]:.2f}x), large only {e[2]:.4f} ({e[2] / e[0]:.2f}x)")
    return lines


LOGIT_CAPTIONS = {"open, held out": shapes.DIVERSITY_TEMPLATE,
                  "open, training": "this image shows a {colour} {shape} on a {background} backdrop",
                  "colour and shape": "a {colour} {shape}",
                  "small": "a small {colour} {shape} on a {background} background",
                  "large": "a large {colour} {shape} on a {background} background"}


def logits(run: str, r: Any, real: RealThroughD) -> list[str]:
    """D's mean logit (and its projection / concatenation parts) for real small and large images
    under captions that leave the size open or state it."""
    D, h = real.D, real.h
    rows = [shapes.names(a) for a in real.attrs.tolist()]
    small = real.attrs[:, list(shapes.ATTRIBUTES).index("size")] == 0
    lines = [f"{run} (step {real.step}): D's mean logit for real images, small / large ({int(small.sum())} each)"]
    with torch.no_grad():
        for name, template in LOGIT_CAPTIONS.items():
            emb = r.embed(r.modules, [template.format(**a) for a in rows])  # (540, E)
            s = D.score(h, emb)
            parts = [("logit", s)]
            if D.proj is not None:
                proj = torch.mul(*D.pair_codes(h, emb)).sum(1)  # <mean_xy h, W φ(t)>
                parts += [("projection", proj), ("concatenation", s - proj)]
            cells = [f"{k} {float(v[small].mean()):+.2f} / {float(v[~small].mean()):+.2f}" for k, v in parts]
            lines.append(f"  {name:17s} " + "  ".join(cells))
    return lines


def fake_logits(run: str, r: Any, real: RealThroughD, n: int, seed: int) -> list[str]:
    """D's mean logit for the run's own samples (its sampling G), split by the size the attribute
    classifier calls: ``n`` samples of every colour, shape and background under the open, small
    and large captions of ``LOGIT_CAPTIONS``."""
    from gankit.metrics.attributes import load_classifier, predict

    clf, _ = load_classifier()
    combos = [{"colour": c, "shape": s, "background": b}
              for c in shapes.COLOURS for s in shapes.SHAPES for b in shapes.BACKGROUNDS]
    gen = torch.Generator().manual_seed(seed)
    col = list(shapes.ATTRIBUTES).index("size")
    lines = [f"{run} (step {real.step}): D's mean logit for the run's samples, drawn small / drawn large "
             f"({n} per colour, shape and background)"]
    for name in ("open, held out", "open, training", "small", "large"):
        caps = [LOGIT_CAPTIONS[name].format(**a) for a in combos for _ in range(n)]
        z = torch.randn(len(caps), r.latent_dim, generator=gen)
        with torch.no_grad():
            x = torch.cat([r.generate(r.modules, r.inputs_for(caps[i : i + 540], z[i : i + 540]))
                           for i in range(0, len(caps), 540)])
            s = real.D.score(real.D.image(x), r.embed(r.modules, caps))
        large = predict(clf, x)[:, col] == shapes.ATTRIBUTES["size"].index("large")
        cells = [f"{float(s[m].mean()):+.2f} ({int(m.sum())})" if m.any() else "  -  (0)" for m in (~large, large)]
        lines.append(f"  {name:17s} {cells[0]} / {cells[1]}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="text2image run directories or exports")
    p.add_argument("--n", type=int, default=30, help="samples per caption (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interpolate", action="store_true", help="also areas between the small and large captions")
    p.add_argument("--distances", action="store_true",
                   help="only the mode-seeking views' distances between real images, through the run's trained D")
    p.add_argument("--logits", action="store_true",
                   help="only D's logits for real images and the run's samples, small and large, under open and "
                        "sized captions")
    a = p.parse_args()
    for run in a.runs:
        r = load(run).recipe
        if a.distances or a.logits:
            real = real_through_d(run, r)
            lines = distances(run, real) if a.distances else []
            if a.logits:
                lines += logits(run, r, real) + fake_logits(run, r, real, a.n, a.seed)
            print("\n".join(lines), flush=True)
            continue
        ref = shapes.size_reference(r.spec.shape[-1])  # real images drawn and measured once per side
        print("\n".join(report(run, r, ref, a.n, a.seed)), flush=True)
        if a.interpolate:
            print("\n".join(interpolation(run, r, ref, 20, a.seed)), flush=True)


if __name__ == "__main__":
    main()
