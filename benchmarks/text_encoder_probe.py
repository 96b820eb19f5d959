"""Does a text encoder read each attribute from captions worded in templates it never saw?

    python benchmarks/text_encoder_probe.py RUN [RUN ...]            # text-encoder runs or exports
    python benchmarks/text_encoder_probe.py --train 3000 6000        # train encoders first (defaults)

For each encoder: embed the training captions of 3,000 ``shapes`` images (5 each) and, per
attribute, take the mean unit embedding of each value (its centroid); then embed one held-out-
template caption for every attribute combination (4 times, synonyms drawn with seed 1) and read
each stated attribute as the value whose centroid is nearest in cosine. A nearest-centroid probe,
stricter than a trained linear one: it asks whether captions that state a value land near that
value's training captions, which is what G and D compare. Prints accuracy per attribute, and per
shape (circle, square, triangle); and the median cosine between training captions of two images
with the same four attributes, or differing in one only (what ``wrong_max_sim`` separates).

``--train N ...`` trains ``gankit train text-encoder --data shapes --size 32 --steps N`` with the
defaults (seed 0) into ``--out``/steps-N first, 2 threads, and prints its wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankit import load
from gankit.data import shapes
from gankit.text import embed_texts

ATTRS = ("colour", "shape", "size", "background")


def probe(folder: str) -> dict[str, float]:
    model = load(folder)
    T, max_chars = model.recipe.modules["T"].eval(), model.recipe.cfg.max_chars
    _, attrs, caps = shapes.generate(32, 0)
    train_emb = F.normalize(embed_texts(T, [c for cs in caps[:3000] for c in cs], max_chars), dim=1)
    train_attrs = attrs[:3000].repeat_interleave(shapes.CAPTIONS_PER_IMAGE, 0)
    combos = shapes.all_combinations(4)
    held, stated = shapes.held_out_captions(combos, seed=1)
    held_emb = F.normalize(embed_texts(T, held, max_chars), dim=1)
    out = {}
    # cosine between training captions of two images: same four attributes, or differing in one only
    n = 1000
    e, at = train_emb[: n * shapes.CAPTIONS_PER_IMAGE], train_attrs[: n * shapes.CAPTIONS_PER_IMAGE, :4]
    item = torch.arange(len(e)) // shapes.CAPTIONS_PER_IMAGE
    sim, diff = e @ e.T, at[:, None, :] != at[None, :, :]  # (N, N), (N, N, 4)
    other = item[:, None] != item[None, :]
    out["cos_same"] = float(sim[other & (diff.sum(-1) == 0)].median())
    for j, a in enumerate(ATTRS):
        out[f"cos_{a}"] = float(sim[other & (diff.sum(-1) == 1) & diff[..., j]].median())
    for j, a in enumerate(ATTRS):
        centroids = torch.stack([train_emb[train_attrs[:, j] == v].mean(0) for v in range(len(shapes.ATTRIBUTES[a]))])
        hit = (held_emb @ centroids.T).argmax(1) == combos[:, j]
        mask = torch.tensor([a in s for s in stated])
        out[a] = float(hit[mask].double().mean())
        if a == "shape":
            for v, name in enumerate(shapes.SHAPES):
                out[f"shape_{name}"] = float(hit[mask & (combos[:, j] == v)].double().mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="text-encoder run directories or exports")
    p.add_argument("--train", nargs="*", type=int, default=[], metavar="STEPS", help="train encoders of these steps")
    p.add_argument("--out", default="runs/bench-text-encoder")
    a = p.parse_args()
    runs = list(a.runs)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    for steps in a.train:
        run = Path(a.out) / f"steps-{steps}"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "gankit", "-q", "train", "text-encoder", "--data", "shapes", "--size", "32",
                        "--steps", str(steps), "--out", str(run), "--set", "progress=false"], env=env, check=True)
        print(f"{run}: {steps} steps in {time.monotonic() - t0:.0f} s", flush=True)
        runs.append(str(run))
    if not runs:
        p.error("give text-encoder runs or --train STEPS")
    print(f"{'encoder':40s} " + " ".join(f"{k:>9s}" for k in (*ATTRS, "circle", "square", "triangle")))
    for run in runs:
        r = probe(run)
        vals = [r[k] for k in ATTRS] + [r[f"shape_{s}"] for s in shapes.SHAPES]
        print(f"{run:40s} " + " ".join(f"{100 * v:8.1f}%" for v in vals), flush=True)
        print(f"{'':40s} median cosine of two images' captions: same attributes {r['cos_same']:.2f}; differing only "
              "in " + ", ".join(f"{a} {r[f'cos_{a}']:.2f}" for a in ATTRS), flush=True)


if __name__ == "__main__":
    main()
