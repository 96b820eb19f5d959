"""One feature pass, every metric: FID, KID, IS (analogue), precision/recall, class coverage.

Protocol (reported with every result so numbers can be compared): features from one of two
extractors, named in every metric key (``fid_lenet``, ``fid_inception``, ...):

- ``lenet`` (default): gankit's own digit classifier (see ``gankit.metrics.lenet``; its version
  and held-out accuracy are part of the protocol), for MNIST-like data; its IS is an analogue
  over 10 digit classes.
- ``inception``: the standard FID InceptionV3 (see ``gankit.metrics.inception``) from a local
  weights file; the protocol names the file and the first 16 hex digits of its sha256.

All real images of the dataset are scored against ``n`` generated ones, KID over 100 subsets of
up to 1,000, IS over 10 splits, precision/recall with k = 3. Real-data features are cached per
(extractor and version [+ weights sha256 for inception], dataset fingerprint) in the gankit cache.

Class coverage (lenet only): the number of classes the lenet predicts for at least 1% / K of the
samples (i.e. a tenth of a uniform share), out of K = 10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import UsageError
from gankit.metrics import scores
from gankit.metrics.lenet import VERSION, cache_dir, load_lenet, prepare

METRICS = ("fid", "kid", "is", "pr", "classes")
FEATURES = ("lenet", "inception")
LENET_ONLY = ("classes",)


@torch.no_grad()
def extract(model: torch.nn.Module, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
    """(N, C, H, W) images -> lenet (features (N, 128) float32, class probabilities (N, 10))."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        f = model.features(prepare(images[i : i + batch]))
        feats.append(f)
        probs.append(torch.softmax(model.fc2(f), dim=1))
    return torch.cat(feats), torch.cat(probs)


@dataclass
class _Extractor:
    """What ``evaluate`` needs from a feature extractor, whichever it is."""

    name: str  # the metric-key suffix: fid_<name>
    tag: str  # cache-file prefix: extractor name + version (+ weights hash)
    run: Callable[[Tensor], tuple[Tensor, Tensor]]  # images -> (features, class probabilities)
    protocol: dict[str, Any] = field(default_factory=dict)


def _lenet(cache: Path | None) -> _Extractor:
    model, record = load_lenet(cache)
    return _Extractor("lenet", VERSION, lambda x: extract(model, x),
                      {"features": VERSION, "features_held_out_accuracy": record["held_out_accuracy"]})


def _inception(weights: str | Path | None) -> _Extractor:
    from gankit.metrics import inception

    model, record = inception.load_inception(weights)
    sha = record["weights_sha256"][:16]
    return _Extractor("inception", f"{inception.VERSION}-{sha}", lambda x: inception.extract(model, x), {
        "features": inception.VERSION,
        "features_weights": record["weights"],
        "features_weights_sha256": sha,
        "features_preprocess": "gray->RGB, bilinear 299x299 (align_corners=False), [-1, 1]",
    })


def _real_features(ex: _Extractor, data: Any, cache: Path | None) -> Tensor:
    """Features of every real image, cached as safetensors by (extractor tag, fingerprint)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    from gankit.engine.checkpoint import atomic_write

    path = (cache or cache_dir()) / "stats" / f"{ex.tag}-{data.fingerprint}.safetensors"
    if path.is_file():
        try:
            return load_file(path)["features"]
        except (OSError, SafetensorError, KeyError):
            pass  # rebuilt below
    feats, _ = ex.run(data.x)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = save({"features": feats.contiguous()})
    atomic_write(path, lambda f: f.write(blob))
    return feats


def real_features(model: torch.nn.Module, data: Any, cache: Path | None = None) -> Tensor:
    """lenet features of every real image, cached as safetensors by (fingerprint, lenet version)."""
    return _real_features(_Extractor("lenet", VERSION, lambda x: extract(model, x)), data, cache)


def resolve_metrics(features: str, metrics: tuple[str, ...] | None) -> tuple[str, ...]:
    """The metrics to compute (``None``: all ``features`` supports), or a one-line UsageError."""
    if features not in FEATURES:
        raise UsageError(f"unknown --features {features!r} (available: {', '.join(FEATURES)})")
    if metrics is None:
        return METRICS if features == "lenet" else tuple(m for m in METRICS if m not in LENET_ONLY)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric {unknown[0]!r} (valid: {', '.join(METRICS)})")
    if features != "lenet" and any(m in LENET_ONLY for m in metrics):
        raise UsageError(f"metric 'classes' (digit-class coverage) needs --features lenet, not {features}")
    return tuple(metrics)


def evaluate(fake: Tensor, data: Any, metrics: tuple[str, ...] | None = None, seed: int = 0,
             cache: Path | None = None, features: str = "lenet",
             inception_weights: str | Path | None = None) -> dict[str, Any]:
    """Scores of ``fake`` images (uint8 or [-1, 1] float, (N, C, H, W)) against ``data``.

    ``metrics`` defaults to every metric the extractor supports (``classes`` is lenet-only).
    ``inception_weights``: the weights file for ``features="inception"`` (else the env var, then
    the torch hub cache; see ``gankit.metrics.inception.find_weights``).
    """
    metrics = resolve_metrics(features, metrics)
    if data.kind != "image":
        raise UsageError(f"--features {features} needs image data, got {data.kind} data ({data.name})")
    if len(fake) < 10:
        raise UsageError(f"need at least 10 generated images to evaluate, got {len(fake)}")
    ex = _lenet(cache) if features == "lenet" else _inception(inception_weights)
    real = _real_features(ex, data, cache)
    feats, probs = ex.run(fake)
    name = ex.name
    out: dict[str, Any] = {}
    if "fid" in metrics:
        rs, fs = scores.FeatureStats.empty(real.shape[1]), scores.FeatureStats.empty(feats.shape[1])
        rs.update(real)
        fs.update(feats)
        out[f"fid_{name}"] = scores.fid(rs, fs)
    if "kid" in metrics:
        out[f"kid_{name}"], out[f"kid_{name}_std"] = scores.kid(real, feats, generator=torch.Generator().manual_seed(seed))
    if "is" in metrics:
        # splits must not follow the input order (an npz sorted by class would give IS ~ 1)
        perm = torch.randperm(len(probs), generator=torch.Generator().manual_seed(seed))
        out[f"is_{name}"], out[f"is_{name}_std"] = scores.inception_score(probs[perm])
    if "pr" in metrics:
        out[f"precision_{name}"], out[f"recall_{name}"] = scores.precision_recall(real, feats, k=3)
    if "classes" in metrics:
        share = torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)
        out["classes_lenet"] = int((share >= 0.01).sum())
    out["protocol"] = {
        **ex.protocol,
        "n_fake": len(fake),
        "n_real": len(real),
        "data": data.name,
        "data_fingerprint": data.fingerprint,
        "kid": "poly3, 100 subsets of min(1000, n)",
        "is_splits": 10,
        "pr_k": 3,
    }
    return out
