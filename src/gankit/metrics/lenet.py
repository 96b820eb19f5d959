"""``lenet``: a small digit classifier gankit trains itself, used as the feature extractor for
``fid_lenet`` / ``kid_lenet`` / ``is_lenet`` / ``pr_lenet`` on MNIST-like data.

Architecture: LeNet-5 style (LeCun et al. 1998) widened for ReLU training: conv5x5(32) → pool →
conv5x5(64) → pool → fc(128) → fc(10), on 1x32x32 inputs in [-1, 1] (28 px digits padded to 32
as gankit's DCGAN sees them). Features are the 128-d penultimate activations; class
probabilities (for the Inception-Score analogue and class coverage) are the softmax outputs.

Training is deterministic (seed 0, one thread's worth of ops order, fixed epochs) on 4,500 of the
5,000 built-in MNIST digits with ±2 px random shifts; the other 500 (50 per class) measure the
held-out accuracy, which is stored beside the weights. Weights are cached as safetensors + JSON
in ``$GANKIT_CACHE`` (default ``$XDG_CACHE_HOME/gankit`` or ``~/.cache/gankit``); nothing is
downloaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.engine.checkpoint import atomic_write

log = logging.getLogger(__name__)

VERSION = "lenet-v1"  # bump when the architecture or training recipe changes
EPOCHS = 8
BATCH = 64
HELD_OUT_PER_CLASS = 50


class LeNet(nn.Module):
    """x (B, in_channels, 32, 32) in [-1, 1] -> logits (B, 10); ``features`` gives the (B, 128) layer."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5)  # (B, 32, 28, 28) -> pool (B, 32, 14, 14)
        self.conv2 = nn.Conv2d(32, 64, 5)  # (B, 64, 10, 10) -> pool (B, 64, 5, 5)
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))  # (B, 128)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.features(x))


def _new_lenet(seed: int) -> LeNet:
    """A LeNet initialised from ``seed`` without touching the caller's global RNG (evaluation
    during training must not change what training draws next)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LeNet()


def _unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float [-1, 1]."""
    return images.float().mul(2.0 / 255.0).sub(1.0) if images.dtype == torch.uint8 else images.float()


def _to_32(x: Tensor) -> Tensor:
    if x.shape[-1] == 32:
        return x
    return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=x.shape[-1] > 32)


def prepare(images: Tensor) -> Tensor:
    """Any (N, C, H, W) uint8 or [-1, 1] float images -> float (N, 1, 32, 32) in [-1, 1]."""
    x = _unit_range(images)
    if x.shape[1] == 3:  # ITU-R 601 luma, as for gray conversion at load time
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    if x.shape[-1] == 28:  # MNIST's 28 px: padded as LeNet-5's 32 px input, not stretched
        return F.pad(x, (2, 2, 2, 2), value=-1.0)
    return _to_32(x)


def prepare_rgb(images: Tensor) -> Tensor:
    """(N, C, H, W) uint8 or [-1, 1] float, C 1 or 3 -> float (N, 3, 32, 32) in [-1, 1] (gray repeated):
    the input of gankit's small RGB classifiers (shapes attributes, translation domains)."""
    x = _unit_range(images)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return _to_32(x)


def cache_dir() -> Path:
    if os.environ.get("GANKIT_CACHE"):
        return Path(os.environ["GANKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gankit"


def _split(labels: Tensor) -> tuple[Tensor, Tensor]:
    held = torch.cat([torch.nonzero(labels == c).flatten()[:HELD_OUT_PER_CLASS] for c in range(10)])
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


@torch.no_grad()
def accuracy(model: LeNet, x: Tensor, y: Tensor) -> float:
    model.eval()
    pred = torch.cat([model(prepare(x[i : i + 500])).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).double().mean())


def train_lenet(seed: int = 0) -> tuple[LeNet, dict[str, Any]]:
    """Train on the built-in digits; returns the model and its record (held-out accuracy, ...)."""
    from gankit.data import load_dataset

    ds = load_dataset("mnist")
    train_idx, held_idx = _split(ds.labels)
    gen = torch.Generator().manual_seed(seed)
    model = _new_lenet(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all = prepare(ds.x)  # (N, 1, 32, 32)
    for _ in range(EPOCHS):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for i in range(0, len(perm) - BATCH + 1, BATCH):
            ids = perm[i : i + BATCH]
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()  # one shift per batch
            xb = torch.roll(x_all[ids], shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), ds.labels[ids])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    record = {
        "version": VERSION,
        "held_out_accuracy": accuracy(model, ds.x[held_idx], ds.labels[held_idx]),
        "train_accuracy": accuracy(model, ds.x[train_idx], ds.labels[train_idx]),
        "train_images": len(train_idx),
        "held_out_images": len(held_idx),
        "epochs": EPOCHS,
        "seed": seed,
        "data_fingerprint": ds.fingerprint,
    }
    return model.eval(), record


def load_lenet(cache: Path | None = None) -> tuple[LeNet, dict[str, Any]]:
    """The cached classifier, training it first (tens of seconds on 2 cores) if absent."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    folder = cache or cache_dir()
    weights, meta = folder / f"{VERSION}.safetensors", folder / f"{VERSION}.json"
    if weights.is_file() and meta.is_file():
        try:
            model = _new_lenet(0)
            model.load_state_dict(load_file(weights))
            return model.eval(), json.loads(meta.read_text())
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # a damaged cache is rebuilt, not fatal
            log.warning("rebuilding the lenet feature extractor cache (%s)", str(err).splitlines()[0][:120])
    log.info("training the lenet feature extractor on the built-in digits (once; cached in %s)", folder)
    model, record = train_lenet()
    folder.mkdir(parents=True, exist_ok=True)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write(weights, lambda f: f.write(blob))
    atomic_write(meta, lambda f: f.write(json.dumps(record, indent=2).encode()))
    return model, record
