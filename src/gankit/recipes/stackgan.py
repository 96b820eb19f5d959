"""StackGAN-v1 (Zhang, Xu, Li, Zhang, Wang, Huang & Metaxas 2017, "StackGAN: Text to
Photo-realistic Image Synthesis with Stacked Generative Adversarial Networks", arXiv:1612.03242):
a low-resolution sketch from text, then a refinement at 4x the side.

Networks (``gankit.models.stackgan``): G1(z, ĉ_0) and G2(s_0, ĉ), each with its own Conditioning
Augmentation ĉ = μ(φ_t) + σ(φ_t) ⊙ ε; matching-aware D1 and D2 (Reed's D from
``gankit.models.text2image``). φ is gankit's frozen char-CNN-RNN text encoder, found or trained
exactly as for ``text2image`` (``encoder=auto`` or a text-encoder run); Stage-II uses the encoder
that Stage-I was trained with (it travels in Stage-I's export).

Objective (eq. 3-6), with s = D(·,·) as a probability and one random caption t of each image:

- Stage-I (eq. 3, 4): D1 minimises -[log s_r + ½(log(1 - s_w) + log(1 - s_f))] with
  s_r = D1(I_0, t), s_w = D1(I_0, t̂) (another image's caption), s_f = D1(G1(z, ĉ_0), t)
  (``gankit.losses.d_matching_aware``; the paper's eq. 3 names the real/fake terms, its
  matching-aware D the wrong pair, weighted as in the authors' code); G1 minimises
  -log s_f + λ·KL(N(μ_0, Σ_0) ‖ N(0, I)) (non-saturating, as the authors' code).
- Stage-II (eq. 5, 6): the same with D2 on images of 4x the side and G2(s_0, ĉ), s_0 = G1(z, ĉ_0)
  from the frozen Stage-I (no optimizer, eval mode, weights saved in Stage-II's checkpoints and
  export so that ``txt2img`` needs only the final run).

Training both stages in one command (``stage=both``, the default): ``gankit train`` trains Stage-I
first as a run of its own in ``RUN/stage1/`` (``stage=1``), then Stage-II in ``RUN`` with
``stage1_run`` pointing at it (``gankit.train`` drives this through :meth:`first_run`).
``stage1_share`` (default 0.3) of ``--steps`` or ``--minutes`` goes to Stage-I, the rest to
Stage-II; ``RUN`` counts Stage-II's steps, and ``--resume --steps N`` keeps N the two stages' total.
``stage=1`` trains Stage-I alone; ``stage=2 stage1_run=RUN`` trains Stage-II on an existing Stage-I
(a stackgan run or export holding ``G1``, same ``size``, ``z_dim``, ``c_dim``, ``ngf1``).

Hyper-parameters named after the paper: ``c_dim`` (N_g = 128), ``z_dim`` (N_z = 100), ``t_dim``
(D's compressed text, N_d = 128), ``n_res`` residual blocks, ``kl_weight`` λ = 1 (the paper, Sec.
3.1: "We set λ = 1 for all our experiments"; the authors' configs, e.g. ``stageI/cfg/birds.yml``,
use 2.0). Adam lr 2e-4, β1 0.5, batch 64; the learning rate halves every ``lr_decay_epochs`` = 100
epochs (paper; the authors' Stage-I configs use 50). ``size`` is Stage-II's side; Stage-I's is
``size / 4`` (the paper: 256 and 64).

Deviations, each for a 2-core CPU: ``size`` 64 by default (Stage-I 16 px; the paper 256 / 64);
widths ``ngf1`` 32, ``ndf1`` 32, ``ngf2`` 32, ``ndf2`` 16 (the authors: 128 and 64); 2 residual
blocks (the paper: 2 at 128 px, 4 at 256 px); D2 is Reed's D at 64 px (the paper's D2 has two extra
3x3 layers). The KL term is averaged over the c_dim components (as the authors' code does;
:func:`gankit.losses.kl_normal` is the sum, so it is divided by c_dim here): λ weighs the mean
per-dimension KL, not the total. At 64 px, ``lr_decay_epochs`` = 100 is longer than the built-in
budget (about 25 epochs of ``shapes``), so the rate stays constant there; set it lower to see the
schedule. Off-paper, as in gankit's text2image and for the same measured reason (G ignored z on
``shapes``): samples from an EMA of G1 / G2 (``ema``) and, in Stage-I only, the mode-seeking term
(``lambda_ms`` = 0.1, text2image's measured default; MSGAN, arXiv:1903.05628; 0 gives the paper's objective),
its distance taken in D1's 4x4 features (``ms_space=features``; ``pixels`` is MSGAN's). Stage-II has no z,
so no mode-seeking term. Sampling draws the CA noise ε too: a latent is [z, ε_0, ε] (``latent_dim``).

D1 and D2 take text2image's measured D defaults (see ``gankit.recipes.text2image``), off-paper:
spectral norm instead of BatchNorm (``spectral_norm``), the projection term beside the paper's
concatenation (``projection``), and the hardest other caption of the minibatch below cosine
``wrong_max_sim`` as the wrong text (``wrong=hard``; the paper: a random one), and the image-text
contrastive term on D's projection codes (``lambda_con`` for D, ``lambda_con_g`` for G, captions
above cosine ``con_max_sim`` not negatives; XMC-GAN, arXiv:2101.04702), which raised Stage-II's shape
accuracy in the 20-minute check from 0.838 to 0.935 (text2image's, in its 15-minute one: 0.769 to 0.838).
Whether a caption may describe an image is judged against all of the image's captions
(``describes=image``, text2image's default since it measured fewer wrong captions that fit the
image). The 20-minute check with it and the 4,000-step text encoder, on a machine at 0.58x the
README's speed (1,565 Stage-I and 1,549 Stage-II steps), passed: 19.8 minutes, Stage-II colour
0.940, shape 0.906, fid_attr 1,105 against bicubic Stage-I's 6,516.
``--set spectral_norm=false --set projection=false --set wrong=random --set lambda_con=0 --set
lambda_con_g=0`` gives the paper's D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit import text
from gankit.errors import UsageError
from gankit.losses import contrastive_match, d_matching_aware, kl_normal
from gankit.models.dcgan import dcgan_init_
from gankit.models.stackgan import StageIGenerator, StageIIGenerator
from gankit.recipes.base import FirstRun, StepContext
from gankit.recipes.gan import validate_common
from gankit.recipes.text2image import (Text2ImageRecipe, TextGANSettings, TextInputs, batch_similarity, eval_record,
                                       mode_seeking_term, wrong_captions)
from gankit.recipes.text_encoder import pick_caption

STAGES = ("1", "2", "both")
G1_KEYS = ("size", "z_dim", "c_dim", "ngf1")  # what must match between Stage-I and the Stage-II using it


@dataclass
class StackGANConfig(TextGANSettings):  # batch, D (spectral_norm, projection, wrong) and encoder: text2image's
    stage: str = "both"  # 1 | 2 | both (Stage-I into RUN/stage1, then Stage-II)
    stage1_run: str = ""  # Stage-I run or export for stage=2 (with both: skips training Stage-I)
    stage1_share: float = 0.3  # share of --steps / --minutes for Stage-I when stage=both
    size: int = 64  # Stage-II side (power of two >= 64); Stage-I's is size / 4
    z_dim: int = 100  # N_z
    c_dim: int = 128  # N_g, the conditioning augmentation's output
    t_dim: int = 128  # N_d, the text compressed inside D1 and D2
    ngf1: int = 32
    ndf1: int = 32
    ngf2: int = 32
    ndf2: int = 16
    n_res: int = 2
    kl_weight: float = 1.0  # λ
    lambda_ms: float = 0.1  # mode-seeking term in Stage-I (MSGAN); 0 = the paper's objective
    ms_space: Literal["features", "occupancy", "layout", "pixels"] = "features"  # its distance: D1's 4x4 features, where (and how much) they respond, or pixels (MSGAN's)
    lr: float = 2e-4
    betas: tuple[float, ...] = (0.5, 0.999)
    lr_decay_epochs: int = 100  # the learning rate halves every this many epochs
    ema: bool = True
    ema_decay: float = 0.999
    standing_stats: int = 0  # batches re-estimating the sampled stage's BatchNorm statistics; text2image's default is 32

    def validate(self) -> None:
        validate_common(self, ("z_dim", "c_dim", "t_dim", "ngf1", "ndf1", "ngf2", "ndf2", "batch", "encoder_steps",
                               "lr_decay_epochs"))
        if self.stage not in STAGES:
            raise UsageError(f"bad value for stage: {self.stage!r} (expected one of 1, 2, both)")
        if self.stage == "2" and not self.stage1_run:
            raise UsageError("stage=2 needs stage1_run=RUN (a Stage-I run of gankit train stackgan --set stage=1); "
                             "stage=both trains Stage-I first")
        if self.stage == "1" and self.stage1_run:
            raise UsageError("stage1_run only applies to stage=2 or both (stage=1 trains Stage-I itself)")
        if self.size < 64 or self.size & (self.size - 1):
            raise UsageError(f"size must be a power of two >= 64 for stackgan (Stage-I is size/4), got {self.size}")
        if self.n_res < 0:
            raise UsageError(f"n_res must be 0 or more, got {self.n_res}")
        if self.kl_weight < 0 or self.lambda_ms < 0:
            raise UsageError("kl_weight and lambda_ms must be >= 0")
        if not 0 < self.stage1_share < 1:
            raise UsageError(f"stage1_share must be in (0, 1), got {self.stage1_share}")
        self.validate_text()


class StackGANRecipe(Text2ImageRecipe):
    """Stage-I (``stage=1``) or Stage-II on a frozen Stage-I (``stage=2``, and ``both`` once
    Stage-I is trained). Captions, encoding and ``inputs_for`` come from :class:`Text2ImageRecipe`."""

    name = "stackgan"
    Config = StackGANConfig

    @classmethod
    def data_size(cls, cfg: StackGANConfig, native: int) -> int:
        return cfg.size // 4 if cfg.stage == "1" else cfg.size

    @classmethod
    def first_run(cls, cfg: StackGANConfig) -> FirstRun | None:
        """``stage=both`` without ``stage1_run``: Stage-I is trained first, into ``RUN/stage1``."""
        if cfg.stage != "both" or cfg.stage1_run:
            return None
        return FirstRun("stage1", ["stage=1"], cfg.stage1_share, "stage1_run")

    @classmethod
    def prepare_data(cls, ds: Any, cfg: StackGANConfig, tcfg: Any) -> Any:
        """Stage-I: the text encoder and caption embeddings as for text2image. Stage-II: Stage-I's
        G1 and text encoder (``ds.frozen``), and the embeddings under that encoder."""
        if not ds.captions:
            raise UsageError(f"stackgan needs captioned data (shapes, CUB, Oxford-102 or a folder with a .txt per "
                             f"image); {ds.name} has no captions")
        ds.info = {**ds.info, "n_images": int(ds.x.shape[0])}
        if cfg.stage == "1":
            return super().prepare_data(ds, cfg, tcfg)
        from gankit import export
        from gankit.config import from_dict

        if not cfg.stage1_run:
            raise UsageError("stage=both trains Stage-I through gankit.train (it sets stage1_run=RUN/stage1); "
                             "set stage1_run to build Stage-II directly")
        if tcfg.eval_every and ds.name != "shapes":
            raise UsageError(f"--eval-every scores stackgan by caption accuracy on the built-in shapes; {ds.name} "
                             "has no attribute classifier")
        folder = export.resolve(cfg.stage1_run)
        model = export.load(folder)
        if model.recipe.name != cls.name or "G1" not in model.recipe.modules:
            raise UsageError(f"stage1_run={cfg.stage1_run} is a {model.recipe.name} run, not a stackgan Stage-I run")
        theirs = from_dict(StackGANConfig, model.config["hparams"])
        for key in G1_KEYS:
            if getattr(theirs, key) != getattr(cfg, key):
                raise UsageError(f"stage1_run={cfg.stage1_run} was trained with {key}={getattr(theirs, key)}, this "
                                 f"run has {key}={getattr(cfg, key)}; pass --set {key}={getattr(theirs, key)}")
        enc = dict(model.recipe.spec.info["text_encoder"])
        T = model.recipe.modules["T"]
        emb, n = text.embed_captions(T, enc["arch"], enc["sha256"], ds.captions)
        ds.aligned = {"emb": emb, "n_caps": n}
        ds.frozen = {"T": T.state_dict(), "G1": model.recipe.modules["G1"].state_dict()}
        ds.info = {**ds.info, "text_encoder": enc,
                   "stage1": {"source": str(folder), "step": model.config.get("step")}}
        return ds

    def __init__(self, cfg: StackGANConfig, spec: Any) -> None:
        super().__init__(cfg, spec)
        self.two = cfg.stage != "1"  # Stage-II is what this run trains
        self.n_images = int(spec.info.get("n_images") or 0)
        if self.two:
            self.grid_nrow = 16  # pairs: Stage-I (bicubic x4), Stage-II

    @property
    def latent_dim(self) -> int:
        """latent = [z, ε_0 (Stage-I CA), ε (Stage-II CA)]."""
        return self.cfg.z_dim + self.cfg.c_dim * (2 if self.two else 1)

    def build(self, device: torch.device) -> None:
        c = self.cfg
        C, H, _ = self.spec.shape
        E = self.arch["emb_dim"]
        s1 = c.size // 4
        G1 = StageIGenerator(c.z_dim, E, c.c_dim, C, s1, c.ngf1)
        dcgan_init_(G1)
        T = text.text_module(self.arch)  # weights: Dataset.frozen / the export
        if not self.two:
            D1 = self.matching_d(E, s1, c.ndf1)
            dcgan_init_(D1)
            self.modules = {"G1": G1.to(device), "D1": D1.to(device), "T": T.to(device)}
            self.optimizers = {"D1": self._adam(D1), "G1": self._adam(G1)}
            return
        G2 = StageIIGenerator(E, c.c_dim, C, s1, c.ngf2, c.n_res)
        D2 = self.matching_d(E, c.size, c.ndf2)
        dcgan_init_(G2)
        dcgan_init_(D2)
        G1.requires_grad_(False).eval()  # frozen: weights from Stage-I (Dataset.frozen / the export)
        self.modules = {"G1": G1.to(device), "G2": G2.to(device), "D2": D2.to(device), "T": T.to(device)}
        self.optimizers = {"D2": self._adam(D2), "G2": self._adam(G2)}

    def _adam(self, module: torch.nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=self.cfg.lr, betas=tuple(self.cfg.betas))

    def ema_modules(self) -> tuple[str, ...]:
        return (("G2",) if self.two else ("G1",)) if self.cfg.ema else ()

    def export_modules(self) -> tuple[str, ...]:
        return ("G1", "G2", "T") if self.two else ("G1", "T")

    def standing_modules(self) -> tuple[str, ...]:
        return (self._g_name,)  # the stage being trained; a frozen Stage-I keeps the statistics it was exported with

    def lr_at(self, step: int) -> float:
        """lr halved every ``lr_decay_epochs`` epochs (epoch = images seen / dataset size)."""
        if not self.n_images:
            return self.cfg.lr
        epoch = step * self.cfg.batch // self.n_images
        return self.cfg.lr * 0.5 ** (epoch // self.cfg.lr_decay_epochs)

    # -- training -------------------------------------------------------------------------------
    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        c = self.cfg
        lr = self.lr_at(ctx.step)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        G1 = self.modules["G1"]
        G, D = (self.modules["G2"], self.modules["D2"]) if self.two else (G1, self.modules["D1"])
        x = batch["x"]  # (B, C, S, S): Stage-I or Stage-II side
        B = x.shape[0]
        k = pick_caption(ctx, batch["n_caps"])
        right = batch["emb"][torch.arange(B, device=x.device), k]  # (B, E) φ_t of each image's caption
        sim = batch_similarity(batch, right, c)  # (B, B) how near caption j comes to describing image i
        wrong = wrong_captions(right, sim, c)  # (B, E)
        z, eps = ctx.randn(B, c.z_dim), ctx.randn(B, c.c_dim)
        if self.two:
            with torch.no_grad():
                low = G1(z, eps, right)[0]  # (B, C, S/4, S/4) s_0 from the frozen Stage-I
            fake, mu, logvar = G(low, ctx.randn(B, c.c_dim), right)  # (B, C, S, S)
        else:
            fake, mu, logvar = G(z, eps, right)

        h_r = D.image(x)  # (B, ch, 4, 4), shared by the right- and wrong-text scores
        s_r, s_w, s_f = D.score(h_r, right), D.score(h_r, wrong), D(fake.detach(), right)  # BN sees pure batches
        loss_d = d_matching_aware(s_r, s_w, s_f)
        same = sim >= c.con_max_sim  # (B, B) pairs that may match: not contrastive negatives
        if c.lambda_con:  # every other caption of the batch is a negative, except possible matches
            loss_con_d = contrastive_match(*D.pair_codes(h_r, right), same, c.tau)
            loss_d = loss_d + c.lambda_con * loss_con_d
        ctx.optimize(self._d_name, loss_d)

        h_f = D.image(fake)
        loss_adv = F.softplus(-D.score(h_f, right)).mean()  # -log D(G(.), t)
        loss_kl = kl_normal(mu, logvar) / c.c_dim  # per component, as the authors' code
        loss_g = loss_adv + c.kl_weight * loss_kl
        if c.lambda_con_g:
            loss_con_g = contrastive_match(*D.pair_codes(h_f, right), same, c.tau)
            loss_g = loss_g + c.lambda_con_g * loss_con_g
        logs = {"loss_D": loss_d.detach(), "loss_G": loss_adv.detach(), "kl": loss_kl.detach(),
                "D_real": torch.sigmoid(s_r.detach()).mean(), "D_wrong": torch.sigmoid(s_w.detach()).mean(),
                "D_fake": torch.sigmoid(s_f.detach()).mean()}
        if c.lambda_ms and not self.two:  # a second latent for the same captions and ε: G1 must not ignore z
            z2 = ctx.randn(B, c.z_dim)
            loss_ms = mode_seeking_term(c.ms_space, D, fake, G(z2, eps, right)[0], h_f, z, z2)
            loss_g = loss_g + c.lambda_ms * loss_ms
            logs["ms"] = loss_ms.detach()
        if c.lambda_con:
            logs["con_D"] = loss_con_d.detach()
        if c.lambda_con_g:
            logs["con_G"] = loss_con_g.detach()
        ctx.optimize(self._g_name, loss_g)
        return logs

    @property
    def _d_name(self) -> str:
        return "D2" if self.two else "D1"

    @property
    def _g_name(self) -> str:
        return "G2" if self.two else "G1"

    # -- sampling -------------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator) -> TextInputs:
        w = torch.randn(n, self.latent_dim, generator=generator)
        return self.inputs_for([self.examples[(i // 8) % len(self.examples)] for i in range(n)], w)  # 8 per caption

    def _split(self, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self.cfg
        return w[:, : c.z_dim], w[:, c.z_dim : c.z_dim + c.c_dim], w[:, c.z_dim + c.c_dim :]

    @torch.no_grad()
    def generate_from_embeddings(self, modules: dict[str, Any], w: Tensor, emb: Tensor) -> Tensor:
        """The final stage's images for latents ``w`` (n, latent_dim) and embeddings (n, E)."""
        return self.stages_from_embeddings(modules, w, emb)[-1]

    @torch.no_grad()
    def stages_from_embeddings(self, modules: dict[str, Any], w: Tensor, emb: Tensor) -> list[Tensor]:
        """[Stage-I image] or [Stage-I image, Stage-II image] for latents ``w`` and embeddings ``emb``."""
        device = next(modules["G1"].parameters()).device
        z, eps0, eps = (t.to(device) for t in self._split(w))
        emb = emb.to(device)
        low = modules["G1"](z, eps0, emb)[0]  # (n, C, S/4, S/4)
        return [low, modules["G2"](low, eps, emb)[0]] if self.two else [low]

    @torch.no_grad()
    def generate_stages(self, modules: dict[str, Any], inputs: TextInputs) -> list[Tensor]:
        T = modules["T"]
        emb = T(inputs.codes.to(next(T.parameters()).device))  # (n, E)
        return self.stages_from_embeddings(modules, inputs.z, emb)

    @torch.no_grad()
    def generate(self, modules: dict[str, Any], inputs: TextInputs) -> Tensor:
        return self.generate_stages(modules, inputs)[-1]

    @torch.no_grad()
    def generate_stage1_upsampled(self, modules: dict[str, Any], inputs: TextInputs) -> Tensor:
        """Stage-I images brought to Stage-II's side bicubically (the baseline Stage-II must beat)."""
        return upsample(self.generate_stages(modules, inputs)[0], self.cfg.size)

    @torch.no_grad()
    def grid(self, modules: dict[str, Any], inputs: TextInputs) -> tuple[Tensor, int | None]:
        images = self.generate_stages(modules, inputs)
        if not self.two:
            return images[0], self.grid_nrow
        return side_by_side(upsample(images[0], self.cfg.size), images[1]), self.grid_nrow

    # -- evaluation -----------------------------------------------------------------------------
    def caption_report(self, modules: dict[str, Any], seed: int) -> dict[str, Any]:
        """Caption accuracy and ``fid_attr`` of the final stage on held-out-template captions; for
        Stage-II runs also of Stage-I upsampled bicubically, with the same latents and captions."""
        from gankit.metrics.attributes import attribute_fid, caption_accuracy

        res = caption_accuracy(self, modules, seed=seed, keep_images=True)
        res["fid_attr"] = attribute_fid(res.pop("images"), self.spec.shape[-1])
        if self.two:
            base = caption_accuracy(self, modules, seed=seed, generate=self.generate_stage1_upsampled,
                                    keep_images=True, diversity_n=0)  # its accuracies and fid_attr only
            for k in [k for k in base if k.endswith("_acc")]:
                res[f"stage1_bicubic_{k}"] = base[k]
            res["stage1_bicubic_fid_attr"] = attribute_fid(base["images"], self.spec.shape[-1])
        res["protocol"]["fid_attr"] = ("FID in the shapes-attr classifier's 256-d features (images at 32x32), "
                                       "the held-out-caption images vs real shapes drawn at the same side")
        return res

    def evaluate(self, modules: dict[str, Any], data: Any, n: int, seed: int) -> dict[str, Any] | None:
        """``--eval-every`` on shapes: :meth:`caption_report`, flattened."""
        return eval_record(self.caption_report(modules, seed))


def upsample(x: Tensor, size: int) -> Tensor:
    """Bicubic resize of [-1, 1] images to ``size`` (clamped back to [-1, 1])."""
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(-1, 1)


def side_by_side(a: Tensor, b: Tensor) -> Tensor:
    """(n, C, H, W) x 2 -> (2n, C, H, W) interleaved a0, b0, a1, b1, ..."""
    return torch.stack([a, b], 1).flatten(0, 1)
