"""Do generated images match their captions? An attribute classifier for ``shapes``.

``shapes-attr``: a small CNN gankit trains itself on real ``shapes`` images (seed 1001, drawn at
32x32, per-batch Gaussian pixel noise so it does not depend on perfectly flat colours), with one
head per attribute: colour (6), shape (3), size (2), background (3), position (5). Its accuracy on
1,000 fresh real images (seed 1002) is stored beside the weights, safetensors + JSON in the gankit
cache (``$GANKIT_CACHE``); training is deterministic and takes about half a minute on 2 cores.

:func:`caption_accuracy` writes captions with the *held-out* templates of ``gankit.data.shapes``
(never used for training captions) for every attribute combination, generates one image per
caption and reports, per attribute, the share of images whose predicted value is the one the
caption states (only over captions that state it), plus ``all``: every stated attribute right.
Diversity: for one caption that leaves size and position open, the share of samples predicted in
each position and size.

:func:`attribute_fid`: FID in the classifier's 256-d penultimate features (``fid_attr``), against
real ``shapes`` drawn with a seed of their own (:data:`FID_SEED`); images of any side are brought
to 32x32 first (:func:`gankit.metrics.lenet.prepare_rgb`). A measure of image realism that knows
what shapes look like, used to compare StackGAN's two stages.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.engine.checkpoint import atomic_write
from gankit.metrics.lenet import cache_dir, prepare_rgb

log = logging.getLogger(__name__)

VERSION = "shapes-attr-v1"
TRAIN_SEED, TEST_SEED, FID_SEED = 1001, 1002, 1003
EPOCHS, BATCH, NOISE = 6, 64, 0.1


def _heads() -> dict[str, int]:
    from gankit.data.shapes import ATTRIBUTES

    return {a: len(v) for a, v in ATTRIBUTES.items()}


class AttributeNet(nn.Module):
    """x (B, 3, 32, 32) in [-1, 1] -> logits (B, 19), split per attribute by :meth:`split`."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 16, 16)
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 8, 8)
            nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 128, 4, 4)
            nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Linear(256, sum(_heads().values())),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @staticmethod
    def split(logits: Tensor) -> dict[str, Tensor]:
        return dict(zip(_heads(), logits.split(list(_heads().values()), dim=1)))


@torch.no_grad()
def predict(model: AttributeNet, images: Tensor, batch: int = 500) -> Tensor:
    """int64 (N, 5) predicted attributes (column order of ``shapes.ATTRIBUTES``)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        heads = model.split(model(prepare_rgb(images[i : i + batch])))
        out.append(torch.stack([h.argmax(1) for h in heads.values()], 1))
    return torch.cat(out)


def train_classifier() -> tuple[AttributeNet, dict[str, Any]]:
    from gankit.data import shapes

    x, attrs, _ = shapes.generate(32, TRAIN_SEED)
    xt, at, _ = shapes.generate(32, TEST_SEED)
    xt, at = xt[:1000], at[:1000]
    with torch.random.fork_rng(devices=[]):  # never disturbs a caller's training noise
        torch.manual_seed(0)
        model = AttributeNet()
        gen = torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xf = prepare_rgb(x)
        for _ in range(EPOCHS):
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(perm) - BATCH + 1, BATCH):
                ids = perm[i : i + BATCH]
                xb = xf[ids] + NOISE * torch.randn(xf[ids].shape, generator=gen)
                heads = model.split(model(xb))
                loss = sum(F.cross_entropy(h, attrs[ids, j]) for j, h in enumerate(heads.values()))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    pred = predict(model, xt)
    record = {"version": VERSION, "epochs": EPOCHS, "train_seed": TRAIN_SEED, "test_seed": TEST_SEED,
              "held_out_accuracy": {a: float((pred[:, j] == at[:, j]).double().mean()) for j, a in enumerate(_heads())}}
    return model.eval(), record


def load_classifier(cache: Path | None = None) -> tuple[AttributeNet, dict[str, Any]]:
    """The cached classifier, training it first if absent (a damaged cache is rebuilt)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    folder = cache or cache_dir()
    weights, meta = folder / f"{VERSION}.safetensors", folder / f"{VERSION}.json"
    if weights.is_file() and meta.is_file():
        try:
            model = AttributeNet()
            model.load_state_dict(load_file(weights))
            return model.eval(), json.loads(meta.read_text())
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:
            log.warning("rebuilding the shapes attribute classifier cache (%s)", str(err).splitlines()[0][:120])
    log.info("training the shapes attribute classifier (once; cached in %s)", folder)
    model, record = train_classifier()
    folder.mkdir(parents=True, exist_ok=True)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write(weights, lambda f: f.write(blob))
    atomic_write(meta, lambda f: f.write(json.dumps(record, indent=2).encode()))
    return model, record


