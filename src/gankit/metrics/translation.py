"""Scores for unpaired translation (CycleGAN) on held-out images of both domains.

- ``cycle_ABA`` / ``cycle_BAB``: mean |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b| per pixel and
  channel, images in [-1, 1] (0 = perfect reconstruction, 2 = the largest possible error).
- When the data carries evaluation-only digit labels (``mnist2mnistm``), the analogue of the
  paper's FCN score (Sec. 5.1.1: a classifier of the *target* domain reads the translated image;
  it scores high only if the content survived): gankit trains a classifier on domain B's
  training images and labels (:func:`load_domain_classifier`; deterministic, cached), and reports
  ``content_<B>``: its accuracy on G_AB(a) against a's labels, for held-out a;
  ``fid_<B>``: FID between G_AB(held-out A) and held-out B in that classifier's 128-d features.
  ``<B>`` is the target domain's name (``mnistm``). The protocol also holds the classifier's
  held-out accuracy on real B (the ceiling of ``content``) and the same two scores for the
  untranslated A images (the floor a translator has to beat).

Training never sees the labels: the engine hands recipes images only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.engine.checkpoint import atomic_write
from gankit.metrics import scores
from gankit.metrics.lenet import LeNet, cache_dir, prepare_rgb

log = logging.getLogger(__name__)

VERSION = "domain-lenet-v2"  # bump when the architecture or training recipe changes
EPOCHS = 10
BATCH = 64


def _new(seed: int) -> LeNet:
    with torch.random.fork_rng(devices=[]):  # never disturb the training RNG
        torch.manual_seed(seed)
        return LeNet(in_channels=3)


@torch.no_grad()
def _run(model: LeNet, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
    """-> (features (N, 128), predicted classes (N,))."""
    model.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch):
        f = model.features(prepare_rgb(images[i : i + batch].cpu()))
        feats.append(f)
        preds.append(model.fc2(f).argmax(1))
    return torch.cat(feats), torch.cat(preds)


def train_domain_classifier(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, seed: int = 0) -> tuple[LeNet, dict[str, Any]]:
    """A LeNet on RGB 32x32 images (Adam 1e-3 with cosine decay, ±2 px shifts, fixed epochs;
    deterministic). On mnist2mnistm (8,000 training images): 96.4% on held-out MNIST-M. With one
    photo patch per digit (2,000 images) it reached 93.6% (30 epochs; random channel orders or
    colour inversion as augmentation, or a wider BatchNorm CNN, did no better)."""
    gen = torch.Generator().manual_seed(seed)
    model = _new(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xs = prepare_rgb(x)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # callers may evaluate under no_grad
        for _ in range(EPOCHS):
            model.train()
            perm = torch.randperm(len(xs), generator=gen)
            for i in range(0, len(perm) - BATCH + 1, BATCH):
                ids = perm[i : i + BATCH]
                dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
                loss = F.cross_entropy(model(torch.roll(xs[ids], shifts=(dy, dx), dims=(2, 3))), y[ids])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    _, pred = _run(model, x_test)
    _, pred_train = _run(model, x)
    record = {
        "version": VERSION,
        "held_out_accuracy": float((pred == y_test).double().mean()),
        "train_accuracy": float((pred_train == y).double().mean()),
        "train_images": len(x),
        "held_out_images": len(x_test),
        "epochs": EPOCHS,
        "lr": "Adam 1e-3, cosine to 0",
        "seed": seed,
    }
    return model.eval(), record


def load_domain_classifier(data: Any, domain: str = "B", cache: Path | None = None) -> tuple[LeNet, dict[str, Any]]:
    """The classifier of ``domain`` of ``data`` (training rows + labels; accuracy on its held-out
    rows), cached in the gankit cache by (version, data fingerprint, domain)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    folder = (cache or cache_dir()) / "domain-classifiers"
    stem = f"{VERSION}-{data.fingerprint}-{domain}"
    weights, meta = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    if weights.is_file() and meta.is_file():
        try:
            model = _new(0)
            model.load_state_dict(load_file(weights))
            return model.eval(), json.loads(meta.read_text())
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:
            log.warning("rebuilding the domain classifier cache (%s)", str(err).splitlines()[0][:120])
    log.info("training a digit classifier on domain %s of %s for evaluation (once; cached in %s)", domain, data.name, folder)
    model, record = train_domain_classifier(data.rows(domain), data.row_labels(domain),
                                            data.rows(domain, held_out=True), data.row_labels(domain, held_out=True))
    record["data_fingerprint"] = data.fingerprint
    folder.mkdir(parents=True, exist_ok=True)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write(weights, lambda f: f.write(blob))
    atomic_write(meta, lambda f: f.write(json.dumps(record, indent=2).encode()))
    return model, record


def _fid(real: Tensor, fake: Tensor) -> float:
    rs, fs = scores.FeatureStats.empty(real.shape[1]), scores.FeatureStats.empty(fake.shape[1])
    rs.update(real)
    fs.update(fake)
    return scores.fid(rs, fs)


@torch.no_grad()
def evaluate_translation(translate: Callable[[Tensor, str], Tensor], data: Any, n: int | None = None,
                         cache: Path | None = None, batch: int = 100) -> dict[str, Any]:
    """Scores of a translator ``translate(x in [-1, 1], "AtoB" | "BtoA")`` on the first ``n`` (all
    if None) held-out images of each domain of ``data`` (training images where none are held out)."""

    def run(x: Tensor, direction: str) -> Tensor:
        return torch.cat([translate(x[i : i + batch], direction).float().cpu() for i in range(0, len(x), batch)])

    a = data.rows("A", held_out=True)[:n].float().mul(2.0 / 255.0).sub(1.0)  # (n, C, H, W) in [-1, 1]
    b = data.rows("B", held_out=True)[:n].float().mul(2.0 / 255.0).sub(1.0)
    fake_b, fake_a = run(a, "AtoB"), run(b, "BtoA")
    out: dict[str, Any] = {
        "cycle_ABA": float((run(fake_b, "BtoA") - a).abs().mean()),
        "cycle_BAB": float((run(fake_a, "AtoB") - b).abs().mean()),
    }
    protocol: dict[str, Any] = {"n_A": len(a), "n_B": len(b), "data": data.name, "data_fingerprint": data.fingerprint,
                                "held_out": sorted(data.held_out), "cycle": "mean |x - x_rec|, images in [-1, 1]"}
    labels_a = data.row_labels("A", held_out=True)
    if labels_a is not None and data.row_labels("B") is not None:
        name = data.info.get("domain_names", {}).get("B", "B")
        model, record = load_domain_classifier(data, "B", cache)
        labels_a = labels_a[: len(a)]
        real_feats, _ = _run(model, b)
        fake_feats, fake_pred = _run(model, fake_b)
        plain_feats, plain_pred = _run(model, a)
        out[f"content_{name}"] = float((fake_pred == labels_a).double().mean())
        out[f"fid_{name}"] = _fid(real_feats, fake_feats)
        protocol.update({
            "features": VERSION,
            "features_held_out_accuracy": record["held_out_accuracy"],
            "content": f"accuracy of a classifier of domain B ({name}) on G_AB(held-out A) vs A's labels",
            f"untranslated_content_{name}": float((plain_pred == labels_a).double().mean()),
            f"untranslated_fid_{name}": _fid(real_feats, plain_feats),
        })
    out["protocol"] = protocol
    return out
