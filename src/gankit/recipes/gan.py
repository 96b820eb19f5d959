"""The original GAN (Goodfellow et al. 2014, arXiv:1406.2661): the two-player min-max game.

    min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]                     (eq. 1)

Algorithm 1: for each iteration, ``k`` times: sample m noise vectors and m examples and take a D
step ascending V; then take one G step. ``loss=minimax`` is exactly eq. 1 for both players;
``loss=non_saturating`` (default; the paper's Sec. 3 recommendation) lets G ascend log D(G(z))
instead, which has the same fixed point but does not saturate while D wins early on. The other
losses (hinge, lsgan, wgan_gp) are offered for comparison; see ``gankit.losses``.

Deviations: MLP units (see ``gankit.models.gan``); Adam instead of SGD with momentum; the first
D step of an iteration reuses the G(z) batch that the G step then differentiates (the DCGAN
reference code does the same), later D steps (k > 1) draw fresh noise and data.

Defaults, chosen on the 2-D mixtures (ring8, grid25) for a 2-minute CPU budget, each measured
with ``gankit train gan --data grid25 --minutes 2`` (see README):
- ``ema=true`` (Yazıcı et al. 2019, arXiv:1806.04498): samples come from an exponential moving
  average of G's weights. Measured on grid25, 2 minutes, everything else default: without EMA
  24/25 modes and 78% high-quality samples (G oscillates, samples sit on bridges between modes);
  with EMA 25/25 and 93%.
- ``r1_gamma=0.1`` (Mescheder et al. 2018, arXiv:1801.04406): the R1 penalty on real data. In
  45-90 second sweeps over other settings without it the game covered 11-22 of the 25 grid
  modes; with it 19-22 in 60 s, and 24 at 2 minutes (25 with EMA).
- ``betas=(0, 0.9)``, ``z_dim=4``, 3x128 hidden units, batch 128: more, cheaper steps per minute.
- ``pac`` (PacGAN, Lin et al. 2018) is available, off by default (it did not help here).
``--set ema=false --set r1_gamma=0 --set betas=0.5,0.999`` gives the plain game back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gankit.augment import diff_augment
from gankit.errors import UsageError
from gankit.losses import LOSSES, gradient_penalty, info_nll, r1_penalty
from gankit.models.gan import MLPDiscriminator, MLPGenerator
from gankit.recipes.base import Recipe, StepContext

LossName = Literal["non_saturating", "minimax", "hinge", "lsgan", "wgan_gp"]


@dataclass
class GANConfig:
    z_dim: int = 4
    hidden: int = 128  # units per hidden layer, G and D
    depth: int = 3  # hidden layers, G and D
    loss: LossName = "non_saturating"
    k: int = 1  # D steps per G step (Algorithm 1)
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.0, 0.9)
    batch: int = 128
    lambda_gp: float = 10.0  # only for loss=wgan_gp
    r1_gamma: float = 0.1  # γ of the R1 penalty γ/2·E‖∇D(x)‖² on real data (0 = off)
    label_smoothing: float = 0.0  # one-sided: D's target for real samples is 1 - this (Salimans et al. 2016)
    pac: int = 1  # PacGAN packing: D judges `pac` samples jointly (1 = the paper's D)
    ema: bool = True  # sample with an exponential moving average of G's weights
    ema_decay: float = 0.999
    size: int | None = None  # image side (images are flattened); None = native

    def validate(self) -> None:
        validate_common(self, ("z_dim", "hidden", "depth", "k", "batch", "pac"))
        if self.batch % self.pac:
            raise UsageError(f"batch {self.batch} must be a multiple of pac {self.pac}")
        validate_label_smoothing(self)


def validate_label_smoothing(cfg: object) -> None:
    if not 0 <= cfg.label_smoothing < 1:
        raise UsageError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if cfg.label_smoothing and cfg.loss not in ("non_saturating", "minimax"):
        raise UsageError(f"label_smoothing applies to the BCE losses (non_saturating, minimax), not loss={cfg.loss}")


def validate_common(cfg: object, positive: tuple[str, ...]) -> None:
    """Checks shared by the GAN-family configs (positive ints, lr and lr_d, width_d, Adam betas, EMA decay)."""
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise UsageError(f"{key} must be a positive integer, got {getattr(cfg, key)}")
    if not cfg.lr > 0:
        raise UsageError(f"lr must be positive, got {cfg.lr}")
    lr_d = getattr(cfg, "lr_d", None)  # D's own lr (two time-scale update rule) where a recipe has one
    if lr_d is not None and not lr_d > 0:
        raise UsageError(f"lr_d must be > 0, or none to use lr, got {lr_d}")
    width_d = getattr(cfg, "width_d", None)  # D's own width (ndf) where a recipe has one
    if width_d is not None and width_d <= 0:
        raise UsageError(f"width_d must be a positive integer, or none to use width, got {width_d}")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise UsageError(f"betas must be two numbers in [0, 1), got {','.join(map(str, cfg.betas))}")
    if not 0 < cfg.ema_decay < 1:
        raise UsageError(f"ema_decay must be in (0, 1), got {cfg.ema_decay}")


def heads(out: Tensor, code: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """D's output split into (logit (B,), Q(c | x)'s logits (B, k) or None): with a latent code D
    returns (B, 1 + k), the logit first (``gankit.models.dcgan.DCGANDiscriminator``'s ``q_dim``)."""
    return (out, None) if code is None else (out[:, 0], out[:, 1:])


class GANRecipe(Recipe):
    """Trains ``G`` and ``D``; ``_packed_D`` is where subclasses may change how D sees a batch."""

    name = "gan"
    Config = GANConfig
    kinds = ("points", "image")
    default_data = "ring8"

    def build(self, device: torch.device) -> None:
        c = self.cfg
        image = self.spec.kind == "image"
        G = MLPGenerator(c.z_dim, self.spec.shape, c.hidden, c.depth, tanh=image)
        D = MLPDiscriminator((c.pac, *self.spec.shape), c.hidden, c.depth)
        self.modules = {"G": G.to(device), "D": D.to(device)}
        self.optimizers = {
            "D": torch.optim.Adam(D.parameters(), lr=c.lr, betas=tuple(c.betas)),
            "G": torch.optim.Adam(G.parameters(), lr=c.lr, betas=tuple(c.betas)),
        }

    augment_policy: tuple[str, ...] = ()  # DiffAugment policy (set by image recipes)

    def _packed_D(self, x: Tensor) -> Tensor:
        """D on groups of ``pac`` samples (Lin et al. 2018, arXiv:1712.04086): (B, ...) -> (B/pac,)."""
        pac = getattr(self.cfg, "pac", 1)
        return self.modules["D"](x if pac == 1 else x.reshape(x.shape[0] // pac, pac, *x.shape[1:]))

    def latent_code(self, z: Tensor) -> Tensor | None:
        """The categorical code G reads from latent ``z`` and Q must recover (InfoGAN; dcgan's
        ``info_cat``), or None: the plain game."""
        return None

    def train_step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        c = self.cfg
        G, D = self.modules["G"], self._packed_D
        policy = self.augment_policy
        if policy:  # DiffAugment: D sees real and fake through the same random transforms
            D = lambda x: self._packed_D(diff_augment(x, policy, ctx.rand(x.shape[0], 2 * len(policy))))  # noqa: E731
        d_loss_fn, g_loss_fn = LOSSES[c.loss]
        lambda_info = getattr(c, "lambda_info", 0.0)
        B = batch.shape[0]
        z = ctx.randn(B, c.z_dim)
        fake = G(z)  # kept with its graph for the G step below
        real, z_d = batch, z
        for i in range(c.k):
            if i == 0:
                fake_d = fake.detach()
            else:  # Algorithm 1: fresh minibatches for every D step
                real, z_d = ctx.next_batch(), ctx.randn(B, c.z_dim)
                with torch.no_grad():
                    fake_d = G(z_d)
            r1 = c.r1_gamma
            if r1:
                real = real.detach().requires_grad_(True)
            code = self.latent_code(z_d)
            (out_real, _), (out_fake, q_fake) = heads(D(real), code), heads(D(fake_d), code)  # BN: pure batches
            if c.label_smoothing:  # validate() allows it only with the BCE losses
                loss_d = d_loss_fn(out_real, out_fake, 1.0 - c.label_smoothing)
            else:
                loss_d = d_loss_fn(out_real, out_fake)
            if r1:
                loss_d = loss_d + 0.5 * r1 * r1_penalty(out_real, real)
            if c.loss == "wgan_gp":  # the penalty is on the critic's value alone, not on Q's logits
                alpha = ctx.rand(B, *([1] * (real.dim() - 1)))
                critic = lambda x: heads(D(x), code)[0]  # noqa: E731
                loss_d = loss_d + c.lambda_gp * gradient_penalty(critic, real, fake_d, alpha)
            if code is not None:  # Q (D's last layer and, through it, D's body) learns to read the code
                loss_d = loss_d + lambda_info * info_nll(q_fake, code)
            ctx.optimize("D", loss_d)
        code = self.latent_code(z)
        out_g, q_g = heads(D(fake), code)
        loss_g = g_loss_fn(out_g)
        if code is not None:
            loss_info = info_nll(q_g, code)
            loss_g = loss_g + lambda_info * loss_info  # G must make its code readable
        ctx.optimize("G", loss_g)  # backward reaches G's parameters only (D's are not its inputs)
        logs: dict[str, Tensor] = {"loss_D": loss_d.detach(), "loss_G": loss_g.detach()}
        if code is not None:
            logs["info"] = loss_info.detach()  # -log Q(c | G(z)); log k when G ignores the code
        if c.loss in ("non_saturating", "minimax"):  # D's probabilities are meaningful here
            logs["D_real"] = torch.sigmoid(out_real.detach()).mean()
            logs["D_fake"] = torch.sigmoid(out_fake.detach()).mean()
        else:
            logs["D_real"], logs["D_fake"] = out_real.detach().mean(), out_fake.detach().mean()
        return logs
