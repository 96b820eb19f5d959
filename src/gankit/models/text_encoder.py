"""Character-level CNN-RNN text encoder and its image encoder (Reed, Akata, Lee & Schiele 2016,
"Learning Deep Representations of Fine-Grained Visual Descriptions", arXiv:1605.05395, Sec. 3.2).

Text: characters (Reed's 70-symbol alphabet, lower-cased; anything else is a zero vector) are
one-hot encoded, convolved and max-pooled twice (temporal convolution, width 4, pool 3 — the
paper's char-CNN-RNN stacks three such layers on 201 characters), then a recurrent layer (GRU
here; Reed's uses a vanilla RNN or LSTM) runs over the pooled time steps and its hidden states are
*averaged* over the steps the caption covers ("the final encoded feature is the average hidden
unit activation over the sequence"), then a linear layer gives the embedding φ(t).

Image: Reed uses fixed GoogLeNet features; gankit has no pretrained CNN offline, so a small
convolutional encoder θ(v) on the image resized to 32x32 is learned jointly with the text side.

Computed, not changed: the first convolution of one-hot characters is a sum of the kernel's
weight columns, which ``forward`` gathers instead of building the (B, 70, L) one-hot tensor, and
each batch is cut after the characters its last averaged step reads. ``one_hot_forward`` is the
drawn computation; the two agree to float rounding, gradients included (tested), and
``python benchmarks/throughput.py --text-encoder`` times the encoder's training step against it.

Both are pure modules: ``tokenize`` turns strings into uint8 codes, the loss lives in
``gankit.losses.sje_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Reed et al.'s alphabet (the '-' it lists twice appears once here); code 0 = padding / unknown.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{} "
_CODE = {c: i + 1 for i, c in enumerate(ALPHABET)}
POOL = 3  # temporal max-pool width and stride after each convolution
KERNEL = 4
REACH = (POOL + 1) * (POOL + KERNEL - 2) + 1  # 21: recurrent step t reads characters [POOL**2 t, POOL**2 t + REACH)


def tokenize(texts: list[str], max_chars: int) -> Tensor:
    """Strings -> uint8 (N, max_chars) character codes, lower-cased, truncated, zero-padded."""
    out = torch.zeros(len(texts), max_chars, dtype=torch.uint8)
    for i, t in enumerate(texts):
        codes = [_CODE.get(c, 0) for c in " ".join(t.lower().split())[:max_chars]]
        if codes:
            out[i, : len(codes)] = torch.tensor(codes, dtype=torch.uint8)
    return out


def known_chars(text: str) -> int:
    """How many characters of ``text`` the encoder can see (the rest are zero vectors)."""
    return sum(c in _CODE for c in text.lower() if not c.isspace())


class CharCNNRNN(nn.Module):
    """uint8 codes (B, L) -> text embedding φ(t) (B, emb_dim)."""

    def __init__(self, max_chars: int, width: int, hidden: int, emb_dim: int) -> None:
        super().__init__()
        self.max_chars = max_chars
        a = len(ALPHABET)
        self.conv1 = nn.Conv1d(a, width, KERNEL)  # (B, width, L-3) -> pool (B, width, (L-3)//3)
        self.conv2 = nn.Conv1d(width, 2 * width, KERNEL)  # -> pool (B, 2width, T)
        self.rnn = nn.GRU(2 * width, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, emb_dim)
        if self.steps < 1:
            raise ValueError(f"max_chars {max_chars} is too short for two conv+pool stages")

    @property
    def steps(self) -> int:
        return ((self.max_chars - KERNEL + 1) // POOL - KERNEL + 1) // POOL

    def first_conv(self, codes: Tensor) -> Tensor:
        """``conv1`` of the one-hot characters, (B, L) int64 -> (B, width, L - KERNEL + 1), as a lookup.

        A convolution of one-hot columns sums, per output step, the weight column of each
        character under the kernel: out[:, :, t] = b + Σ_k W[:, code[t+k] - 1, k] (code 0 adds
        nothing). Gathering those columns skips the (B, 70, L) one-hot tensor and a convolution
        that multiplies by its zeros. Same parameters and maths as ``self.conv1`` on the one-hot
        input, up to float summation order (``tests/test_text2image.py`` checks it).
        """
        w = self.conv1.weight  # (width, A, K)
        table = F.pad(w.permute(2, 1, 0), (0, 0, 1, 0))  # (K, A + 1, width); row 0 (padding) is zeros
        n = codes.shape[1] - KERNEL + 1
        out = sum(F.embedding(codes[:, k : k + n], table[k]) for k in range(KERNEL))  # (B, n, width)
        return (out + self.conv1.bias).transpose(1, 2)

    def forward(self, codes: Tensor) -> Tensor:
        codes = codes.long()
        valid = self.valid_steps(codes)  # (B,)
        # Step t reads characters < POOL**2 * t + REACH and the GRU runs forward, so characters
        # past what the batch's last valid step reads cannot change the average: cut them (shapes'
        # captions are 44 characters on average and at most 83, of max_chars 128).
        codes = codes[:, : POOL * POOL * (int(valid.max()) - 1) + REACH]
        x = F.max_pool1d(F.relu(self.first_conv(codes)), POOL)
        return self.average(x, valid)

    def one_hot_forward(self, codes: Tensor) -> Tensor:
        """``forward`` computed as drawn: one-hot characters through ``conv1`` over all ``max_chars``.
        The reference ``forward`` must equal (tests) and outrun (``benchmarks/throughput.py``)."""
        codes = codes.long()
        x = F.one_hot(codes, len(ALPHABET) + 1)[..., 1:].float().transpose(1, 2)  # (B, A, L); code 0 -> zeros
        x = F.max_pool1d(F.relu(self.conv1(x)), POOL)
        return self.average(x, self.valid_steps(codes))

    def valid_steps(self, codes: Tensor) -> Tensor:
        """(B,) recurrent steps that saw characters (each spans ~POOL**2 of them), at least 1."""
        length = (codes > 0).sum(1)
        return torch.div(length + POOL * POOL - 1, POOL * POOL, rounding_mode="floor").clamp(1, self.steps)

    def average(self, x: Tensor, valid: Tensor) -> Tensor:
        """conv2 + pool, the GRU, and the mean hidden state over the ``valid`` steps -> φ(t) (B, emb_dim)."""
        x = F.max_pool1d(F.relu(self.conv2(x)), POOL)  # (B, 2width, T)
        h, _ = self.rnn(x.transpose(1, 2))  # (B, T, hidden)
        mask = (torch.arange(h.shape[1], device=h.device)[None] < valid[:, None]).float()  # (B, T)
        avg = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, hidden)
        return self.fc(avg)


class ImageEncoder(nn.Module):
    """image (B, C, S, S) in [-1, 1] -> image embedding θ(v) (B, emb_dim); works at 32x32."""

    def __init__(self, channels: int, width: int, emb_dim: int) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True),  # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),  # (B, 4w, 4, 4)
        )
        self.fc = nn.Linear(16 * 4 * w, emb_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != 32:
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=x.shape[-1] > 32)
        return self.fc(self.net(x).flatten(1))
