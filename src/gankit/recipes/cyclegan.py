"""CycleGAN (Zhu et al. 2017, arXiv:1703.10593): unpaired image-to-image translation.

Two generators, G_AB: A -> B and G_BA: B -> A (the paper's G: X -> Y and F: Y -> X), and two
discriminators, D_A on domain A and D_B on domain B (the paper's D_X, D_Y), trained on unpaired
batches a ~ A, b ~ B. Objective (Sec. 3, eq. 1-3, with the least-squares GAN loss of Sec. 4):

    L_GAN(G_AB, D_B) = E_b[(D_B(b) - 1)^2] + E_a[D_B(G_AB(a))^2]                   (LSGAN, Mao et al. 2017)
    L_cyc = E_a[|G_BA(G_AB(a)) - a|_1] + E_b[|G_AB(G_BA(b)) - b|_1]                          (eq. 2)
    L_identity = E_b[|G_AB(b) - b|_1] + E_a[|G_BA(a) - a|_1]                              (Sec. 5.2)

    generators minimise    E_a[(D_B(G_AB(a)) - 1)^2] + E_b[(D_A(G_BA(b)) - 1)^2]
                           + lambda_cycle * L_cyc + lambda_identity * lambda_cycle * L_identity
    each discriminator     1/2 E[(D(real) - 1)^2] + 1/2 E[D(fake)^2],  fake from its history pool

Settings as in the paper and its reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix):
``lambda_cycle`` = 10, ``lambda_identity`` = 0.5 (relative to lambda_cycle, i.e. weight 5, as the
reference's ``lambda_identity``), ``pool_size`` = 50 fakes per discriminator (Shrivastava et al.
2017: once full, each new fake replaces a random stored one with probability 1/2 and D sees the
stored one), Adam lr 2e-4, β = (0.5, 0.999), one G step (both generators) then one D step (both
discriminators) per iteration, networks of ``gankit.models.cyclegan``.

Defaults that differ from the paper, for a CPU budget: ``ngf`` = ``ndf`` = 32 (paper 64) and
``batch`` = 4 (paper 1). On mnist2mnistm, 10 minutes (``benchmarks/cyclegan_mnistm.py``), the
paper's ngf = ndf = 64, batch 1 reached 1,860 steps on 2 threads and content 0.910, fid_mnistm
307 (untranslated digits: 452); ngf = ndf = 32, batch 4 on *one* thread reached 795 steps and
content 0.936, fid_mnistm 119 (both measured with an evaluation classifier trained on one photo
patch per digit, before ``MNISTM_BLENDS``); at batch 1 and width 32 (1 thread, 5 minutes) content
was 0.902. With these defaults on the final data, 10 minutes on 2 threads: 2,130 steps, content
0.966, fid_mnistm 92.9 (untranslated digits 0.974, 218); the same with ``--batch 1`` (the paper's
batch, width 32): 5,108 steps, content 0.934, fid_mnistm 101.5, so batch 1 misses the 95% bar; with 16x16 instead of 34x34 patches
(``d_layers=1``, the previous default) 2,638 steps, content 0.892, fid_mnistm 121.
``--set ngf=64 --set ndf=64 --batch 1`` gives the paper's settings back.

Learning rate: constant, then linear decay to zero (the paper: 100 epochs + 100 epochs).
``schedule_steps`` is the schedule's length (lr reaches 0 there) and defaults to the run's
``--steps``; ``decay_start`` (a step) defaults to half of it. With ``--minutes`` and no
``schedule_steps`` the length is unknown and the lr stays constant. Resuming with a larger
``--steps`` stretches the rest of a ``--steps``-derived schedule; give ``schedule_steps`` to fix it.

Deviations: steps, not epochs, for the schedule (the two domains have different sizes); for
images under 64 px the PatchGAN has fewer stride-2 layers, its patch just covering the image
(32 px: 34x34 patches; see ``gankit.models.cyclegan``); the history pools draw their randomness from the
training RNG (``ctx.rand``) and are part of the checkpoint, so a resumed run is bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import UsageError
from gankit.losses import d_lsgan
from gankit.models.cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    cyclegan_init_,
    default_blocks,
    default_d_layers,
)
from gankit.recipes.base import Recipe, StepContext

DIRECTIONS = {"AtoB": "G_AB", "BtoA": "G_BA"}


@dataclass
class CycleGANConfig:
    ngf: int = 32  # generator width (channels after c7s1); the paper: 64
    ndf: int = 32  # discriminator width (channels of C64); the paper: 64
    n_blocks: int | None = None  # residual blocks; None: 6 up to 128 px, 9 above (the paper)
    d_layers: int | None = None  # PatchGAN stride-2 layers; None: the shallowest whose patch covers the image (3 = 70x70 at most)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # relative to lambda_cycle (0.5 -> weight 5); 0 = off
    pool_size: int = 50  # fakes kept per discriminator; 0 = D sees only the newest fakes
    lr: float = 2e-4
    betas: tuple[float, ...] = (0.5, 0.999)
    batch: int = 4  # the paper: 1
    decay_start: int | None = None  # step where the linear decay starts; None: half the schedule
    schedule_steps: int | None = None  # step where lr reaches 0; None: the run's --steps (none: constant lr)
    size: int | None = None  # image side (divisible by 4); None: the data's

    def validate(self) -> None:
        for key in ("ngf", "ndf", "batch"):
            if getattr(self, key) <= 0:
                raise UsageError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if self.n_blocks is not None and self.n_blocks < 0:
            raise UsageError(f"n_blocks must be 0 or more, got {self.n_blocks}")
        if self.d_layers is not None and not 1 <= self.d_layers <= 5:
            raise UsageError(f"d_layers must be from 1 to 5, got {self.d_layers}")
        for key in ("lambda_cycle", "lambda_identity", "pool_size"):
            if getattr(self, key) < 0:
                raise UsageError(f"{key} must be 0 or more, got {getattr(self, key)}")
        if not self.lr > 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UsageError(f"betas must be two numbers in [0, 1), got {','.join(map(str, self.betas))}")
        if self.size is not None and (self.size < 8 or self.size % 4):
            raise UsageError(f"size must be a multiple of 4, at least 8, for cyclegan, got {self.size}")
        if self.schedule_steps is not None and self.schedule_steps <= 0:
            raise UsageError(f"schedule_steps must be a positive integer, got {self.schedule_steps}")
        if self.decay_start is not None and self.decay_start < 0:
            raise UsageError(f"decay_start must be 0 or more, got {self.decay_start}")
        if None not in (self.decay_start, self.schedule_steps) and self.decay_start >= self.schedule_steps:
            raise UsageError(f"decay_start {self.decay_start} must be below schedule_steps {self.schedule_steps}")


class ImagePool:
    """History of generated images (Shrivastava et al. 2017), as in the CycleGAN reference code.

    Until ``size`` fakes are stored, each new fake is stored and returned; then, per image, with
    probability 1/2 a uniformly chosen stored fake is returned and replaced by the new one,
    otherwise the new one is returned. Random numbers come from ``ctx.rand`` (the training RNG).
    """

    def __init__(self, size: int, shape: tuple[int, ...], device: torch.device) -> None:
        self.size = size
        self.buf = torch.zeros(size, *shape, device=device)  # (size, C, H, W)
        self.count = 0

    def query(self, images: Tensor, ctx: StepContext) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if self.count < self.size:
                self.buf[self.count] = img
                self.count += 1
                out.append(img)
            elif float(ctx.rand(1)) > 0.5:
                i = min(int(float(ctx.rand(1)) * self.size), self.size - 1)
                out.append(self.buf[i].clone())
                self.buf[i] = img
            else:
                out.append(img)
        return torch.stack(out)  # (B, C, H, W)

    def state(self) -> Tensor:
        return self.buf[: self.count].clone()

    def load(self, stored: Tensor) -> None:
        self.count = len(stored)
        self.buf[: self.count] = stored.to(self.buf.device)


class CycleGANRecipe(Recipe):
    name = "cyclegan"
    Config = CycleGANConfig
    kinds = ("image",)
    domains = ("A", "B")
    default_data = "mnist2mnistm"
    best_metric = ("fid_mnistm", "min")

    @classmethod
    def data_size(cls, cfg: CycleGANConfig, native: int) -> int:
        return cfg.size or native

    def build(self, device: torch.device) -> None:
        c = self.cfg
        C, H, W = self.spec.shape
        if H != W or H % 4:
            raise UsageError(f"cyclegan needs square images with a side divisible by 4, got {H}x{W}; pass --size")
        blocks = default_blocks(H) if c.n_blocks is None else c.n_blocks
        layers = c.d_layers or default_d_layers(H)
        nets: dict[str, nn.Module] = {
            "G_AB": ResnetGenerator(C, ngf=c.ngf, n_blocks=blocks),
            "G_BA": ResnetGenerator(C, ngf=c.ngf, n_blocks=blocks),
            "D_A": PatchDiscriminator(C, ndf=c.ndf, layers=layers),
            "D_B": PatchDiscriminator(C, ndf=c.ndf, layers=layers),
        }
        for net in nets.values():
            cyclegan_init_(net)
        self.modules = {k: v.to(device) for k, v in nets.items()}
        m = self.modules
        self.optimizers = {
            "G": torch.optim.Adam([*m["G_AB"].parameters(), *m["G_BA"].parameters()], lr=c.lr, betas=tuple(c.betas)),
            "D": torch.optim.Adam([*m["D_A"].parameters(), *m["D_B"].parameters()], lr=c.lr, betas=tuple(c.betas)),
        }
        self.pools = {d: ImagePool(c.pool_size, (C, H, W), device) for d in ("A", "B")}

    def lr_at(self, step: int, total_steps: int | None) -> float:
        """Constant lr, then linear decay to 0 at ``schedule_steps`` (default: the run's --steps)."""
        c = self.cfg
        length = c.schedule_steps or total_steps
        if length is None:
            return c.lr
        start = length // 2 if c.decay_start is None else c.decay_start
        if step < start:
            return c.lr
        return c.lr * max(0.0, (length - step) / max(1, length - start))

    # -- training -----------------------------------------------------------------------------
    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        c = self.cfg
        G_AB, G_BA, D_A, D_B = (self.modules[k] for k in ("G_AB", "G_BA", "D_A", "D_B"))
        lr = self.lr_at(ctx.step, ctx.total_steps)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        a, b = batch["A"], batch["B"]  # (B, C, H, W) each, unpaired, in [-1, 1]

        # generators: fool both discriminators, and come back (cycle) and stay (identity)
        fake_b = G_AB(a)  # A -> B
        fake_a = G_BA(b)  # B -> A
        loss_adv = (D_B(fake_b) - 1).square().mean() + (D_A(fake_a) - 1).square().mean()
        loss_cycle = F.l1_loss(G_BA(fake_b), a) + F.l1_loss(G_AB(fake_a), b)
        loss_g = loss_adv + c.lambda_cycle * loss_cycle
        loss_idt = torch.zeros((), device=a.device)
        if c.lambda_identity > 0:  # a generator fed its own target domain should change nothing
            loss_idt = F.l1_loss(G_AB(b), b) + F.l1_loss(G_BA(a), a)
            loss_g = loss_g + c.lambda_identity * c.lambda_cycle * loss_idt
        ctx.optimize("G", loss_g)  # backward reaches the generators' parameters only

        # discriminators: real images vs fakes from each one's history pool
        old_b = self.pools["B"].query(fake_b, ctx)
        old_a = self.pools["A"].query(fake_a, ctx)
        out_real_a, out_fake_a = D_A(a), D_A(old_a)
        out_real_b, out_fake_b = D_B(b), D_B(old_b)
        loss_d_a, loss_d_b = d_lsgan(out_real_a, out_fake_a), d_lsgan(out_real_b, out_fake_b)
        ctx.optimize("D", loss_d_a + loss_d_b)
        return {
            "loss_G": loss_g.detach(), "loss_G_adv": loss_adv.detach(), "loss_cycle": loss_cycle.detach(),
            "loss_identity": loss_idt.detach(), "loss_D_A": loss_d_a.detach(), "loss_D_B": loss_d_b.detach(),
            "D_B_real": out_real_b.detach().mean(), "D_B_fake": out_fake_b.detach().mean(),
            "lr": torch.tensor(lr),
        }

    def extra_state(self) -> dict[str, Any]:
        return {f"pool_{d}": p.state() for d, p in self.pools.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for d, p in self.pools.items():
            if f"pool_{d}" in state:
                p.load(state[f"pool_{d}"])

    # -- sampling -----------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator) -> Any:
        raise UsageError("cyclegan translates images rather than sampling noise: "
                         "use `gankit translate RUN INPUT... --out DIR|FILE.npz`")

    def data_inputs(self, n: int, generator: torch.Generator, data: Any = None) -> dict[str, Tensor]:
        """``n`` held-out images of each domain ({"A", "B"}, float [-1, 1]), drawn by ``generator``."""
        if data is None:
            return self.sample_inputs(n, generator)
        out = {}
        for d in ("A", "B"):
            rows = data.rows(d, held_out=True)
            idx = torch.randperm(len(rows), generator=generator)
            idx = idx.repeat(-(-n // len(idx)))[:n]  # more than held out: all of them, then again
            out[d] = rows[idx].float().mul(2.0 / 255.0).sub(1.0)
        return out

    @torch.no_grad()
    def generate(self, modules: dict[str, nn.Module], inputs: dict[str, Tensor]) -> Tensor:
        """G_AB(inputs["A"]): domain-B images translated from held-out A images."""
        return self.translate(modules, inputs["A"], "AtoB")

    @torch.no_grad()
    def translate(self, modules: dict[str, nn.Module], x: Tensor, direction: str) -> Tensor:
        if direction not in DIRECTIONS:
            raise UsageError(f"direction must be AtoB or BtoA, got {direction!r}")
        G = modules[DIRECTIONS[direction]]
        return G(x.to(next(G.parameters()).device))

    @torch.no_grad()
    def grid(self, modules: dict[str, nn.Module], inputs: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Rows: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B)); up to 8 images per row."""
        k = min(8, len(inputs["A"]), len(inputs["B"]))
        a, b = inputs["A"][:k], inputs["B"][:k]
        fake_b = self.translate(modules, a, "AtoB")
        fake_a = self.translate(modules, b, "BtoA")
        rows = [a, fake_b, self.translate(modules, fake_b, "BtoA"), b, fake_a, self.translate(modules, fake_a, "AtoB")]
        return torch.cat([r.to(fake_b.device) for r in rows]), k

    def evaluate(self, modules: dict[str, nn.Module], data: Any, n: int, seed: int) -> dict[str, Any]:
        from gankit.metrics.translation import evaluate_translation

        return evaluate_translation(lambda x, d: self.translate(modules, x, d), data, n=n)

    def export_modules(self) -> tuple[str, ...]:
        return ("G_AB", "G_BA")  # translating needs the generators only
