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

    @classmethod
    def from_dataset(cls, ds: Any) -> DataSpec:
        ncls = int(ds.labels.max()) + 1 if ds.labels is not None and len(ds.labels) else None
        return cls(ds.kind, tuple(ds.x.shape[1:]), ncls, dict(ds.info))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes, "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(d["kind"], tuple(d["shape"]), d.get("num_classes"), d.get("info", {}))


class StepContext(Protocol):
    """The engine's side of ``train_step``: randomness, more data, and optimizer steps."""

    step: int
    device: torch.device

    def randn(self, *shape: int) -> Tensor: ...
    def rand(self, *shape: int) -> Tensor: ...
    def next_batch(self) -> Tensor: ...
    def optimize(self, name: str, loss: Tensor) -> None: ...


class Recipe:
    """Base class. Subclasses set ``name``, ``Config``, ``kinds`` and implement the hooks."""

    name: ClassVar[str]
    Config: ClassVar[type]
    kinds: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        if spec.kind not in self.kinds:
            raise UsageError(f"recipe {self.name} needs {' or '.join(self.kinds)} data, got {spec.kind} data")
        self.cfg = cfg
        self.spec = spec
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- set-up -------------------------------------------------------------------------------
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

    @torch.no_grad()
    def generate(self, modules: dict[str, nn.Module], inputs: Any) -> Tensor:
        """Samples for ``inputs`` with the given (possibly EMA) modules in eval mode."""
        device = next(modules["G"].parameters()).device
        return modules["G"](inputs.to(device))

    def export_modules(self) -> tuple[str, ...]:
        """Modules written to ``export/`` (the generator side is enough to sample)."""
        return tuple(self.modules)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
