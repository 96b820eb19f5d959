"""Exports: ``config.json`` + one ``<module>.safetensors`` per module (the diffusers convention).

An export is everything needed to sample, and nothing executable: JSON and raw tensors. Loading
never touches pickle, so an export from a stranger is safe to open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit import __version__
from gankit.engine.checkpoint import atomic_write
from gankit.errors import GankitError, UntrustedFileError, UsageError

FORMAT = "gankit-export"


def write(folder: Path, *, recipe: str, hparams: dict[str, Any], spec: dict[str, Any],
          modules: dict[str, nn.Module], meta: dict[str, Any]) -> None:
    """Write modules then ``config.json`` last, each file atomically (config last = complete)."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        blob = save(tensors, metadata={"format": FORMAT, "module": name})
        atomic_write(folder / f"{name}.safetensors", lambda f, b=blob: f.write(b))
    doc = {
        "format": FORMAT,
        "gankit": __version__,
        "recipe": recipe,
        "hparams": hparams,
        "data": spec,
        "modules": list(modules),
        **meta,
    }
    text = json.dumps(doc, indent=2, allow_nan=False)
    atomic_write(folder / "config.json", lambda f: f.write(text.encode()))


def resolve(path: str | Path) -> Path:
    """The export folder for a run directory, an export folder, or its config.json."""
    p = Path(path)
    for cand in (p / "export", p, p.parent if p.name == "config.json" else None):
        if cand is not None and (cand / "config.json").is_file() and (cand / "config.json").stat().st_size:
            try:
                if json.loads((cand / "config.json").read_text()).get("format") == FORMAT:
                    return cand
            except (ValueError, OSError, AttributeError):
                raise UsageError(f"{cand / 'config.json'} is not a gankit export config (invalid JSON)") from None
    if not p.exists():
        raise UsageError(f"no such run or export: {p}")
    raise UsageError(f"no gankit export in {p} (expected RUN_DIR/export/config.json; train first)")


@dataclass
class GankitModel:
    """A loaded export: the recipe object with its modules, ready to sample."""

    recipe: Any
    config: dict[str, Any]
    path: Path

    @property
    def kind(self) -> str:
        return self.recipe.spec.kind

    def to(self, device: str | torch.device) -> GankitModel:
        for m in self.recipe.modules.values():
            m.to(device)
        return self

    def sample(self, n: int, seed: int = 0, batch: int = 500, data: Any = None) -> Tensor:
        """``n`` samples (CPU): images float in [-1, 1] (n, C, H, W), or points (n, 2).

        A translator (cyclegan) samples from real images: pass its ``data`` (a Dataset).
        """
        if n <= 0:
            raise UsageError(f"n must be a positive integer, got {n}")
        gen = torch.Generator().manual_seed(seed)
        inputs = self.recipe.data_inputs(n, gen, data)
        out = []
        for i in range(0, n, batch):
            chunk = {k: v[i : i + batch] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[i : i + batch]
            out.append(self.recipe.generate(self.recipe.modules, chunk).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB", batch: int = 64) -> Tensor:
        """Images ``x`` (uint8 or [-1, 1] float, (N, C, H, W)) mapped to the other domain: float
        [-1, 1] on the CPU. Only translators (cyclegan) have a direction."""
        device = next(next(iter(self.recipe.modules.values())).parameters()).device
        x = x.float().mul(2.0 / 255.0).sub(1.0) if x.dtype == torch.uint8 else x.float()
        out = [self.recipe.translate(self.recipe.modules, x[i : i + batch].to(device), direction).cpu()
               for i in range(0, len(x), batch)]
        return torch.cat(out) if out else x.new_empty((0, *x.shape[1:]))


def load(path: str | Path, device: str | torch.device = "cpu") -> GankitModel:
    """Load an export (run dir or export folder) through JSON + safetensors only."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from gankit.config import from_dict
    from gankit.recipes import get_recipe
    from gankit.recipes.base import DataSpec

    folder = resolve(path)
    doc = json.loads((folder / "config.json").read_text())
    cls = get_recipe(doc["recipe"])
    hparams = from_dict(cls.Config, doc["hparams"])
    recipe = cls(hparams, DataSpec.from_dict(doc["data"]))
    recipe.build(torch.device("cpu"))
    for name in doc["modules"]:
        file = folder / f"{name}.safetensors"
        try:
            tensors = load_file(file)
        except FileNotFoundError:
            raise UsageError(f"export is missing {file}") from None
        except (SafetensorError, OSError, ValueError) as err:
            raise UntrustedFileError(f"refusing {file}: not a valid safetensors file ({str(err)[:120]})") from None
        try:
            recipe.modules[name].load_state_dict(tensors, strict=True)
        except RuntimeError as err:
            raise GankitError(f"{file} does not match the {doc['recipe']} architecture in config.json: {str(err).splitlines()[0]}") from None
    layout = torch.channels_last if doc.get("channels_last") else torch.contiguous_format
    for m in recipe.modules.values():
        # the layout the run trained in (TrainConfig.channels_last): same kernels, so samples equal the run's
        m.eval().to(device).to(memory_format=layout)
    return GankitModel(recipe, doc, folder)
