"""``inception``: the standard FID InceptionV3, for ``fid_inception`` / ``kid_inception`` /
``is_inception`` / ``precision_inception`` / ``recall_inception``.

Network: Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer
Vision", arXiv:1512.00567) as frozen in TensorFlow's ``inception-2015-12-05`` graph, the graph
Heusel et al. 2017 ("GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", arXiv:1706.08500) used to define FID, in the PyTorch layout of pytorch-fid
(mseitzer/pytorch-fid), whose weights file ``pt_inception-2015-12-05-6726825d.pth`` this module
loads unchanged: every state-dict key and shape here is that file's. The graph differs from the
textbook / torchvision Inception-v3 in three places, reproduced here:

- the 3x3 average pool in the pool branch of every A, C and first E block ignores the zero
  padding (``count_include_pad=False``), as TensorFlow's average pool does;
- the pool branch of the last block (``Mixed_7c``) is a 3x3 *max* pool;
- the classifier has 1,008 outputs (the graph's label space: ImageNet's 1,000 classes plus
  unused slots).

Each conv is ``BasicConv2d``: conv (no bias) -> BatchNorm (eps 0.001, running statistics) -> ReLU.

Preprocessing (what pytorch-fid does): images (N, C, H, W), uint8 in [0, 255] or float in
[-1, 1]; one channel is repeated to three (as PIL's ``convert("RGB")`` does for gray files);
resized to 299x299 with bilinear interpolation (``align_corners=False``, no antialiasing) and
mapped to [-1, 1]. pytorch-fid resizes [0, 1] images and then maps them with ``2x - 1``; we map
first and resize second, which is the same up to float rounding because bilinear weights sum to 1.

Outputs: ``pool3``, the 2,048-d global average pool before the classifier (float32), for FID,
KID and precision/recall; and for the Inception Score a softmax over the 1,008 logits
``pool3 @ fc.weight.T`` *without* the bias: that is what the IS reference code (Salimans et al.
2016, openai/improved-gan ``inception_score.py``, which multiplies pool3 by the weights of the
``softmax/logits/MatMul`` op) and torch-fidelity (``logits_unbiased``) compute.

Deviations from the TensorFlow reference, each deliberate:

- resizing is PyTorch's bilinear (as pytorch-fid), not TensorFlow 1.x's ``resize_bilinear``
  (which torch-fidelity re-implements), so features follow pytorch-fid's; against TTUR's or
  torch-fidelity's they differ by that resize (small, but not zero) as well as by rounding;
- float32 through PyTorch's kernels (``gankit eval`` runs it on the CPU), so features agree with
  TensorFlow's to rounding, not bit for bit;
- torchvision's dropout before the classifier is left out (identity at inference, no weights);
- a weights file without the ``bn.num_batches_tracked`` counters (e.g. one converted straight
  from the TensorFlow graph) is accepted: the counter is unused at inference. The usual file has
  them (94, one per BatchNorm; pytorch-fid issue #34 shows them as its keys), 566 keys in all.

Weights are never downloaded. :func:`find_weights` looks, in order, at the ``--inception-weights``
path, ``$GANKIT_INCEPTION_WEIGHTS``, and the torch hub cache
(``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``, ``TORCH_HOME`` defaulting
to ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``, as ``torch.hub.get_dir`` computes it; a
``torch.hub.set_dir`` made in-process is not consulted).
The file is read with ``torch.load(weights_only=True)``; one carrying any other pickle payload is
refused. Its sha256 is reported in the evaluation protocol.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import UntrustedFileError, UsageError

VERSION = "inception-v3-fid-v1"  # bump when preprocessing or the graph changes
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
ENV_VAR = "GANKIT_INCEPTION_WEIGHTS"
SIZE = 299
CLASSES = 1008
DIM = 2048


# --------------------------------------------------------------------------- network


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: Tensor) -> Tensor:
    """3x3 / stride 1 average pool that, like TensorFlow's, averages over real pixels only."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): (B, cin, 35, 35) -> (B, 224 + pool, 35, 35)."""

    def __init__(self, cin: int, pool: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_tf(x))], 1)


class BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): (B, 288, 35, 35) -> (B, 768, 17, 17)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convs (Mixed_6b..e): (B, 768, 17, 17) -> same."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) pairs
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_tf(x))], 1)


class BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): (B, 768, 17, 17) -> (B, 1280, 8, 8)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 convs (Mixed_7b, Mixed_7c): (B, cin, 8, 8) -> (B, 2048, 8, 8).

    ``max_pool``: the TF graph's ``Mixed_7c`` pools with a 3x3 max where Mixed_7b (and the paper)
    average.
    """

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_tf(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(s), self.branch3x3_2b(s),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """x (B, 3, 299, 299) in [-1, 1] -> logits (B, 1008); ``pool3`` gives the (B, 2048) features.

    Attribute names are the weights file's key prefixes (``Conv2d_1a_3x3``, ``Mixed_5b``, ...,
    ``fc``). Build, then :meth:`load_state_dict` (or use :func:`load_inception`); a fresh instance
    has PyTorch's default random initialisation and is only good for tests.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)  # (B, 32, 149, 149)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)  # (B, 32, 147, 147)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)  # (B, 64, 147, 147) -> pool 73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)  # (B, 80, 73, 73)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)  # (B, 192, 71, 71) -> pool 35
        self.Mixed_5b = BlockA(192, pool=32)  # (B, 256, 35, 35)
        self.Mixed_5c = BlockA(256, pool=64)  # (B, 288, 35, 35)
        self.Mixed_5d = BlockA(288, pool=64)  # (B, 288, 35, 35)
        self.Mixed_6a = BlockB(288)  # (B, 768, 17, 17)
        self.Mixed_6b = BlockC(768, c7=128)
        self.Mixed_6c = BlockC(768, c7=160)
        self.Mixed_6d = BlockC(768, c7=160)
        self.Mixed_6e = BlockC(768, c7=192)  # (B, 768, 17, 17)
        self.Mixed_7a = BlockD(768)  # (B, 1280, 8, 8)
        self.Mixed_7b = BlockE(1280, max_pool=False)  # (B, 2048, 8, 8)
        self.Mixed_7c = BlockE(2048, max_pool=True)  # (B, 2048, 8, 8)
        self.fc = nn.Linear(DIM, CLASSES)

    def pool3(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))  # global average pool: (B, 2048)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool3(x))


