"""DCGAN (Radford et al. 2015, arXiv:1511.06434): the GAN game of ``gankit.recipes.gan`` played
by the convolutional G and D of ``gankit.models.dcgan``.

Paper settings (Sec. 4): Adam lr 2e-4, β1 0.5, batch 128, z ~ 100-d, weights N(0, 0.02), images
scaled to [-1, 1] for tanh; 64 px images with 128 channels in G's last hidden layer.
``--set width=64 --set width_d=none --set lr=2e-4 --set lr_d=none --set ema=false --set info_cat=0``
gives the pytorch/examples reference.

Defaults depart from the paper where ``benchmarks/quality_per_minute.py`` (3 minutes of training
on 2 CPU cores, built-in MNIST, fid_lenet of 5,000 samples, one seed each) showed a gain; the
README has the full table:
- ``width=32`` (paper 128, reference 64): 4x fewer FLOPs, ~3x the steps per minute. With EMA at
  lr 2e-4: width 48 -> fid 64.4, width 32 -> 49.2.
- ``lr=3e-3`` (paper 2e-4), β1 0.5 kept: at width 32 with EMA, lr 2e-4 / 3e-4 / 5e-4 / 7e-4 / 1e-3
  gave fid 49.2 / 32.3 / 18.1 / 15.1 / 13.8; with channels-last steps (~3,550 in 3 minutes),
  lr 1.5e-3 / 2e-3 / 3e-3 gave fid 6.7 / 6.9 / 4.6, IS 7.76 / 7.84 / 7.87. This is a short-budget
  setting: for long runs or other data, start from the paper's 2e-4.
- ``ema=true``: sample with an exponential moving average of G (decay 0.999 with warm-up, see
  the engine). Same lr-5e-4 run: live G fid 28.6, EMA G 18.1.
- ``batch=64`` (the reference; the paper's 128): batch 32 at lr 7e-4 also gave 13.8.
- ``lr_d=1e-2``: D learns 3.3x as fast as G (two time-scale update rule, TTUR, Heusel et al.
  2017, arXiv:1706.08500; the paper: one lr for both). Measured at fixed step counts (``--steps``,
  so machine speed does not enter), IS / fid_lenet, seeds 0 and 1:

      steps  lr_d              seed 0         seed 1
      3,000  = lr (3e-3)       7.82 / 4.8     7.75 / 5.7
      3,000  6e-3              7.89 / 5.1     7.77 / 6.6
      3,000  1e-2              7.89 / 4.5     7.90 / 4.9
      3,000  2e-2              7.65 / 5.7
      4,500  = lr (3e-3)       7.95 / 3.7     7.93 / 6.3     seed 2: 7.87 / 5.1
      4,500  1e-2              8.07 / 5.9     7.95 / 4.2     seed 2: 7.85 / 4.4

  IS is higher in four of five pairs (-0.02 to +0.15), fid lower in four. At 4,500 steps (what
  the README's machine trains in 3 minutes) the mean IS is 7.96 against 7.92: within seed noise.
- ``width_d=16`` (ndf; the reference: ndf = ngf = width): D is half as wide as G. D does about
  two thirds of a step's arithmetic (forward and backward on real and fake for the D step, and on
  fake for the G step, against G's one forward and backward), so a step is 1.5-1.7x faster
  (``benchmarks/throughput.py --width-d 16``). Per step D16 learns a little less; at the same
  wall time it is as good on a fast machine and better on a slow one. Measured at fixed step
  counts in the ratio of the two speeds, IS / fid_lenet, seeds 0 / 1 / 2:

      width_d  steps                                      seed 0        seed 1        seed 2
      32       1,800 (3 min on a machine at ~0.45x)       7.67 / 7.5    7.57 / 8.0    7.41 / 10.0
      16       2,800                                      7.71 / 5.9    7.64 / 7.2    7.70 / 6.7
      32       4,500 (3 min on the README's machine)      8.07 / 5.9    7.95 / 4.2    7.85 / 4.4
      16       7,000                                      8.07 / 3.5    7.87 / 5.9    7.93 / 4.7
      32       3,000 (same steps)                         7.89 / 4.5    7.90 / 4.9
      16       3,000                                      7.78 / 4.6    7.66 / 7.1

  Tried with width_d 16 at 3,000 steps, seed 0, and not kept: lr_d 6e-3 7.74 / 5.8, lr_d 2e-2
  7.73 / 5.8, lr 4e-3 7.82 / 4.8, betas (0, 0.99) 7.68 / 7.9, batch 128 (the same img/s as 64)
  for 1,500 steps 7.37 / 10.5, and with lr and lr_d x1.4 7.54 / 9.7.
- ``info_cat=10``, ``lambda_info=1``: InfoGAN's categorical latent code (Chen et al. 2016,
  arXiv:1606.03657, eq. 4, λ = 1 as the paper's for discrete codes). G also reads
  c = one_hot(argmax z[:10]); Q(c | x), one more 4x4 convolution beside D's logit on D's last
  features, must recover it, and G and Q (with D's body) both minimise -log Q(c | G(z))
  (``gankit.losses.info_nll``). Why: G maps one Gaussian continuously onto digits of ten classes,
  so some of its samples fall between classes (23 % of samples got a top lenet probability
  below 0.9, against 5.5 % of real digits), and that is what held IS under 8 at every budget
  tried (7.96 at 7,000 steps). With the code, each of ten regions of z must give images Q tells
  apart. The runs below took 119-120 s for 3,000 steps with it and 119-121 s without. At 3,000
  steps (``--steps 3000 --seed S``, then ``gankit eval``), IS / fid_lenet / precision / recall:

      info_cat  lambda_info  seed 0                      seed 1
      0 (before)             7.78 / 4.6 / 0.73 / 0.87    7.66 / 7.1 / 0.74 / 0.84
      10        1            8.34 / 6.1 / 0.79 / 0.82    8.25 / 7.3 / 0.79 / 0.80
      10        0.3          8.06 / 6.3 / 0.76 / 0.83
      20        1            8.56 / 7.6 / 0.81 / 0.78

  Samples are more often clear digits (precision, IS) at a small cost in recall and fid. 20
  categories score a higher IS still, but lose more recall; 10 is the paper's choice for MNIST
  and is kept for other data too, where the codes become whatever ten modes D's features
  separate. Deviations from the paper: the code is read from z (the argmax of ten i.i.d. normal
  components is uniform over ten values) rather than drawn beside it, so the latent stays one
  Gaussian vector and sampling and exports work as before (an interpolation between two latents
  switches code, and mostly digit, where the argmax changes); Q is a linear head (the paper:
  FC-BN-LReLU-FC). ``--set info_cat=0`` turns it off.
Kept from the paper because the alternatives measured worse at this budget: the non-saturating
loss (hinge 20.8 vs 18.1 at lr 5e-4) and no augmentation (``augment=translation`` 28.3,
``translation,cutout`` 61.7, vs 15.1 without, at lr 7e-4). Tried at 3,000 steps, seed 0, and
not kept (IS / fid against 7.82 / 4.8 above; trial code not kept): linear lr decay to 0 over the
last 30 % of the steps 7.70 / 6.4; the relativistic average loss (RaSGAN, Jolicoeur-Martineau
2018, arXiv:1807.00734) 7.51 / 9.4; G width 48 with D at 32 7.82 / 6.8 (and 11 % slower);
batch 32 for 6,000 steps (the same images) 7.74 / 8.2.

Other deviations and options: 28 px data (MNIST) is zero-padded to 32 px so the stride-2 ladder
is exact; other non-power-of-two sides are resized to the next power of two. ``loss`` (see
``gankit.losses``), ``spectral_norm`` (on D's convolutions), ``r1_gamma``, ``label_smoothing``
(one-sided, Salimans et al. 2016: 3-minute fid 5.4 / IS 7.94 against 5.2 / 7.86), ``augment``
(DiffAugment, ``gankit.augment``) and ``d_norm`` are off-paper options. ``d_norm=auto`` keeps the
paper's BatchNorm in D except with ``spectral_norm`` or ``wgan_gp``, where it uses none (a
per-sample gradient penalty is not defined through batch statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from gankit.augment import parse_policy
from gankit.errors import UsageError
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_, latent_category
from gankit.recipes.gan import GANRecipe, LossName, validate_common, validate_label_smoothing


@dataclass
class DCGANConfig:
    z_dim: int = 100
    width: int = 32  # ngf: channels of G's last hidden layer, and D's first unless width_d is set (paper: 128 at 64 px)
    width_d: int | None = 16  # ndf: channels of D's first hidden layer (the reference: = width); None: width
    loss: LossName = "non_saturating"
    k: int = 1
    lr: float = 3e-3  # tuned for 3 minutes of MNIST on 2 cores (see above); the paper: 2e-4
    lr_d: float | None = 1e-2  # D's learning rate (two time-scale update rule, Heusel et al. 2017); None: lr
    betas: tuple[float, ...] = (0.5, 0.999)
    batch: int = 64
    spectral_norm: bool = False
    d_norm: Literal["auto", "batch", "layer", "none"] = "auto"
    lambda_gp: float = 10.0
    label_smoothing: float = 0.0  # one-sided: D's target for real samples is 1 - this (Salimans et al. 2016)
    r1_gamma: float = 0.0  # R1 penalty γ/2·E‖∇D(x)‖² on real data (Mescheder et al. 2018); 0 = off
    ema: bool = True
    ema_decay: float = 0.999
    size: int | None = None  # None: native side, rounded up to a power of two (28 -> 32)
    augment: str = ""  # DiffAugment policy for D's inputs, e.g. "translation,cutout" (gankit.augment)
    standing_stats: int = 0  # batches re-estimating sampling G's BatchNorm statistics (gankit.engine.standing); 0 = off
    info_cat: int = 10  # InfoGAN: G also reads the categorical code one_hot(argmax z[:info_cat]), Q recovers it; 0 = off
    lambda_info: float = 1.0  # λ of InfoGAN's information term (the paper's 1 for discrete codes)

    # What a run saved before these keys existed trained with (config.from_dict): D as wide as G, D at G's lr,
    # no InfoGAN code.
    absent_means: ClassVar[dict[str, Any]] = {"width_d": None, "lr_d": None, "info_cat": 0}

    def validate(self) -> None:
        validate_common(self, ("z_dim", "width", "k", "batch"))
        if self.standing_stats < 0:
            raise UsageError(f"standing_stats must be 0 (off) or a number of batches, got {self.standing_stats}")
        if self.size is not None and (self.size < 16 or self.size & (self.size - 1)):
            raise UsageError(f"size must be a power of two >= 16 for dcgan, got {self.size}")
        if self.loss == "wgan_gp" and self.d_norm == "batch":
            raise UsageError("d_norm=batch cannot be used with loss=wgan_gp (use auto, layer or none)")
        validate_label_smoothing(self)
        if self.info_cat and not 2 <= self.info_cat <= self.z_dim:
            raise UsageError(f"info_cat must be 0 (off) or a number of categories in [2, z_dim={self.z_dim}], "
                             f"got {self.info_cat}")
        if self.lambda_info < 0:
            raise UsageError(f"lambda_info must be >= 0, got {self.lambda_info}")
        try:
            parse_policy(self.augment)
        except ValueError as err:
            raise UsageError(f"augment: {err}") from None

    @property
    def resolved_d_norm(self) -> str:
        if self.d_norm != "auto":
            return self.d_norm
        return "none" if self.spectral_norm or self.loss == "wgan_gp" else "batch"


class DCGANRecipe(GANRecipe):
    name = "dcgan"
    Config = DCGANConfig
    kinds = ("image",)
    default_data = "mnist"

    @classmethod
    def data_size(cls, cfg: DCGANConfig, native: int) -> int:
        if cfg.size:
            return cfg.size
        return max(16, 1 << (native - 1).bit_length())  # next power of two: 28 -> 32, 8 -> 16

    def build(self, device: torch.device) -> None:
        c = self.cfg
        self.augment_policy = parse_policy(c.augment)  # parsed once, read every step
        C, H, W = self.spec.shape
        if H != W:
            raise UsageError(f"dcgan needs square images, got {H}x{W}")
        G = DCGANGenerator(c.z_dim, C, H, c.width, cat=c.info_cat)
        ndf = c.width if c.width_d is None else c.width_d
        D = DCGANDiscriminator(C, H, ndf, norm=c.resolved_d_norm, spectral_norm=c.spectral_norm, q_dim=c.info_cat)
        dcgan_init_(G)
        dcgan_init_(D)
        self.modules = {"G": G.to(device), "D": D.to(device)}
        self.optimizers = {
            "D": torch.optim.Adam(D.parameters(), lr=c.lr if c.lr_d is None else c.lr_d, betas=tuple(c.betas)),
            "G": torch.optim.Adam(G.parameters(), lr=c.lr, betas=tuple(c.betas)),
        }

    def latent_code(self, z: torch.Tensor) -> torch.Tensor | None:
        return latent_category(z, self.cfg.info_cat) if self.cfg.info_cat else None
