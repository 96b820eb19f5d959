"""The in-memory :class:`Dataset` every loader returns, plus the image-shaping helpers they share.

Images are kept as uint8 ``(N, C, H, W)`` (4x smaller than float32, so even CIFAR-10 fits in a
laptop's memory); models normalise per batch. Toy point clouds are float32 ``(N, 2)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from gankit.errors import UsageError

# A typo such as ``--size 6400`` would otherwise allocate tens of GB before failing.
MAX_SIZE = 4096


@dataclass
class Dataset:
    """A fully loaded dataset.

    ``x`` is uint8 ``(N, C, H, W)`` for ``kind == 'image'`` and float32 ``(N, 2)`` for
    ``kind == 'points'``; ``labels`` is int64 ``(N,)`` when the source has class labels.
    ``info`` is JSON-serialisable (it is written into run metadata).

    Optional extras (empty for plain image/point data):

    - ``domains``: several named training tensors (e.g. CycleGAN's unpaired domains A and B), each
      name mapped to its rows ``[start, stop)`` of ``x``; ``held_out`` maps a domain name to
      evaluation-only rows of ``x`` (never sampled for training).
    - ``captions``: per item, its caption strings (captioned data such as ``shapes``, CUB).
    - ``attributes``: int64 ``(N, A)`` ground-truth attributes (``shapes``; names in ``info``).
    - ``aligned``: tensors whose first dimension is aligned with ``x``; the engine's sampler
      yields them with each batch (e.g. caption embeddings a recipe conditions on).
    - ``frozen``: state dicts of modules a recipe builds from this data and keeps frozen (the
      text encoder that produced ``aligned`` embeddings); the engine loads them after ``build``.
    """

    name: str
    kind: str
    x: torch.Tensor = field(repr=False)
    labels: torch.Tensor | None = field(repr=False)
    info: dict
    warnings: list[str] = field(default_factory=list)
    domains: dict[str, tuple[int, int]] = field(default_factory=dict)
    held_out: dict[str, tuple[int, int]] = field(default_factory=dict)
    captions: list[list[str]] | None = field(default=None, repr=False)
    attributes: torch.Tensor | None = field(default=None, repr=False)
    aligned: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    frozen: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Other modules construct Datasets too; fail at construction, not deep inside training.
        if self.kind == "image":
            if self.x.dtype != torch.uint8 or self.x.dim() != 4:
                raise ValueError(f"image Dataset needs uint8 (N,C,H,W), got {self.x.dtype} {tuple(self.x.shape)}")
        elif self.kind == "points":
            if self.x.dtype != torch.float32 or self.x.dim() != 2 or self.x.shape[1] != 2:
                raise ValueError(f"points Dataset needs float32 (N,2), got {self.x.dtype} {tuple(self.x.shape)}")
        else:
            raise ValueError(f"Dataset kind must be 'image' or 'points', got {self.kind!r}")
        if self.labels is not None and (self.labels.dtype != torch.int64 or self.labels.shape != self.x.shape[:1]):
            got = f"{self.labels.dtype} {tuple(self.labels.shape)}"
            raise ValueError(f"labels must be int64 ({self.x.shape[0]},), got {got}")
        for what, ranges in (("domains", self.domains), ("held_out", self.held_out)):
            for key, (start, stop) in ranges.items():
                if not 0 <= start < stop <= self.x.shape[0]:
                    raise ValueError(f"{what}[{key!r}] = ({start}, {stop}) is not a non-empty row range of x")
        if set(self.held_out) - set(self.domains):
            raise ValueError(f"held_out names {sorted(set(self.held_out) - set(self.domains))} are not domains")
        n = self.x.shape[0]
        if self.captions is not None and len(self.captions) != n:
            raise ValueError(f"captions must hold one list per item ({n}), got {len(self.captions)}")
        for key, t in self.aligned.items():
            if t.shape[:1] != (n,):
                raise ValueError(f"aligned tensor {key!r} must have {n} rows, got {tuple(t.shape)}")
        self.x = self.x.contiguous()

    def rows(self, domain: str, held_out: bool = False) -> torch.Tensor:
        """The images of ``domain`` (a view of ``x``); ``held_out=True``: its evaluation rows,
        or its training rows when it has none."""
        start, stop = (self.held_out.get(domain) if held_out else None) or self.domains[domain]
        return self.x[start:stop]

    def row_labels(self, domain: str, held_out: bool = False) -> torch.Tensor | None:
        """Labels aligned with :meth:`rows` (None without labels)."""
        if self.labels is None:
            return None
        start, stop = (self.held_out.get(domain) if held_out else None) or self.domains[domain]
        return self.labels[start:stop]

    @property
    def fingerprint(self) -> str:
        """First 16 hex chars of sha256 over dtype, shape and the bytes of ``x``.

        Independent of ``name``, so the same data reached by two paths shares cached statistics.
        """
        h = hashlib.sha256(f"{self.x.dtype}|{tuple(self.x.shape)}|".encode())
        h.update(self.x.cpu().contiguous().numpy())
        return h.hexdigest()[:16]


def check_options(channels: int | None, size: int | None) -> None:
    """Reject ``channels``/``size`` values no loader can honour (raises :class:`UsageError`)."""
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise UsageError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_SIZE):
        raise UsageError(f"size must be an integer from 1 to {MAX_SIZE} (pixels per side), got {size!r}")


def to_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert uint8 ``(N, C, H, W)`` images to ``channels`` (None keeps them as they are).

    Gray -> RGB repeats the plane; RGB -> gray uses ITU-R 601 luma with the same integer
    arithmetic as PIL's ``convert('L')``, so tensor and per-file conversions agree exactly.
    """
    c = x.shape[1]
    if channels is None or channels == c:
        return x
    if c == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    if c == 3 and channels == 1:
        r, g, b = (x[:, i].to(torch.int32) for i in range(3))
        luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        return luma.to(torch.uint8).unsqueeze(1)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def fit_image(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` and centre-crop to ``size`` x ``size``.

    Bilinear with PIL's support scaling, i.e. antialiased when shrinking.
    """
    w, h = img.size
    if (w, h) == (size, size):
        return img
    # Crop the centred largest region with the target aspect first, then resize only that box.
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def fit_size(x: torch.Tensor, size: int | None) -> tuple[torch.Tensor, str]:
    """Bring uint8 ``(N, C, H, W)`` images to ``size`` x ``size``; return them and a note ('' if unchanged).

    Square images grown by a small even margin (at most a quarter of the side, e.g. MNIST
    28 -> 32) are zero-padded, the DCGAN convention that keeps strokes crisp; anything else goes
    through :func:`fit_image`. ``size=None`` keeps square images and centre-crops others to square,
    because every model here needs square input.
    """
    n, c, h, w = x.shape
    if size is None:
        if h == w:
            return x, ""
        size = min(h, w)
    if (h, w) == (size, size):
        return x, ""
    grow = size - h
    if h == w and grow > 0 and grow % 2 == 0 and grow <= h // 4:
        p = grow // 2
        return torch.nn.functional.pad(x, (p, p, p, p)), f"zero-padded {h}->{size}"
    arr = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        # (H, W) uint8 opens as 'L', (H, W, 3) as 'RGB'.
        img = Image.fromarray(arr[i, :, :, 0] if c == 1 else arr[i])
        out[i] = np.asarray(fit_image(img, size)).reshape(size, size, c)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), f"resized {h}x{w}->{size}x{size}"


def image_dataset(
    name: str,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    source: str,
    *,
    channels: int | None,
    size: int | None,
    info: dict | None = None,
    warnings: list[str] | None = None,
    domains: dict[str, tuple[int, int]] | None = None,
    held_out: dict[str, tuple[int, int]] | None = None,
) -> Dataset:
    """Apply ``size``/``channels`` to native uint8 images and wrap them in a :class:`Dataset`."""
    native = tuple(x.shape[1:])
    warnings = list(warnings or [])
    x, note = fit_size(x, size)
    if size is None and native[1] != native[2]:
        warnings.append(f"non-square {native[1]}x{native[2]} images centre-cropped to {x.shape[2]}x{x.shape[3]}; "
                        "pass a size to choose another")
    x = to_channels(x, channels)
    if note:
        source = f"{source}; {note}"
    if native[0] != x.shape[1]:
        source = f"{source}; {native[0]}->{x.shape[1]} channels"
    full_info = {"source": source, "n": int(x.shape[0]), "channels": int(x.shape[1]), "size": int(x.shape[2])}
    full_info.update(info or {})
    return Dataset(name=name, kind="image", x=x, labels=labels, info=full_info, warnings=warnings,
                   domains=dict(domains or {}), held_out=dict(held_out or {}))