def prepare(images: Tensor) -> Tensor:
    """Any (N, C, H, W) uint8 or [-1, 1] float images, C 1 or 3 -> float (N, 3, 299, 299) in [-1, 1]."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UsageError(f"inception features need (N, C, H, W) images with C 1 or 3, got {tuple(images.shape)}")
    x = images.float().div(127.5).sub(1.0) if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return x.contiguous()


@torch.no_grad()
def extract(model: FIDInceptionV3, images: Tensor, batch: int = 32) -> tuple[Tensor, Tensor]:
    """(N, C, H, W) images -> (pool3 features (N, 2048) float32, IS class probabilities (N, 1008)).

    Batches of ``batch`` images go through the network on the model's device; results come back
    on the CPU.
    """
    device = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), batch):
        f = model.pool3(prepare(images[i : i + batch].to(device))).float()
        feats.append(f.cpu())
        probs.append(torch.softmax(f @ model.fc.weight.T.float(), dim=1).cpu())  # no bias: see module doc
    if not feats:
        return torch.empty(0, DIM), torch.empty(0, CLASSES)
    return torch.cat(feats), torch.cat(probs)


# --------------------------------------------------------------------------- weights


def hub_checkpoint() -> Path:
    """Where torch.hub keeps ``pt_inception-2015-12-05-6726825d.pth`` (computed, never fetched)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints" / WEIGHTS_NAME


def find_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The weights file: ``explicit`` (the CLI flag), else ``$GANKIT_INCEPTION_WEIGHTS``, else the
    torch hub cache. A source that is given but missing is an error, not a fall-through."""
    hub = hub_checkpoint()
    how = (f"pass --inception-weights PATH, set {ENV_VAR}=PATH, or put {WEIGHTS_NAME} (pytorch-fid's FID "
           f"InceptionV3 weights) at {hub}; gankit never downloads it")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UsageError(f"--inception-weights {path}: no such file ({how})")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise UsageError(f"{ENV_VAR}={path}: no such file ({how})")
        return path
    if hub.is_file():
        return hub
    raise UsageError(f"--features inception needs {WEIGHTS_NAME} (pytorch-fid's FID InceptionV3 weights) and "
                     f"found none: no --inception-weights, {ENV_VAR} unset, nothing at {hub}; pass "
                     f"--inception-weights PATH, set {ENV_VAR}=PATH, or copy the file there (gankit never downloads it)")


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    """sha256 of the file, hashed once per (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _read_state(path: Path) -> dict[str, Tensor]:
    """``torch.load(weights_only=True)``, errors as one line; a pickle payload is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a pickle global other than tensors, or not a pickle at all
        text = str(err)
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip() if "WeightsUnpickler error:" in text else text
        first = (detail.strip().splitlines() or [type(err).__name__])[0].strip()[:160]
        raise UntrustedFileError(f"refusing to load {path}: it holds more than tensors and plain data ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot read {path} as a PyTorch weights file ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise UsageError(f"{path} is not a state dict of tensors (expected {WEIGHTS_NAME})")
    return state


def check_state(state: dict[str, Tensor], model: nn.Module, path: Path) -> dict[str, Tensor]:
    """``state`` with exactly ``model``'s keys and shapes, or a one-line UsageError naming the first
    bad key. Missing ``num_batches_tracked`` counters are filled in (unused at inference)."""
    expected = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, ref in expected.items():
        if key not in state:
            if key.endswith(".num_batches_tracked"):
                out[key] = torch.zeros_like(ref)
                continue
            raise UsageError(f"{path}: missing key {key!r}; not the FID InceptionV3 weights ({WEIGHTS_NAME})")
        got = state[key]
        if got.shape != ref.shape:
            raise UsageError(f"{path}: {key} has shape {tuple(got.shape)}, expected {tuple(ref.shape)} "
                             f"for the FID InceptionV3 ({WEIGHTS_NAME})")
        out[key] = got
    extra = [k for k in state if k not in expected]
    if extra:
        raise UsageError(f"{path}: unexpected key {extra[0]!r} ({len(extra)} in all); "
                         f"not the FID InceptionV3 weights ({WEIGHTS_NAME})")
    return out


def load_inception(explicit: str | os.PathLike[str] | None = None,
                   device: torch.device | str = "cpu") -> tuple[FIDInceptionV3, dict[str, Any]]:
    """The network with the located weights, in eval mode, and its record (file name, sha256)."""
    path = find_weights(explicit)
    state = _read_state(path)
    with torch.random.fork_rng(devices=[]):  # initialisation is overwritten; leave the caller's RNG alone
        model = FIDInceptionV3()
    model.load_state_dict(check_state(state, model, path))
    model.requires_grad_(False)
    record = {"version": VERSION, "weights": path.name, "weights_sha256": weights_sha256(path)}
    return model.to(device).eval(), record
