"""Captioned image datasets on disk, in the layouts Reed et al. 2016 published their captions in.

- CUB-200-2011: ``images/<class>/<file>.jpg`` with ``text_c10/<class>/<file>.txt`` (ten captions,
  one a line). When the dataset's ``images.txt`` and ``bounding_boxes.txt`` are present, each
  bird is cropped to its box enlarged 1.5x (StackGAN's preprocessing; a square crop around the box
  centre), which makes the bird fill the frame.
- Oxford-102 flowers: ``jpg/image_XXXXX.jpg`` with ``text_c10/class_XXXXX/image_XXXXX.txt``.
- A generic folder: each image has a same-named ``.txt`` beside it (``a.png`` + ``a.txt``), one
  caption per line; the class is the image itself.

Images are read with the robust image-folder reader (unreadable ones skipped and counted).
Mismatches — an image without a caption file, a caption file that is empty or not UTF-8 — are
skipped and counted; one warning line names the first offender. Captions are read as text, never
evaluated.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.data.dataset import Dataset, image_dataset
from gankit.errors import DataError

MAX_CAPTIONS = 10  # Reed's text_c10 files hold ten; more lines are ignored
MAX_CAPTION_BYTES = 1_000_000


def detect(root: Path) -> str | None:
    """'cub' | 'oxford' | 'paired' | None for a folder."""
    if (root / "text_c10").is_dir():
        if (root / "images").is_dir():
            return "cub"
        if (root / "jpg").is_dir():
            return "oxford"
    from gankit.data.disk import IMAGE_EXTS

    # a same-named .txt beside at least half of the images: a stray README.txt does not make a
    # plain image folder (where images without captions would be skipped) a captioned one
    images = paired = 0
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        stems = {os.path.splitext(f)[0] for f in files if f.endswith(".txt")}
        for f in files:
            if f.lower().endswith(IMAGE_EXTS) and not f.startswith("."):
                images += 1
                paired += os.path.splitext(f)[0] in stems
    return "paired" if paired and 2 * paired >= images else None


def read_captions(path: Path) -> list[str]:
    """Non-empty lines of a caption file; raises ``ValueError`` with the reason when unusable."""
    if not path.is_file():
        raise ValueError("no caption file")
    if path.stat().st_size > MAX_CAPTION_BYTES:
        raise ValueError("caption file larger than 1 MB")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("caption file is not UTF-8 text") from None
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line][:MAX_CAPTIONS]
    if not lines:
        raise ValueError("empty caption file")
    return lines


def _cub_boxes(root: Path) -> dict[str, tuple[float, float, float, float]]:
    ids, boxes = root / "images.txt", root / "bounding_boxes.txt"
    if not (ids.is_file() and boxes.is_file()):
        return {}
    try:
        names = dict(line.split(maxsplit=1) for line in ids.read_text().splitlines() if line.strip())
        out = {}
        for line in boxes.read_text().splitlines():
            if line.strip():
                i, x, y, w, h = line.split()
                out[names[i].strip()] = (float(x), float(y), float(w), float(h))
        return out
    except (ValueError, KeyError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{boxes}: cannot read CUB bounding boxes ({err}); remove it to skip cropping") from None


def _pairs(root: Path, layout: str) -> tuple[list[tuple[str, Path, str]], list[str]]:
    """(image path, caption path, class name) for every image, plus folders that could not be listed."""
    from gankit.data.disk import _list_images

    if layout == "cub":
        files, bad = _list_images(root / "images")
        out = []
        for f in files:
            rel = Path(f).relative_to(root / "images")
            out.append((f, (root / "text_c10" / rel).with_suffix(".txt"), rel.parts[0] if len(rel.parts) > 1 else ""))
        return out, bad
    if layout == "oxford":
        files, bad = _list_images(root / "jpg")
        where = {}
        for cls in sorted(p for p in (root / "text_c10").iterdir() if p.is_dir()):
            for t in cls.glob("*.txt"):
                where[t.stem] = (t, cls.name)
        out = []
        for f in files:
            t, cls = where.get(Path(f).stem, (Path(f).with_suffix(".txt"), ""))
            out.append((f, t, cls))
        return out, bad
    files, bad = _list_images(root)
    return [(f, Path(f).with_suffix(".txt"), "") for f in files], bad


def load_captioned(name: str, root: Path, layout: str, *, channels: int | None, size: int | None) -> Dataset:
    """Images + captions of ``root`` in ``layout``; mismatches skipped, counted and reported."""
    from gankit.data.disk import _UNREADABLE, DEFAULT_FOLDER_SIZE, _read_image, _reason, _Skip

    size = size or DEFAULT_FOLDER_SIZE
    pairs, bad_dirs = _pairs(root, layout)
    if not pairs:
        raise DataError(f"no images found in {root} ({layout} layout)")
    boxes = _cub_boxes(root) if layout == "cub" else {}
    out = np.empty((len(pairs), size, size, 3), dtype=np.uint8)
    captions, classes, skipped_img, mismatched = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for img_path, txt_path, cls in pairs:
            try:
                caps = read_captions(txt_path)
            except (ValueError, OSError) as err:
                mismatched.append(f"{img_path}: {err} ({txt_path})")
                continue
            rel = str(Path(img_path).relative_to(root / "images")) if layout == "cub" else ""
            try:
                out[len(captions)] = _read_image(img_path, size, box=boxes.get(rel))
            except _Skip as err:
                skipped_img.append(f"{img_path}: {err}")
                continue
            except _UNREADABLE as err:
                skipped_img.append(f"{img_path}: {_reason(err)}")
                continue
            captions.append(caps)
            classes.append(cls)
    n = len(captions)
    if n == 0:
        first = (mismatched or skipped_img)[0]
        raise DataError(f"no image with captions in {root} ({layout} layout; "
                        f"{len(mismatched)} without usable captions, {len(skipped_img)} unreadable; first: {first})")
    warns = []
    if mismatched:
        warns.append(f"{len(mismatched)} image{'s' if len(mismatched) > 1 else ''} without usable captions skipped "
                     f"(first: {mismatched[0]})")
    if skipped_img:
        warns.append(f"{len(skipped_img)} unreadable image{'s' if len(skipped_img) > 1 else ''} skipped "
                     f"(first: {skipped_img[0]})")
    if bad_dirs:
        warns.append(f"{len(bad_dirs)} unreadable folder(s) skipped (first: {bad_dirs[0]})")
    labels = None
    if layout in ("cub", "oxford") and any(classes):
        names = sorted(set(classes))
        labels = torch.tensor([names.index(c) for c in classes], dtype=torch.int64)
    x = torch.from_numpy(out[:n]).permute(0, 3, 1, 2).contiguous()
    what = {"cub": "CUB-200-2011", "oxford": "Oxford-102", "paired": "image folder with same-named .txt captions"}
    crop = f", cropped to {len(boxes)} bounding boxes" if boxes else ""
    source = f"{what[layout]} {root} ({n} images with captions{crop}, resized to {size})"
    info = {"layout": layout, "skipped": len(skipped_img), "mismatched": len(mismatched),
            "first_mismatch": mismatched[0] if mismatched else "",
            "example_captions": [c[0] for c in captions[:: max(1, n // 8)]][:8]}
    ds = image_dataset(name, x, labels, source, channels=channels, size=size, info=info, warnings=warns)
    ds.captions = captions
    return ds
