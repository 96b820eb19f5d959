"""Does a text encoder read each attribute from captions worded in templates it never saw?

    python benchmarks/text_encoder_probe.py RUN [RUN ...]            # text-encoder runs or exports
    python benchmarks/text_encoder_probe.py --train 3000 6000        # train encoders first (defaults)
    python benchmarks/text_encoder_probe.py minilm minilm:none       # the pretrained encoder (gankit[minilm]),
                                                                     # its encoder_post fitted to shapes (seed 0)

For each encoder: embed the training captions of 3,000 ``shapes`` images (5 each) and, per
attribute, take the mean unit embedding of each value (its centroid); then embed one held-out-
template caption for every attribute combination (4 times, synonyms drawn with seed 1) and read
each stated attribute as the value whose centroid is nearest in cosine. A nearest-centroid probe,
stricter than a trained linear one: it asks whether captions that state a value land near that
value's training captions, which is what G and D compare. Prints accuracy per attribute, and per
shape (circle, square, triangle); and the median cosine between training captions of two images
with the same five attributes, or differing in one only (what ``wrong_max_sim`` separates).

``--pairs``: also, for each encoder, how often the matching-aware D's hard wrong caption and the
contrastive term's negatives in fact describe the image (all of the caption's stated attributes
are the image's), over 300 random training minibatches of 64 with one random caption each, as in
a text2image step, for both ``describes`` rules (``gankit.recipes.text2image.caption_similarity``)
and three thresholds; split by image size for the wrong captions, since a rule that errs more
for one size teaches G that size is wrong for captions that leave it open.

``--shape-pairs``: also, for each encoder, how close the captions of an image that differs only
in shape come to describing an image, by the ``describes=image`` rule (each of the 540 attribute
combinations once, the training captions drawn with seed 0): median similarity and the share
above 0.75 (``con_max_sim``: never a contrastive negative) and 0.85 (``wrong_max_sim``: never a
wrong caption), per pair of shapes and by whether the caption states a position.

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
from typing import Any

import torch
import torch.nn.functional as F

from gankit import load, text
from gankit.data import shapes
from gankit.losses import misdescribes
from gankit.recipes.text2image import caption_similarity, hard_wrong
from gankit.recipes.text_encoder import stated_attributes

ATTRS = tuple(shapes.ATTRIBUTES)  # colour, shape, size, background, position


def encoder(spec: str) -> tuple[Any, dict[str, Any]]:
    """(frozen T, arch) for a text-encoder run or export, or ``minilm[:POST]`` (all-MiniLM-L6-v2
    with ``encoder_post`` POST, default center, fitted to the shapes training captions, seed 0)."""
    if spec.split(":")[0] == "minilm":
        T, arch, sha = text.minilm_encoder()
        text.fit_minilm(T, arch, sha, shapes.generate(32, 0)[2], spec.partition(":")[2] or "center")
        return T, arch
    model = load(spec)
    return model.recipe.modules["T"].eval(), {"kind": "char", **model.recipe.cfg.text_arch()}


def probe(folder: str) -> dict[str, float]:
    T, arch = encoder(folder)
    _, attrs, caps = shapes.generate(32, 0)
    train_emb = F.normalize(text.embed_texts(T, arch, [c for cs in caps[:3000] for c in cs]), dim=1)
    train_attrs = attrs[:3000].repeat_interleave(shapes.CAPTIONS_PER_IMAGE, 0)
    combos = shapes.all_combinations(4)
    held, stated = shapes.held_out_captions(combos, seed=1)
    held_emb = F.normalize(text.embed_texts(T, arch, held), dim=1)
    out = {}
    # cosine between training captions of two images: same five attributes, or differing in one only
    n = 1000
    e, at = train_emb[: n * shapes.CAPTIONS_PER_IMAGE], train_attrs[: n * shapes.CAPTIONS_PER_IMAGE]
    item = torch.arange(len(e)) // shapes.CAPTIONS_PER_IMAGE
    sim, diff = e @ e.T, at[:, None, :] != at[None, :, :]  # (N, N), (N, N, 5)
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


def pair_errors(folder: str, batches: int = 300, batch: int = 64) -> list[str]:
    """Table lines: false wrong captions and false contrastive negatives per rule and threshold."""
    T, arch = encoder(folder)
    _, attrs, caps = shapes.generate(32, 0)
    N, K = len(caps), shapes.CAPTIONS_PER_IMAGE
    emb = text.embed_texts(T, arch, [c for cs in caps for c in cs]).view(N, K, -1)
    cols = list(shapes.ATTRIBUTES)
    stated = stated_attributes(caps, 0).long()  # (N, K, 5): value index each caption states, -1 where open
    n_caps = torch.full((batch,), K)
    gen = torch.Generator().manual_seed(0)
    rules = [(rule, th) for rule in ("caption", "image") for th in (0.75, 0.8, 0.85)]
    # per rule: false wrong (small images), small images, false wrong (large), large images,
    # fitting captions left as negatives, fitting pairs, non-fitting pairs kept out, non-fitting pairs
    count = {r: torch.zeros(8) for r in rules}
    for _ in range(batches):
        idx = torch.randperm(N, generator=gen)[:batch]
        k = torch.randint(K, (batch,), generator=gen)
        right, said, a = emb[idx, k], stated[idx, k], attrs[idx]
        fits = ~misdescribes(said, a)  # (B, B): caption j fits image i
        off = ~torch.eye(batch, dtype=torch.bool)
        small = a[:, cols.index("size")] == 0
        for rule, th in rules:
            sim = caption_similarity(right) if rule == "caption" else caption_similarity(right, emb[idx], n_caps)
            w = hard_wrong(torch.arange(batch)[:, None].float(), sim, th)[:, 0].long()  # each image's wrong caption
            false_wrong = fits[torch.arange(batch), w]
            neg = (sim < th) & off
            count[(rule, th)] += torch.tensor([
                false_wrong[small].sum(), small.sum(), false_wrong[~small].sum(), (~small).sum(),
                (neg & fits).sum(), (fits & off).sum(), (~neg & off & ~fits).sum(), (off & ~fits).sum()]).double()
    lines = [f"{'describes':10s} {'threshold':>9s} {'false wrong: small / large images':>34s} "
             f"{'fitting captions left as negatives':>35s} {'true negatives dropped':>23s}"]
    for rule, th in rules:
        c = count[(rule, th)]
        lines.append(f"{rule:10s} {th:9.2f} {100 * c[0] / c[1]:15.1f}% / {100 * c[2] / c[3]:5.1f}% "
                     f"{100 * c[4] / c[5]:34.1f}% {100 * c[6] / c[7]:22.1f}%")
    return lines


def shape_pairs(folder: str) -> list[str]:
    """Table lines: ``caption_similarity`` (describes=image) of image i's attributes with every
    caption of the image that differs from it only in shape, per (image shape, caption shape) and
    position stated or not."""
    T, arch = encoder(folder)
    attrs = shapes.all_combinations(1)  # (540, 5)
    caps = shapes.training_captions(attrs, 0)
    N, K = len(caps), shapes.CAPTIONS_PER_IMAGE
    emb = text.embed_texts(T, arch, [c for cs in caps for c in cs]).view(N, K, -1)
    row = {tuple(r): i for i, r in enumerate(attrs.tolist())}
    S, P = list(shapes.ATTRIBUTES).index("shape"), list(shapes.ATTRIBUTES).index("position")
    said = stated_attributes(caps, 0)  # (N, K, 5), -1 where the caption leaves the attribute open
    sims: dict[tuple[str, str, bool], list[float]] = {}
    for i, r in enumerate(attrs.tolist()):
        others = [row[tuple(r[:S] + [s] + r[S + 1:])] for s in range(len(shapes.SHAPES)) if s != r[S]]
        cand = emb[others].flatten(0, 1)  # (2K, E): every caption of the two images
        sim = caption_similarity(cand, emb[i][None], torch.tensor([K]))[0]  # (2K,) to image i
        for j, o in enumerate(others):
            for k in range(K):
                key = (shapes.SHAPES[r[S]], shapes.SHAPES[attrs[o, S]], bool(said[o, k, P] >= 0))
                sims.setdefault(key, []).append(float(sim[j * K + k]))
    lines = [f"{'image':9s} {'caption':9s} {'position':9s} {'median':>7s} {'>= 0.75':>8s} {'>= 0.85':>8s}"]
    for (img, cap, pos), v in sorted(sims.items()):
        t = torch.tensor(v)
        lines.append(f"{img:9s} {cap:9s} {'stated' if pos else 'open':9s} {t.median():7.2f} "
                     f"{100 * (t >= 0.75).double().mean():7.1f}% {100 * (t >= 0.85).double().mean():7.1f}%")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="text-encoder run directories or exports, or minilm[:center|whiten|none]")
    p.add_argument("--train", nargs="*", type=int, default=[], metavar="STEPS", help="train encoders of these steps")
    p.add_argument("--out", default="runs/bench-text-encoder")
    p.add_argument("--pairs", action="store_true", help="also measure false wrong captions and negatives")
    p.add_argument("--shape-pairs", action="store_true", help="also: similarity of captions differing only in shape")
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
        if a.pairs:
            print("\n".join(pair_errors(run)), flush=True)
        if a.shape_pairs:
            print("\n".join(shape_pairs(run)), flush=True)


if __name__ == "__main__":
    main()
