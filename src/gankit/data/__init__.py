"""Datasets for gankit: built-ins that ship with installed wheels and ``--data PATH`` layouts.

Everything is loaded fully into memory at start-up, offline: nothing is ever downloaded.

>>> ds = load_dataset("mnist", size=32)        # doctest: +SKIP
>>> ds.x.shape, ds.x.dtype                        # doctest: +SKIP
(torch.Size([5000, 1, 32, 32]), torch.uint8)
"""

from __future__ import annotations

import os
from pathlib import Path

from gankit.data.builtin import BUILTIN, load_builtin, toy_mixture
from gankit.data.dataset import Dataset, check_options
from gankit.data.disk import LAYOUT_HELP, load_path
from gankit.errors import UsageError

__all__ = ["BUILTIN", "Dataset", "describe_datasets", "load_dataset", "toy_mixture"]


def load_dataset(spec: str, *, channels: int | None = None, size: int | None = None, seed: int = 0) -> Dataset:
    """Load a built-in dataset by name, or the dataset at a filesystem path.

    A built-in name wins over a same-named folder in the working directory; write ``./mnist``
    to mean the folder. ``channels`` (1 or 3) and ``size`` (pixels per side) apply to images
    only; ``seed`` only to the toy point mixtures. Raises :class:`~gankit.errors.UsageError` for
    an unknown name and :class:`~gankit.errors.DataError` for unusable data.
    """
    check_options(channels, size)
    spec = os.fspath(spec)
    if spec in BUILTIN:
        return load_builtin(spec, channels=channels, size=size, seed=seed)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"unknown dataset {spec!r}: not a built-in ({', '.join(BUILTIN)}) and no such path")
    return load_path(spec, path, channels=channels, size=size)


def describe_datasets() -> str:
    """Human-readable list of the built-ins and on-disk layouts (``gankit datasets``)."""
    lines = ["Built-in datasets (--data NAME; nothing is downloaded):"]
    width = max(map(len, BUILTIN))
    lines += [f"  {name:<{width}}  {text}" for name, text in BUILTIN.items()]
    lines += ["", "On-disk layouts (--data PATH; detected in this order: unpaired, idx, CIFAR-10, captioned layouts, image folder):"]
    for layout, what, example in LAYOUT_HELP:
        lines += [f"  {layout}: {what}", f"      e.g. {example}"]
    lines += ["", "Images load as uint8; --channels 1|3 converts, --size N pads (small even growth, "
              "e.g. MNIST 28->32) or resizes; image folders default to 64x64 centre crops."]
    return "\n".join(lines)