@torch.no_grad()
def features(model: AttributeNet, images: Tensor, batch: int = 500) -> Tensor:
    """float32 (N, 256): the classifier's penultimate activations."""
    model.eval()
    trunk = model.net[:-1]
    return torch.cat([trunk(prepare_rgb(images[i : i + batch])) for i in range(0, len(images), batch)])


def attribute_fid(fake: Tensor, size: int, repeats: int = 4, cache: Path | None = None) -> float:
    """FID of ``fake`` images (uint8 or [-1, 1]) against real shapes drawn at ``size`` (every
    attribute combination ``repeats`` times, seed :data:`FID_SEED`), in the classifier's features."""
    from gankit.data import shapes
    from gankit.metrics.scores import FeatureStats, fid

    clf, _ = load_classifier(cache)
    real = shapes.draw_attributes(shapes.all_combinations(repeats), size, FID_SEED)
    stats = []
    for x in (real, fake):
        s = FeatureStats.empty(256)
        s.update(features(clf, x))
        stats.append(s)
    return fid(stats[0], stats[1])


def open_caption_spread(recipe: Any, modules: dict[str, nn.Module], clf: AttributeNet, generate: Any, dim: int,
                        gen: torch.Generator, n: int) -> dict[str, Any]:
    """Per-caption diversity: for the diversity template's caption of every colour, shape and
    background (54 captions, size and position left open), ``n`` samples each; the mean number of
    positions (of 5) and sizes (of 2) that at least 5 % of a caption's samples show. A generator
    that ignores z scores 1 and 1, however varied its images are across captions.

    Covering a size with 5 % of the samples is not drawing both: ``size_balance_mean`` is the mean
    over captions of 2·min(share small, share large), 1 for half and half (the data's split), 0 for
    one size only; with 40 samples per caption, binomial noise alone puts a generator that draws
    each size with probability ½ at about 0.87. ``small_share`` is the share drawn small per shape.

    The classifier must call every image small or large, and G's objects are not always either: an
    object between the two sizes, or two faint copies of a small one, it calls large often enough
    to look like balance. So the same split is also read from the pixels: each sample's object area
    (``shapes.object_area``) against the real data's median small and large areas of its shape
    (``shapes.size_reference``). ``size_balance_area`` is the balance with "large" meaning above the
    midpoint of the two medians, ``large_share_area`` that share per shape, and
    ``medium_share_area`` the share of samples in the middle third between the medians, where no
    real object lies (0 for the data)."""
    from gankit.data import shapes

    cols = list(shapes.ATTRIBUTES)
    combos = [{"colour": c, "shape": s, "background": b}
              for c in shapes.COLOURS for s in shapes.SHAPES for b in shapes.BACKGROUNDS]
    caps = [shapes.caption(a, shapes.DIVERSITY_TEMPLATE) for a in combos for _ in range(n)]
    z = torch.randn(len(caps), dim, generator=gen)
    imgs = torch.cat([generate(modules, recipe.inputs_for(caps[i : i + 540], z[i : i + 540])).cpu()
                      for i in range(0, len(caps), 540)])
    p = predict(clf, imgs).view(len(combos), n, len(cols))  # (54, n, 5)

    def covered(a: str) -> float:
        k = len(shapes.ATTRIBUTES[a])
        counts = F.one_hot(p[:, :, cols.index(a)], k).sum(1)  # (54, k)
        return round(float((counts >= 0.05 * n).sum(1).double().mean()), 3)

    small = (p[:, :, cols.index("size")] == shapes.ATTRIBUTES["size"].index("small")).double().mean(1)  # (54,)
    shape_of = torch.tensor([shapes.SHAPES.index(a["shape"]) for a in combos])
    area = shapes.object_area(imgs, [a["background"] for a in combos for _ in range(n)]).view(len(combos), n)
    ref = shapes.size_reference(imgs.shape[-1])
    lo, hi = (torch.tensor([ref[a["shape"]][j] for a in combos])[:, None] for j in (0, 1))  # (54, 1) each
    large = (area > (lo + hi) / 2).double().mean(1)  # (54,)
    medium = (area > lo + (hi - lo) / 3) & (area < hi - (hi - lo) / 3)  # (54, n)
    return {"captions": len(combos), "n": n, "template": shapes.DIVERSITY_TEMPLATE,
            "positions_covered_mean": covered("position"), "sizes_covered_mean": covered("size"),
            "size_balance_mean": round(float((2 * torch.minimum(small, 1 - small)).mean()), 3),
            "small_share": {s: round(float(small[shape_of == i].mean()), 3) for i, s in enumerate(shapes.SHAPES)},
            "size_balance_area": round(float((2 * torch.minimum(large, 1 - large)).mean()), 3),
            "large_share_area": {s: round(float(large[shape_of == i].mean()), 3) for i, s in enumerate(shapes.SHAPES)},
            "medium_share_area": round(float(medium.double().mean()), 3)}


