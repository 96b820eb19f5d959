"""What a recipe is: named modules and optimizers plus an explicit ``train_step``.

The engine (``gankit.engine``) owns iteration, devices, distribution, EMA, cadence and state; a
recipe owns the paper: its networks, its losses and the order of its updates. A recipe does no
file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from gankit.errors import UsageError


@dataclass(frozen=True)
class DataSpec:
    """What a recipe needs to know about its data to build networks (saved with exports)."""

    kind: str  # "image" | "points"
    shape: tuple[int, ...]  # (C, H, W) or (2,)
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    domains: tuple[str, ...] = ()  # names of the training tensors when there are several (e.g. A, B)

    @classmethod
    def from_dataset(cls, ds: Any) -> DataSpec:
        ncls = int(ds.labels.max()) + 1 if ds.labels is not None and len(ds.labels) else None
        return cls(ds.kind, tuple(ds.x.shape[1:]), ncls, dict(ds.info), tuple(getattr(ds, "domains", {})))

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes, "info": self.info}
        return {**d, "domains": list(self.domains)} if self.domains else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(d["kind"], tuple(d["shape"]), d.get("num_classes"), d.get("info", {}), tuple(d.get("domains", ())))


@dataclass(frozen=True)
class FirstRun:
    """A run a recipe needs trained before its own (StackGAN's Stage-I): ``gankit.train`` trains
    it into ``RUN/<subdir>`` with the run's settings plus ``overrides`` and ``share`` of the budget,
    then the run itself with ``<link>=RUN/<subdir>``."""

    subdir: str
    overrides: list[str]
    share: float  # of --steps / --minutes
    link: str  # the hyper-parameter that receives the first run's path


class StepContext(Protocol):
    """The engine's side of ``train_step``: randomness, more data, and optimizer steps."""

    step: int
    device: torch.device

    total_steps: int | None  # the run's --steps (None with a --minutes budget)

    def randn(self, *shape: int) -> Tensor: ...
    def rand(self, *shape: int) -> Tensor: ...
    def next_batch(self) -> Any: ...  # a Tensor, or {domain: Tensor} for several training tensors
    def optimize(self, name: str, loss: Tensor) -> None: ...


class Recipe:
    """Base class. Subclasses set ``name``, ``Config``, ``kinds`` and implement the hooks.

    ``domains``: the named training tensors the recipe trains on (e.g. CycleGAN's ``("A", "B")``);
    its ``train_step`` then receives ``{name: batch}``. Empty (the default): one tensor, one batch.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    kinds: ClassVar[tuple[str, ...]] = ("image",)
    domains: ClassVar[tuple[str, ...]] = ()
    #: (metric key, "min" | "max") that picks RUN/best during --eval-every
    best_metric: ClassVar[tuple[str, str]] = ("fid_lenet", "min")

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        if spec.kind not in self.kinds:
            raise UsageError(f"recipe {self.name} needs {' or '.join(self.kinds)} data, got {spec.kind} data")
        if tuple(spec.domains) != self.domains:
            if self.domains:
                raise UsageError(f"recipe {self.name} needs unpaired data with domains {' and '.join(self.domains)} "
                                 "(ROOT/trainA and ROOT/trainB, or a built-in such as mnist2mnistm), "
                                 f"got one-domain data ({spec.info.get('source', spec.kind)[:80]})")
            raise UsageError(f"recipe {self.name} trains on one image set, but the data has domains "
                             f"{', '.join(spec.domains)}; point --data at one domain (e.g. ROOT/trainA)")
        self.cfg = cfg
        self.spec = spec
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- set-up -------------------------------------------------------------------------------
    @classmethod
    def first_run(cls, cfg: Any) -> FirstRun | None:
        """A run to train before this one (see :class:`FirstRun`); None for most recipes."""
        return None

    @classmethod
    def data_size(cls, cfg: Any, native: int) -> int:
        """Image side the recipe trains at, given the data's native side (``--size`` wins)."""
        return getattr(cfg, "size", None) or native

    def build(self, device: torch.device) -> None:
        """Create ``self.modules`` (on ``device``, initialised from the global RNG) and ``self.optimizers``."""
        raise NotImplementedError

    def ema_modules(self) -> tuple[str, ...]:
        """Modules whose exponential moving average the engine keeps and samples with."""
        return ("G",) if getattr(self.cfg, "ema", False) else ()

    @property
    def ema_decay(self) -> float:
        return float(getattr(self.cfg, "ema_decay", 0.999))

    @property
    def standing_batches(self) -> int:
        """Training-like batches that re-estimate the sampling modules' BatchNorm statistics
        before each sample grid, evaluation and export (``standing_stats``; 0 = off, sample with
        the statistics collected in training). See ``gankit.engine.standing``."""
        return int(getattr(self.cfg, "standing_stats", 0))

    def standing_modules(self) -> tuple[str, ...]:
        """The modules whose statistics ``standing_stats`` re-estimates: the sampled generator."""
        return self.ema_modules() or tuple(n for n in ("G",) if n in self.modules)

    @torch.no_grad()
    def standing_pass(self, modules: dict[str, nn.Module], batch: Any, generator: torch.Generator) -> None:
        """One forward pass of ``modules``' generator on inputs distributed as in training (``batch``:
        a training batch, for recipes whose G is conditioned on data; draws from ``generator``)."""
        self.generate(modules, self.sample_inputs(self.batch_size, generator))

    @property
    def batch_size(self) -> int:
        return int(self.cfg.batch)

    # -- training -----------------------------------------------------------------------------
    def train_step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        """One optimisation step on ``batch`` (float, [-1, 1] for images); returns detached scalars."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Recipe state beyond modules/optimizers (e.g. CycleGAN's image pools); tensors only."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- sampling -----------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator) -> Any:
        """Inputs for ``generate`` drawn from ``generator`` (CPU), e.g. latents z (n, z_dim)."""
        return torch.randn(n, self.cfg.z_dim, generator=generator)

    def data_inputs(self, n: int, generator: torch.Generator, data: Any = None) -> Any:
        """Inputs for ``generate`` and ``grid`` when a Dataset may be at hand: recipes whose inputs
        are real images (a translator's) pick them from ``data``; the rest ignore it."""
        return self.sample_inputs(n, generator)

    @torch.no_grad()
    def generate(self, modules: dict[str, nn.Module], inputs: Any) -> Tensor:
        """Samples for ``inputs`` with the given (possibly EMA) modules in eval mode."""
        device = next(modules["G"].parameters()).device
        return modules["G"](inputs.to(device))

    @torch.no_grad()
    def grid(self, modules: dict[str, nn.Module], inputs: Any) -> tuple[Tensor, int | None]:
        """(images, images per row or None for a square grid) for the sample grid of ``inputs``."""
        return self.generate(modules, inputs), None

    def evaluate(self, modules: dict[str, nn.Module], data: Any, n: int, seed: int) -> dict[str, Any] | None:
        """Recipe-specific metrics for ``--eval-every`` and ``gankit eval`` (modules in eval mode),
        with a ``protocol`` entry; None: the engine's default image metrics (fid/IS/classes, lenet)."""
        return None

    def translate(self, modules: dict[str, nn.Module], x: Tensor, direction: str) -> Tensor:
        """Images ``x`` ([-1, 1], (N, C, H, W)) mapped to the other domain (translators only)."""
        raise UsageError(f"recipe {self.name} does not translate images (cyclegan does)")

    def export_modules(self) -> tuple[str, ...]:
        """Modules written to ``export/`` (the generator side is enough to sample)."""
        return tuple(self.modules)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
