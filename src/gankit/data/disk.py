"""Datasets read from ``--data PATH``: MNIST-format idx files, CIFAR-10 python batches, or any
folder of images.

All three treat the input as untrusted: idx headers are checked against the bytes actually
present, CIFAR pickles go through an unpickler that can only rebuild numpy arrays, and image files
that PIL cannot decode (or that are implausibly large) are skipped and reported, not fatal.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gankit.data.dataset import Dataset, fit_image, image_dataset
from gankit.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
#: Images with more pixels are skipped (PIL's own guard only starts at ~89 MP).
MAX_PIXELS = 64_000_000
#: Side of the square crops taken from an image folder when no size is given.
DEFAULT_FOLDER_SIZE = 64
# An idx header may claim any size; refuse before allocating (EMNIST ByClass, the largest real one, is ~0.55 GB).
_MAX_IDX_BYTES = 2**31

#: (layout, what PATH must contain, example) for ``gankit datasets``.
LAYOUT_HELP = (
    ("image folder", f"any folder of {' '.join(IMAGE_EXTS)} files, searched recursively; no labels",
     "--data ~/pictures/faces"),
    ("MNIST idx", "a folder with train-images-idx3-ubyte[.gz] (+ optional train-labels-idx1-ubyte[.gz]), "
     "or that images file itself; Fashion-MNIST uses the same names", "--data ~/fashion-mnist"),
    ("CIFAR-10", "the cifar-10-batches-py folder (data_batch_1..5) or its parent; read without pickle.load",
     "--data ~/cifar-10-batches-py"),
    ("unpaired (CycleGAN)", "ROOT/trainA and ROOT/trainB image folders (two domains), optional testA/ testB "
     "held out for sample grids and evaluation", "--data ~/horse2zebra"),
    ("CUB-200-2011 + captions", "images/<class>/<file>.jpg with Reed's text_c10/<class>/<file>.txt (one caption a "
     "line); images.txt + bounding_boxes.txt, when present, crop each bird", "--data ~/CUB_200_2011"),
    ("Oxford-102 + captions", "jpg/image_XXXXX.jpg with text_c10/class_XXXXX/image_XXXXX.txt", "--data ~/flowers"),
    ("captioned folder", "images each with a same-named .txt beside it (a.png + a.txt), one caption a line",
     "--data ~/my-captioned-pictures"),
)
#: The unpaired two-domain layout (CycleGAN's datasets): required and optional sub-folders.
UNPAIRED_TRAIN = ("trainA", "trainB")
UNPAIRED_TEST = ("testA", "testB")
_LAYOUTS = ("an image folder (" + " ".join(IMAGE_EXTS) + ", recursive), an MNIST idx folder or file "
            "(train-images-idx3-ubyte[.gz]), a CIFAR-10 cifar-10-batches-py folder or its parent, "
            "or an unpaired ROOT with trainA/ and trainB/")


def load_path(name: str, path: Path, *, channels: int | None, size: int | None) -> Dataset:
    """Load the dataset at existing ``path``, detecting its layout (unpaired, idx, CIFAR, then images)."""
    if path.is_dir():
        if any((path / d).is_dir() for d in (*UNPAIRED_TRAIN, *UNPAIRED_TEST)):
            return _load_unpaired(name, path, channels=channels, size=size)
        if (idx := _find_idx(path)) is not None:
            return _load_idx(name, *idx, channels=channels, size=size)
        if (batches := _find_cifar(path)) is not None:
            return _load_cifar(name, batches, channels=channels, size=size)
        from gankit.data import captions

        if (layout := captions.detect(path)) is not None:
            return captions.load_captioned(name, path, layout, channels=channels, size=size)
        return _load_folder(name, path, channels=channels, size=size)
    if path.is_file():
        if "idx3" in path.name.lower() or _peek(path)[:4] == b"\x00\x00\x08\x03":
            return _load_idx(name, path, _labels_beside(path), "", channels=channels, size=size)
        raise DataError(f"{path} is a file but not an MNIST idx images file; --data takes {_LAYOUTS}")
    raise DataError(f"{path} is neither a folder nor a regular file; --data takes {_LAYOUTS}")


# --- MNIST idx -------------------------------------------------------------------------------


def _find_idx(folder: Path) -> tuple[Path, Path | None, str] | None:
    """Return (images, labels or None, note) for an idx folder; train split preferred over t10k."""
    for split in ("train", "t10k"):
        # Kaggle's copies spell the name with a dot: train-images.idx3-ubyte.
        for stem in (f"{split}-images-idx3-ubyte", f"{split}-images.idx3-ubyte"):
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    other = "t10k" if split == "train" else "train"
                    ignored = any(p.name.startswith(f"{other}-images") for p in folder.iterdir())
                    note = f"{split} split only ({other} files ignored)" if ignored else ""
                    return candidate, _labels_beside(candidate), note
    return None


def _labels_beside(images: Path) -> Path | None:
    stem = images.name.removesuffix(".gz").replace("images", "labels").replace("idx3", "idx1")
    for candidate in (images.with_name(stem), images.with_name(f"{stem}.gz")):
        if candidate != images and candidate.is_file():
            return candidate
    return None


def _peek(path: Path) -> bytes:
    """First bytes of ``path``, gunzipped if needed; b'' if unreadable."""
    try:
        with _open(path) as f:
            return f.read(4)
    except (OSError, EOFError, zlib.error):
        return b""


def _open(path: Path) -> BinaryIO:
    # Decide by content, not by the .gz suffix: renamed files are common.
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an unsigned-byte idx file with the given magic (0x803 images, 0x801 labels)."""
    what = "images (N,H,W)" if magic == 0x803 else "labels (N,)"
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or int.from_bytes(head, "big") != magic:
                got = f"0x{int.from_bytes(head, 'big'):08x}" if len(head) == 4 else "a truncated header"
                raise DataError(f"{path}: not an idx {what} file (magic {got}, expected 0x{magic:08x})")
            ndim = magic & 0xFF
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise DataError(f"{path}: truncated idx header (expected {ndim} dimensions)")
            dims = struct.unpack(f">{ndim}I", raw)
            count = math.prod(dims)
            if count == 0 or count > _MAX_IDX_BYTES:
                raise DataError(f"{path}: idx header declares dimensions {dims}; "
                                "expected a non-empty array under 2 GiB")
            data = f.read(count)
            if len(data) < count:
                raise DataError(f"{path}: truncated idx file: header declares {dims} = {count} bytes, "
                                f"found {len(data)}")
            if f.read(1):
                raise DataError(f"{path}: idx file has bytes after the {dims} array its header declares")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read idx file: {err}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _load_idx(
    name: str, images: Path, labels: Path | None, note: str, *, channels: int | None, size: int | None
) -> Dataset:
    x = _read_idx(images, 0x803)
    y = None
    if labels is not None:
        y = _read_idx(labels, 0x801)
        if len(y) != len(x):
            raise DataError(f"{labels}: {len(y)} labels but {images} holds {len(x)} images; expected equal counts")
        y = torch.from_numpy(y.astype(np.int64))
    source = f"MNIST-format idx {images} ({len(x)} x {x.shape[1]}x{x.shape[2]}"
    source += f", labels from {labels.name})" if labels is not None else ", no labels file)"
    if note:
        source = f"{source}; {note}"
    return image_dataset(name, torch.from_numpy(x.copy())[:, None], y, source, channels=channels, size=size)


