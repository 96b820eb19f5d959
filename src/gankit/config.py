"""Typed configuration: dataclasses, YAML files and ``--set key=value`` overrides.

A run is described by two dataclasses: :class:`TrainConfig` (the engine's settings, the same for
every recipe) and the recipe's own ``Config`` (hyper-parameters named after its paper). Keys are
flat and unique across the two, so ``--set lr=1e-4`` and ``--set sample_every=200`` both work and
an unknown key is refused with the valid choices.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from gankit.errors import UsageError


@dataclass
class TrainConfig:
    """Engine settings: budget, cadence, reproducibility. Shared by every recipe."""

    data: str = ""
    steps: int | None = None  # total optimisation steps for the run (a resumed run continues to it)
    minutes: float | None = None  # wall-clock budget of this invocation, data preparation (a text encoder) included
    seed: int = 0
    channels: int | None = None  # None = the data's native channel count
    log_every: int = 50
    sample_every: int = 500  # sample grid (and toy metrics) cadence
    checkpoint_every: int = 1000  # checkpoint + export cadence
    eval_every: int = 0  # image metrics (fid_lenet, ...; a recipe's own: content_mnistm, all_acc) + best export; 0 = off
    eval_n: int = 2000  # samples per evaluation
    keep_checkpoints: int = 3
    grid_n: int = 64  # fixed latents shown in sample grids
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True  # tqdm bar (only drawn on a terminal)
    channels_last: bool = True  # conv weights and image batches in NHWC layout (same maths; benchmarks/throughput.py)

    def validate(self) -> None:
        if self.steps is not None and self.steps <= 0:
            raise UsageError(f"steps must be a positive integer, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise UsageError(f"minutes must be positive, got {self.minutes}")
        if self.channels not in (None, 1, 3):
            raise UsageError(f"channels must be 1 or 3, got {self.channels}")
        if self.eval_every < 0:
            raise UsageError(f"eval_every must be 0 (off) or a positive integer, got {self.eval_every}")
        for key in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "grid_n", "eval_n"):
            if getattr(self, key) <= 0:
                raise UsageError(f"{key} must be a positive integer, got {getattr(self, key)}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "comma-separated list of " + _type_name(typing.get_args(tp)[0])
    return "none" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _parse(key: str, raw: Any, tp: Any) -> Any:
    """Parse ``raw`` (a string from the command line, or a YAML value) as type ``tp``."""
    origin = typing.get_origin(tp)
    bad = UsageError(f"bad value for {key}: {raw!r} (expected {_type_name(tp)})")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (raw is None or str(raw).strip().lower() in ("none", "null", "")):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(key, raw, arg)
            except UsageError:
                continue
        raise bad
    if origin is Literal:
        choices = typing.get_args(tp)
        if raw in choices:
            return raw
        hint = difflib.get_close_matches(str(raw), [str(c) for c in choices], n=1)
        more = f"; did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"bad value for {key}: {raw!r} (expected one of {', '.join(map(str, choices))}{more})")
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        items = raw if isinstance(raw, (list, tuple)) else str(raw).strip("[]() ").split(",")
        return tuple(_parse(key, i.strip() if isinstance(i, str) else i, item_tp) for i in items)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        low = str(raw).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise bad
    if tp is int:
        if isinstance(raw, bool):
            raise bad
        try:
            val = float(raw) if isinstance(raw, float) else int(str(raw).replace("_", ""))
        except ValueError:
            raise bad from None
        if isinstance(val, float) and not val.is_integer():
            raise bad
        return int(val)
    if tp is float:
        if isinstance(raw, bool):
            raise bad
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise bad from None
    if tp is str:
        return str(raw)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def set_value(configs: list[Any], key: str, raw: Any) -> None:
    """Set ``key`` on whichever of ``configs`` declares it, parsed to the declared type."""
    for cfg in configs:
        hints = _hints(cfg)
        if key in hints:
            setattr(cfg, key, _parse(key, raw, hints[key]))
            return
    valid = sorted(k for cfg in configs for k in _hints(cfg))
    hint = difflib.get_close_matches(key, valid, n=1)
    more = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UsageError(f"unknown setting {key!r} (valid: {', '.join(valid)}{more})")


def apply_overrides(configs: list[Any], items: list[str]) -> None:
    """Apply ``key=value`` strings (from ``--set``) in order."""
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --set {item!r} (expected key=value)")
        set_value(configs, key.strip(), raw.strip())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file: either flat ``key: value`` or a run's ``config.yaml`` (sections)."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read config file {p}: {str(err).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UsageError(f"config file {p} must hold a mapping of key: value")
    flat: dict[str, Any] = {}
    for key, val in doc.items():
        if key in ("train", "hparams") and isinstance(val, dict):
            flat.update(val)
        elif key not in ("gankit", "data_info"):
            flat[key] = val
    return flat


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-Python view of a config (tuples become lists for YAML/JSON)."""
    out = {}
    for f in fields(cfg):
        val = getattr(cfg, f.name)
        out[f.name] = list(val) if isinstance(val, tuple) else val
    return out


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build ``cls`` from a saved dict, type-checking every value; unknown keys are refused.

    A key the saved dict lacks takes ``cls.absent_means[key]`` if the class declares one: the
    value that reproduces runs saved before the key existed, where its default is a change
    (DCGAN's ``width_d``: an old export's D is as wide as G). Otherwise the class default.
    """
    cfg = cls()
    for key, val in getattr(cls, "absent_means", {}).items():
        if key not in values:
            setattr(cfg, key, val)
    for key, val in values.items():
        set_value([cfg], key, val)
    return cfg


def diff(a: Any, b: Any) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two configs of the same class."""
    return {
        f.name: (getattr(a, f.name), getattr(b, f.name))
        for f in fields(a)
        if getattr(a, f.name) != getattr(b, f.name)
    }


__all__ = [
    "TrainConfig",
    "apply_overrides",
    "diff",
    "from_dict",
    "load_yaml",
    "set_value",
    "to_dict",
]