def size_split_text(pc: dict[str, Any]) -> str:
    """``open_caption_spread``'s size split as printed by ``gankit eval`` and the benchmarks: by the
    classifier, then by object area."""
    return (f"size balance {pc['size_balance_mean']:.3f} (1 = half small; ~0.87 by noise alone), drawn small: "
            + ", ".join(f"{k}s {v:.0%}" for k, v in pc["small_share"].items())
            + f"; by object area: size balance {pc['size_balance_area']:.3f}, drawn large "
            + ", ".join(f"{k}s {v:.0%}" for k, v in pc["large_share_area"].items())
            + f", between the sizes {pc['medium_share_area']:.0%}")


def caption_accuracy(recipe: Any, modules: dict[str, nn.Module], seed: int = 0, repeats: int = 2,
                     diversity_n: int = 200, cache: Path | None = None, generate: Any = None,
                     keep_images: bool = False, open_n: int = 40) -> dict[str, Any]:
    """Attribute accuracy of a text-to-image ``recipe`` sampling with ``modules`` (a loaded export's,
    or the training EMA copies, in eval mode) on held-out-template captions.

    Latents have ``recipe.latent_dim`` components (default ``cfg.z_dim``); ``generate`` (default
    ``recipe.generate``) maps (modules, inputs) to images, e.g. a view of one stage of StackGAN.
    ``keep_images``: the held-out-caption images are returned under ``images`` (float, CPU).
    ``diversity_n=0`` skips the diversity block (no ``diversity`` key), e.g. for a baseline whose
    accuracies alone are compared.
    """
    from gankit.data import shapes

    clf, record = load_classifier(cache)
    generate = generate or recipe.generate
    dim = getattr(recipe, "latent_dim", None) or recipe.cfg.z_dim
    attrs = shapes.all_combinations(repeats)  # (540 * repeats, 5)
    caps, mentioned = shapes.held_out_captions(attrs, seed)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(caps), dim, generator=gen)
    fake = torch.cat([generate(modules, recipe.inputs_for(caps[i : i + 500], z[i : i + 500])).cpu()
                      for i in range(0, len(caps), 500)])
    pred = predict(clf, fake)
    out: dict[str, Any] = {}
    right_all = torch.ones(len(caps), dtype=torch.bool)
    for j, a in enumerate(shapes.ATTRIBUTES):
        stated = torch.tensor([a in m for m in mentioned])
        hit = pred[:, j] == attrs[:, j]
        right_all &= hit | ~stated
        if stated.any():
            out[f"{a}_acc"] = float(hit[stated].double().mean())
    out["all_acc"] = float(right_all.double().mean())

    if diversity_n:  # one caption, size and position left open; and every open caption (open_n samples)
        div_attrs = {"colour": "red", "shape": "circle", "background": "black"}
        div_caption = shapes.caption(div_attrs, shapes.DIVERSITY_TEMPLATE)
        zd = torch.randn(diversity_n, dim, generator=gen)
        imgs = generate(modules, recipe.inputs_for([div_caption] * diversity_n, zd)).cpu()
        p = predict(clf, imgs)
        cols = list(shapes.ATTRIBUTES)
        share = {a: [round(float((p[:, cols.index(a)] == i).double().mean()), 3) for i in range(len(v))]
                 for a, v in shapes.ATTRIBUTES.items() if a in ("size", "position")}
        out["diversity"] = {
            "caption": div_caption, "n": diversity_n,
            "position_share": dict(zip(shapes.POSITIONS, share["position"])),
            "size_share": dict(zip(shapes.SIZES, share["size"])),
            "positions_covered": sum(s >= 0.05 for s in share["position"]),
            "sizes_covered": sum(s >= 0.05 for s in share["size"]),
            "colour_acc": float((p[:, 0] == list(shapes.COLOURS).index("red")).double().mean()),
            "shape_acc": float((p[:, 1] == shapes.SHAPES.index("circle")).double().mean()),
            "pixel_std": round(float(imgs.std(0).mean()), 4),
            "per_caption": open_caption_spread(recipe, modules, clf, generate, dim, gen, open_n),
        }
    out["protocol"] = {
        "classifier": VERSION, "classifier_held_out_accuracy": record["held_out_accuracy"],
        "captions": len(caps), "templates": "held-out (never used for training captions)",
        "held_out_templates": list(shapes.HELD_OUT_TEMPLATES), "seed": seed,
    }
    if keep_images:
        out["images"] = fake
    return out