# --- CIFAR-10 ----------------------------------------------------------------------------------


def _find_cifar(folder: Path) -> list[Path] | None:
    for base in (folder, folder / "cifar-10-batches-py"):
        batches = sorted(base.glob("data_batch_[0-9]*"), key=lambda p: p.name)
        if batches:
            return batches
    return None


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch may reference: what numpy needs to rebuild an array, plus
    pickle's own helper for bytes.

    The callables are taken from numpy's own reduce output rather than imported by module path,
    because the private module moved (numpy.core -> numpy._core) and old pickles name either.
    """
    arr = np.zeros(1, dtype=np.uint8)
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    # Python 3 pickles bytes at protocol < 3 as _codecs.encode(str, 'latin1').
    allowed[("_codecs", "encode")] = _latin1_encode
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = arr.__reduce__()[0]
        allowed[(f"{core}.multiarray", "scalar")] = np.uint8(0).__reduce__()[0]
        allowed[(f"{core}.numeric", "_frombuffer")] = arr.__reduce_ex__(5)[0]  # protocol-5 pickles
    return allowed


def _latin1_encode(text: str, encoding: str) -> bytes:
    # Only the form pickle itself writes: other codecs (zlib, ...) do more than rebuild bytes.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected _codecs.encode call with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED_GLOBALS = _numpy_globals()


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` resolves only :data:`_ALLOWED_GLOBALS`.

    Plain ``pickle.load`` on a downloaded file runs whatever callable the file names.
    """

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {self._path}: it references {module}.{name} "
                            "(a CIFAR-10 batch may only hold dicts, lists, bytes and numpy arrays)") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (data uint8 (n, 3072), labels int64 (n,)) from one CIFAR-10 python batch."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayOnlyUnpickler(f, path).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, OverflowError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path}: cannot read CIFAR-10 batch: {reason}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict with b'data' and b'labels', got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' is {desc}; expected a uint8 array of shape (n, 3072)")
    y = np.asarray(labels) if isinstance(labels, (list, np.ndarray)) else np.empty(0, dtype=object)
    if y.shape != (len(data),) or y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
        raise DataError(f"{path}: b'labels' must be {len(data)} non-negative integers")
    return data, y.astype(np.int64)


