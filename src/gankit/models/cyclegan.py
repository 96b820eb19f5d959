"""CycleGAN networks (Zhu et al. 2017, arXiv:1703.10593, Sec. 4 and Appendix 7.2).

Generator (the paper's, after Johnson et al. 2016): ``c7s1-64, d128, d256, R256 x n_blocks,
u128, u64, c7s1-3``, with instance normalisation, reflection padding and ReLU, tanh output.
``c7s1-k``: 7x7 conv, stride 1, k filters; ``dk``: 3x3 conv, stride 2; ``Rk``: a residual block of
two 3x3 convs; ``uk``: 3x3 fractionally-strided (transposed) conv, stride 1/2. The paper uses 6
blocks for 128x128 images and 9 for 256x256 (:func:`default_blocks`). Images need a side
divisible by 4 (two stride-2 stages).

Discriminator: the 70x70 PatchGAN (Isola et al. 2017): ``C64-C128-C256-C512``, 4x4 convs,
LeakyReLU 0.2, instance norm except on C64, the first three with stride 2 and C512 with stride 1,
then a 4x4 stride-1 conv to one channel: a map of real/fake scores, each output seeing a 70x70
patch. ``layers`` (:func:`default_d_layers`) is the number of stride-2 convs; the receptive field
is ``patch_size(layers)`` = 16, 34, 70 for 1, 2, 3 (``rf = 2 * rf + 2`` per stride-2 layer from
7). Deviation for small images: gankit takes the shallowest PatchGAN whose patch covers the
whole image, at most the paper's 3 layers: 16 px images get 16x16 patches, 32 px images 34x34
patches (a 6x6 score map, each score seeing the whole digit), and from 64 px on it is the paper's
70x70 (256 px: a 30x30 map). On mnist2mnistm (32 px, 10 minutes) 16x16 patches let the
generators texture thin strokes until 1s read as 8s: content 0.892, fid_mnistm 121; 34x34
patches: content 0.966, fid_mnistm 93.

Weights are initialised N(0, 0.02) as in the reference implementation (``init_type=normal``).
Instance norm has no affine parameters and no running statistics (the reference's
``norm=instance``), so train and eval mode compute the same function, at any batch size.
"""

from __future__ import annotations

from torch import Tensor, nn


def default_blocks(size: int) -> int:
    """Residual blocks of the paper's generator: 6 up to 128 px, 9 above."""
    return 6 if size <= 128 else 9


def patch_size(layers: int) -> int:
    """Receptive field (pixels per side) of a PatchGAN with ``layers`` stride-2 convs."""
    rf = 7  # the two final 4x4 stride-1 convs
    for _ in range(layers):
        rf = 2 * rf + 2  # (rf - 1) * stride + kernel
    return rf


def default_d_layers(size: int) -> int:
    """The shallowest PatchGAN (1 to 3 stride-2 layers) whose patch covers the image; 3 (70x70) above 70 px."""
    return min([n for n in (1, 2, 3) if patch_size(n) >= size] or [3])


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, IN, ReLU, reflect-pad, conv3x3, IN](x); shape unchanged."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """image (B, C, S, S) in [-1, 1] -> image (B, C_out, S, S) in [-1, 1]; S divisible by 4."""

    def __init__(self, channels: int, out_channels: int | None = None, ngf: int = 64, n_blocks: int = 6) -> None:
        super().__init__()
        out_channels = out_channels or channels
        layers: list[nn.Module] = [  # c7s1-64: (B, ngf, S, S)
            nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(True),
        ]
        ch = ngf
        for _ in range(2):  # d128, d256: (B, 4ngf, S/4, S/4)
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(n_blocks)]  # R256 x n: same shape
        for _ in range(2):  # u128, u64: (B, ngf, S, S)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]  # c7s1-3
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """image (B, C, S, S) -> patch scores (B, 1, S', S') (raw: LSGAN regresses them to 0 / 1).

    S' = S / 2**layers - 2 (layers=3: 256 -> 30, 128 -> 14, 64 -> 6; layers=2: 32 -> 6).
    """

    def __init__(self, channels: int, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # C64, no norm
        mult = 1
        for n in range(1, layers):  # C128, C256 (stride 2)
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1), _norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1), _norm(ndf * mult), nn.LeakyReLU(0.2, True)]  # C512, stride 1
        seq.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))  # one score per patch
        self.net = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def cyclegan_init_(module: nn.Module, std: float = 0.02) -> None:
    """Conv weights N(0, std), biases 0 (the reference implementation's ``init_type=normal``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
