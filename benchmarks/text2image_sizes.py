"""Which sizes does a text2image run draw when the caption leaves the size open?

    python benchmarks/text2image_sizes.py RUN [RUN ...] [--n 30]

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
"""

from __future__ import annotations

import argparse

import torch

from gankit import load
from gankit.data import shapes

BACKGROUND_RGB = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}


def areas(images: torch.Tensor, backgrounds: list[str]) -> torch.Tensor:
    """(N,) share of pixels off the background colour; ``images`` float [-1, 1] or uint8 (N, 3, H, W)."""
    x = images.float() if images.dtype == torch.uint8 else images.clamp(-1, 1).add(1).mul(127.5)
    bg = torch.tensor([BACKGROUND_RGB[b] for b in backgrounds], dtype=torch.float)[:, :, None, None]
    return ((x - bg).abs().amax(1) > 60).float().mean((1, 2))


def real_medians(side: int) -> dict[tuple[str, str], float]:
    """Median object area of real images per (shape, size) at ``side`` px."""
    x, attrs, _ = shapes.generate(side, 0)
    bgs = [shapes.ATTRIBUTES["background"][int(b)] for b in attrs[:, 3]]
    a = areas(x, bgs)
    return {(s, z): float(a[(attrs[:, 1] == i) & (attrs[:, 2] == j)].median())
            for i, s in enumerate(shapes.SHAPES) for j, z in enumerate(shapes.ATTRIBUTES["size"])}


def report(run: str, n: int, seed: int) -> list[str]:
    model = load(run)
    r = model.recipe
    side = r.spec.shape[-1]
    ref = real_medians(side)
    gen = torch.Generator().manual_seed(seed)
    lines = [f"{run}: {side} px, {n} samples per caption, 18 captions per shape and kind"]
    for s in shapes.SHAPES:
        out = {}
        for kind, template, extra in (("small", shapes.PLAIN_TEMPLATE, {"size": "small"}),
                                      ("large", shapes.PLAIN_TEMPLATE, {"size": "large"}),
                                      ("open", shapes.DIVERSITY_TEMPLATE, {})):
            caps, bgs = [], []
            for c in shapes.COLOURS:
                for b in shapes.BACKGROUNDS:
                    caps += [shapes.caption({"colour": c, "shape": s, "background": b, **extra}, template)] * n
                    bgs += [b] * n
            z = torch.randn(len(caps), r.cfg.z_dim, generator=gen)
            imgs = torch.cat([r.generate(r.modules, r.inputs_for(caps[i : i + 500], z[i : i + 500])).cpu()
                              for i in range(0, len(caps), 500)])
            out[kind] = areas(imgs, bgs)
        lo, hi = ref[(s, "small")], ref[(s, "large")]
        o = out["open"]
        band = (o > lo + (hi - lo) / 3) & (o < hi - (hi - lo) / 3)
        hist = torch.histc(o, bins=12, min=0.0, max=1.5 * hi).int().tolist()
        lines.append(f"  {s:9s} real small / large median area {lo:.3f} / {hi:.3f}; generated: small caption "
                     f"{out['small'].median():.3f}, large {out['large'].median():.3f}, open {o.median():.3f}")
        lines.append(f"  {'':9s} open caption: {float((o < (lo + hi) / 2).float().mean()):.0%} below the midpoint, "
                     f"{float(band.float().mean()):.0%} medium (middle third); histogram 0-{1.5 * hi:.2f}: {hist}")
    return lines


def interpolation(run: str, n: int, seed: int) -> list[str]:
    model = load(run)
    r, mods = model.recipe, model.recipe.modules
    ref = real_medians(r.spec.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    bgs = [b for _ in shapes.COLOURS for b in shapes.BACKGROUNDS]
    lines = [f"{run}: between the small and large captions' embeddings, {n} samples x 18 captions per β"]
    for s in shapes.SHAPES:
        emb = {z: r.embed(mods, [shapes.caption({"colour": c, "shape": s, "background": b, "size": z})
                                 for c in shapes.COLOURS for b in shapes.BACKGROUNDS]) for z in ("small", "large")}
        lo, hi = ref[(s, "small")], ref[(s, "large")]
        cells = []
        for beta in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0):
            e = ((1 - beta) * emb["small"] + beta * emb["large"]).repeat_interleave(n, 0)  # (18 n, E)
            z = torch.randn(len(e), r.cfg.z_dim, generator=gen)
            a = areas(r.generate_from_embeddings(mods, z, e).cpu(), [b for b in bgs for _ in range(n)])
            medium = (a > lo + (hi - lo) / 3) & (a < hi - (hi - lo) / 3)
            cells.append(f"β {beta:.1f}: {a.median():.3f} ({float(medium.float().mean()):.0%} medium)")
        lines.append(f"  {s:9s} " + ", ".join(cells))
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="text2image run directories or exports")
    p.add_argument("--n", type=int, default=30, help="samples per caption (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interpolate", action="store_true", help="also areas between the small and large captions")
    a = p.parse_args()
    for run in a.runs:
        print("\n".join(report(run, a.n, a.seed)), flush=True)
        if a.interpolate:
            print("\n".join(interpolation(run, 20, a.seed)), flush=True)


if __name__ == "__main__":
    main()