def _load_cifar(name: str, batches: list[Path], *, channels: int | None, size: int | None) -> Dataset:
    parts = [_read_cifar_batch(p) for p in batches]
    x = torch.from_numpy(np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32))
    y = torch.from_numpy(np.concatenate([lab for _, lab in parts]))
    folder = batches[0].parent
    source = f"CIFAR-10 python batches in {folder} ({', '.join(p.name for p in batches)}; test_batch ignored)"
    warns = [] if len(batches) >= 5 else [f"only {len(batches)} of the 5 CIFAR-10 training batches found in {folder}"]
    return image_dataset(name, x, y, source, channels=channels, size=size, warnings=warns)


# --- image folder ------------------------------------------------------------------------------

# What PIL raises on corrupt input across its plugins; anything else is a bug and propagates.
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError, KeyError,
               ZeroDivisionError, Image.DecompressionBombError)


class _Skip(Exception):
    """A file that is not a usable image; ``str`` is the reason."""


def _list_images(root: Path) -> tuple[list[str], list[str]]:
    """Image paths under ``root`` (sorted) and 'PATH: reason' for folders that could not be listed."""
    files: list[str] = []
    bad_dirs: list[str] = []
    visited: set[str] = set()

    def on_error(err: OSError) -> None:
        bad_dirs.append(f"{err.filename}: {err.strerror or err}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlink loop, or a second link to a folder already read
            dirnames[:] = []
            continue
        visited.add(real)
        # Hidden entries are tool litter (.ipynb_checkpoints copies, macOS ._x.jpg resource forks).
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files.extend(os.path.join(dirpath, f) for f in filenames
                     if not f.startswith(".") and f.lower().endswith(IMAGE_EXTS))
    return sorted(files), bad_dirs


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; alpha is composited over white, 16-bit gray keeps its top 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # convert('L') would clip every value above 255 to white instead of rescaling.
        a = np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if img.mode in ("LA", "PA", "RGBA") or (img.mode == "P" and "transparency" in img.info):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def _read_image(path: str, size: int, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Decode one file to uint8 (size, size, 3); raises :class:`_Skip` or a ``_UNREADABLE`` error.

    ``box`` (x, y, w, h) first crops a square of 1.5x the box's longer side around its centre
    (CUB bounding boxes, as StackGAN preprocesses them).
    """
    if not os.path.exists(path):
        raise _Skip("broken symlink")
    if not os.path.isfile(path):  # e.g. a FIFO, which would block open() forever
        raise _Skip("not a regular file")
    if os.path.getsize(path) == 0:
        raise _Skip("empty file")
    with Image.open(path) as img:  # lazy: reads only the header
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise _Skip(f"larger than the {MAX_PIXELS // 1_000_000}-megapixel limit ({w}x{h})")
        if box is None:  # JPEGs can decode straight at 1/2..1/8 scale, never below the requested size.
            img.draft(None, (size, size))
        img.load()
        upright = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
        if box is not None:
            x, y, bw, bh = box
            r, cx, cy = max(bw, bh) * 0.75, x + bw / 2, y + bh / 2
            upright = upright.crop((int(max(0, cx - r)), int(max(0, cy - r)),
                                    int(min(upright.width, cx + r)), int(min(upright.height, cy + r))))
        return np.asarray(fit_image(_to_rgb(upright), size))


def _reason(err: Exception) -> str:
    if isinstance(err, Image.DecompressionBombError):
        return f"larger than the {MAX_PIXELS // 1_000_000}-megapixel limit"
    if isinstance(err, UnidentifiedImageError):  # its message repeats the path
        return "not a recognised image (unknown format or corrupt header)"
    msg = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return " ".join(msg.split())[:160] or type(err).__name__


def _load_folder(name: str, root: Path, *, channels: int | None, size: int | None) -> Dataset:
    size = size or DEFAULT_FOLDER_SIZE
    files, bad_dirs = _list_images(root)
    looked = f"looked for {' '.join(IMAGE_EXTS)} recursively"
    if not files:
        unlisted = f"; {len(bad_dirs)} unreadable folders, first: {bad_dirs[0]}" if bad_dirs else ""
        raise DataError(f"no image files in {root} ({looked}{unlisted}); --data takes {_LAYOUTS}")
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    skipped: list[str] = []
    n = 0
    with warnings.catch_warnings():
        # MAX_PIXELS is stricter than PIL's bomb warning, so that warning is only noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for path in files:
            try:
                out[n] = _read_image(path, size)
                n += 1
            except _Skip as err:
                skipped.append(f"{path}: {err}")
            except _UNREADABLE as err:
                skipped.append(f"{path}: {_reason(err)}")
    if n == 0:
        raise DataError(f"no readable image in {root} ({looked}; {len(skipped)} files skipped, first: {skipped[0]})")
    warns = []
    if skipped:
        warns.append(f"{len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''} skipped (first: {skipped[0]})")
    if bad_dirs:
        plural = "s" if len(bad_dirs) > 1 else ""
        warns.append(f"{len(bad_dirs)} unreadable folder{plural} skipped (first: {bad_dirs[0]})")
    x = torch.from_numpy(out[:n]).permute(0, 3, 1, 2).contiguous()
    source = f"image folder {root} ({n} images, shorter side resized to {size} and centre-cropped)"
    info = {"skipped": len(skipped), "first_skipped": skipped[0] if skipped else ""}
    return image_dataset(name, x, None, source, channels=channels, size=size, info=info, warnings=warns)


# --- unpaired domains (CycleGAN) ---------------------------------------------------------------


def _load_unpaired(name: str, root: Path, *, channels: int | None, size: int | None) -> Dataset:
    """ROOT/trainA, trainB (required) and testA, testB (optional) as one two-domain Dataset.

    Each folder is read like an image folder (recursive, unreadable files skipped and counted);
    a missing trainA/trainB, or any of the four that holds no readable image, is an error naming it.
    """
    size = size or DEFAULT_FOLDER_SIZE
    for sub in UNPAIRED_TRAIN:
        if not (root / sub).is_dir():
            present = ", ".join(d for d in (*UNPAIRED_TRAIN, *UNPAIRED_TEST) if (root / d).is_dir())
            raise DataError(f"unpaired dataset {root} has no {sub}/ folder (found {present}); "
                            "expected ROOT/trainA and ROOT/trainB, optionally testA and testB")
    parts: dict[str, Dataset] = {}
    for sub in (*UNPAIRED_TRAIN, *UNPAIRED_TEST):
        folder = root / sub
        if sub in UNPAIRED_TEST and not folder.is_dir():
            continue
        try:
            parts[sub] = _load_folder(f"{name}/{sub}", folder, channels=None, size=size)
        except DataError as err:  # the message names the folder; the list of --data layouts is noise here
            raise DataError(f"{str(err).split('; --data takes')[0]}; every domain folder needs readable images") from None
    xs, ranges, warns, start = [], {}, [], 0
    for sub, ds in parts.items():
        xs.append(ds.x)
        ranges[sub] = (start, start + len(ds.x))
        start += len(ds.x)
        warns += [f"{sub}: {w}" for w in ds.warnings]
    x = torch.cat(xs)
    counts = ", ".join(f"{sub} {len(ds.x)}" for sub, ds in parts.items())
    source = f"unpaired folders in {root} ({counts} images, shorter side resized to {size} and centre-cropped)"
    if len(parts) < 4:
        warns.append(f"{root} has no {' or '.join(d for d in UNPAIRED_TEST if d not in parts)}/: "
                     "sample grids and evaluation use training images of that domain")
    info = {"skipped": sum(ds.info.get("skipped", 0) for ds in parts.values()), "split": {k: list(v) for k, v in ranges.items()}}
    return image_dataset(name, x, None, source, channels=channels, size=size, info=info, warnings=warns,
                         domains={"A": ranges["trainA"], "B": ranges["trainB"]},
                         held_out={d[-1]: ranges[d] for d in UNPAIRED_TEST if d in ranges})


# --- images to translate -----------------------------------------------------------------------


def read_images(inputs: list[str], size: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Image files and folders (searched recursively) -> (uint8 (N, size, size, 3), names, warnings).

    Each image is read like a training image (EXIF rotation, alpha over white, shorter side
    resized to ``size``, centre crop). A name is the file name for a file given directly and the
    path below the folder for a folder's images. A missing input, an unreadable file given
    directly, two images with one name, or no image at all is a :class:`DataError`; unreadable
    files inside a folder are skipped and counted in the warnings.
    """
    paths: list[tuple[str, str, bool]] = []  # (path, name, given directly)
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            files, bad_dirs = _list_images(p)
            if not files:
                raise DataError(f"no image files in {p} (looked for {' '.join(IMAGE_EXTS)} recursively)")
            paths += [(f, os.path.relpath(f, p), False) for f in files]
        elif p.is_file():
            paths.append((str(p), p.name, True))
        else:
            raise DataError(f"no such image file or folder: {p}")
    seen: dict[str, str] = {}
    for path, name, _ in paths:
        if name in seen:
            raise DataError(f"two inputs would be written as {name}: {seen[name]} and {path}; translate them separately")
        seen[name] = path
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    names: list[str] = []
    skipped: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for path, name, direct in paths:
            try:
                out[len(names)] = _read_image(path, size)
                names.append(name)
            except (_Skip, *_UNREADABLE) as err:
                reason = str(err) if isinstance(err, _Skip) else _reason(err)
                if direct:
                    raise DataError(f"cannot read image {path}: {reason}") from None
                skipped.append(f"{path}: {reason}")
    if not names:
        raise DataError(f"no readable image among the inputs ({len(skipped)} skipped, first: {skipped[0]})")
    warns = [f"{len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''} skipped (first: {skipped[0]})"] if skipped else []
    return out[: len(names)], names, warns
