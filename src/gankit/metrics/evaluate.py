"""One feature pass, every metric: FID, KID, IS analogue, precision/recall, class coverage.

Protocol (reported with every result so numbers can be compared): features from gankit's
``lenet`` (see ``gankit.metrics.lenet``; its version and held-out accuracy are part of the
protocol), all real images of the dataset against ``n`` generated ones, KID over 100 subsets of
up to 1,000, IS over 10 splits, precision/recall with k = 3. Real-data features are cached per
(dataset fingerprint, extractor version) in the gankit cache.

Class coverage: the number of classes the lenet predicts for at least 1% / K of the samples
(i.e. a tenth of a uniform share), out of K = 10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import UsageError
from gankit.metrics import scores
from gankit.metrics.lenet import VERSION, cache_dir, load_lenet, prepare

METRICS = ("fid", "kid", "is", "pr", "classes")


@torch.no_grad()
def extract(model: torch.nn.Module, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
    """(N, C, H, W) images -> (features (N, 128) float32, class probabilities (N, 10))."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        f = model.features(prepare(images[i : i + batch]))
        feats.append(f)
        probs.append(torch.softmax(model.fc2(f), dim=1))
    return torch.cat(feats), torch.cat(probs)


def real_features(model: torch.nn.Module, data: Any, cache: Path | None = None) -> Tensor:
    """Features of every real image, cached as safetensors by (fingerprint, extractor version)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    from gankit.engine.checkpoint import atomic_write

    path = (cache or cache_dir()) / "stats" / f"{VERSION}-{data.fingerprint}.safetensors"
    if path.is_file():
        try:
            return load_file(path)["features"]
        except (OSError, SafetensorError, KeyError):
            pass  # rebuilt below
    feats, _ = extract(model, data.x)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = save({"features": feats.contiguous()})
    atomic_write(path, lambda f: f.write(blob))
    return feats


def evaluate(fake: Tensor, data: Any, metrics: tuple[str, ...] = METRICS, seed: int = 0,
             cache: Path | None = None) -> dict[str, Any]:
    """Scores of ``fake`` images (uint8 or [-1, 1] float, (N, C, H, W)) against ``data``."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric {unknown[0]!r} (valid: {', '.join(METRICS)})")
    if data.kind != "image":
        raise UsageError(f"--features lenet needs image data, got {data.kind} data ({data.name})")
    if len(fake) < 10:
        raise UsageError(f"need at least 10 generated images to evaluate, got {len(fake)}")
    model, record = load_lenet(cache)
    real = real_features(model, data, cache)
    feats, probs = extract(model, fake)
    out: dict[str, Any] = {}
    if "fid" in metrics:
        rs, fs = scores.FeatureStats.empty(real.shape[1]), scores.FeatureStats.empty(feats.shape[1])
        rs.update(real)
        fs.update(feats)
        out["fid_lenet"] = scores.fid(rs, fs)
    if "kid" in metrics:
        out["kid_lenet"], out["kid_lenet_std"] = scores.kid(real, feats, generator=torch.Generator().manual_seed(seed))
    if "is" in metrics:
        # splits must not follow the input order (an npz sorted by class would give IS ~ 1)
        perm = torch.randperm(len(probs), generator=torch.Generator().manual_seed(seed))
        out["is_lenet"], out["is_lenet_std"] = scores.inception_score(probs[perm])
    if "pr" in metrics:
        out["precision_lenet"], out["recall_lenet"] = scores.precision_recall(real, feats, k=3)
    if "classes" in metrics:
        share = torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)
        out["classes_lenet"] = int((share >= 0.01).sum())
    out["protocol"] = {
        "features": VERSION,
        "features_held_out_accuracy": record["held_out_accuracy"],
        "n_fake": len(fake),
        "n_real": len(real),
        "data": data.name,
        "data_fingerprint": data.fingerprint,
        "kid": "poly3, 100 subsets of min(1000, n)",
        "is_splits": 10,
        "pr_k": 3,
    }
    return out
