"""``gankit.train``: resolve a run's configuration, load its data, and hand both to the engine.

Everything a user can get wrong (recipe name, keys, values, data path, batch size) is checked
before the run directory is created, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

from gankit import __version__
from gankit.config import TrainConfig, apply_overrides, diff, from_dict, load_yaml, set_value, to_dict
from gankit.errors import UsageError

log = logging.getLogger("gankit")

# Settings that may change when a run is resumed (budget and cadence); hyper-parameters may not.
RESUMABLE_KEYS = {"steps", "minutes", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "device",
                  "progress", "eval_every", "eval_n"}


def load_data(spec: str, recipe_cls: type, hparams: Any, tcfg: TrainConfig) -> Any:
    """Load ``spec`` and bring images to the side the recipe trains at (e.g. MNIST 28 -> 32)."""
    from gankit.data import load_dataset
    from gankit.data.dataset import fit_size

    ds = load_dataset(spec, channels=tcfg.channels, size=getattr(hparams, "size", None), seed=tcfg.seed)
    if ds.kind == "image":
        native = int(ds.x.shape[-1])
        side = recipe_cls.data_size(hparams, native)
        if side != native:
            ds.x, note = fit_size(ds.x, side)
            ds.info = {**ds.info, "size": side, "fit": note}
    for w in ds.warnings:
        log.warning("%s", w)
    prepare = getattr(recipe_cls, "prepare_data", None)
    if prepare is not None:  # e.g. caption tokens or embeddings aligned with the images
        ds = prepare(ds, hparams, tcfg)
    return ds


def resolve(recipe: str, *, data: str | None = None, config_file: str | None = None,
            overrides: tuple[str, ...] | list[str] = (), resume_doc: dict[str, Any] | None = None,
            **flags: Any) -> tuple[type, Any, TrainConfig]:
    """(recipe class, hyper-parameters, train config) from defaults, file, flags and ``--set``.

    ``flags`` are the dedicated CLI options (steps, minutes, seed, batch, size, channels); None
    means "not given". With ``resume_doc`` the saved values are the base and only
    :data:`RESUMABLE_KEYS` may change.
    """
    from gankit.recipes import get_recipe

    cls = get_recipe(recipe)
    if resume_doc is not None:
        if resume_doc.get("recipe") != recipe:
            raise UsageError(f"cannot resume: the run was trained with recipe {resume_doc.get('recipe')!r}, not {recipe!r}")
        saved_hp, saved_t = from_dict(cls.Config, resume_doc["hparams"]), from_dict(TrainConfig, resume_doc["train"])
        hp, tcfg = copy.copy(saved_hp), copy.copy(saved_t)
        if flags.get("steps") is not None or flags.get("minutes") is not None:
            tcfg.steps = tcfg.minutes = None  # a new budget replaces the saved one
    else:
        hp, tcfg = cls.Config(), TrainConfig()
    configs = [tcfg, hp]
    if config_file:
        for key, val in load_yaml(config_file).items():
            if key == "recipe":
                if val != recipe:
                    raise UsageError(f"config file {config_file} is for recipe {val!r}, not {recipe!r}")
                continue
            set_value(configs, key, val)
    if data is not None:
        tcfg.data = data
    for key, val in flags.items():
        if val is not None:
            set_value(configs, key, val)
    apply_overrides(configs, list(overrides))
    if resume_doc is not None:
        changed = {**diff(saved_hp, hp), **{k: v for k, v in diff(saved_t, tcfg).items() if k not in RESUMABLE_KEYS}}
        if changed:
            k, (old, new) = next(iter(changed.items()))
            raise UsageError(f"cannot change {k!r} when resuming (the run has {old!r}, asked for {new!r}); start a new --out instead")
    if not tcfg.data:
        tcfg.data = getattr(cls, "default_data", "")
        if not tcfg.data:
            raise UsageError(f"recipe {recipe} needs --data NAME|PATH")
    tcfg.validate()
    hp.validate()
    if tcfg.steps is None and tcfg.minutes is None:
        raise UsageError("no training budget: give --steps N or --minutes M")
    return cls, hp, tcfg


def train(recipe: str, *, out: str | Path | None = None, resume: bool = False, data: str | None = None,
          config_file: str | None = None, overrides: tuple[str, ...] | list[str] = (), **flags: Any) -> Any:
    """Train ``recipe`` and return the engine's :class:`~gankit.engine.loop.FitResult`."""
    from gankit.engine import checkpoint, dist
    from gankit.engine.loop import Engine
    from gankit.engine.rundir import RunDir
    from gankit.recipes.base import DataSpec

    resume_doc = None
    if resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        run = RunDir(out)
        if not run.config.exists():
            raise UsageError(f"cannot resume: {run.path} holds no gankit run (no config.yaml)")
        resume_doc = load_yaml_doc(run.config)
    cls, hp, tcfg = resolve(recipe, data=data, config_file=config_file, overrides=overrides, resume_doc=resume_doc, **flags)
    ds = load_data(tcfg.data, cls, hp, tcfg)
    spec = DataSpec.from_dataset(ds)
    doc = {
        "gankit": __version__,
        "recipe": recipe,
        "train": to_dict(tcfg),
        "hparams": to_dict(hp),
        "data_info": {**spec.to_dict(), "name": ds.name, "fingerprint": ds.fingerprint},
    }
    if resume_doc is not None and resume_doc["data_info"].get("fingerprint") != ds.fingerprint:
        raise UsageError(f"cannot resume: --data {tcfg.data} is not the data this run was trained on")
    import torch.distributed as tdist

    owns_group = not tdist.is_initialized()  # under torchrun, the Engine joins the group below
    engine = Engine(cls(hp, spec), ds, tcfg, doc)  # builds nets and sampler: may still refuse
    info = dist.init(tcfg.device)
    run = None
    if info.is_main:
        if out is None:
            out = Path("runs") / f"{recipe}-{Path(str(tcfg.data)).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = RunDir(out)
        if not resume and run.has_state():
            raise UsageError(f"{run.path} already holds a run; add --resume to continue it or choose another --out")
        run.create()
        run.lock()
    try:
        if resume:
            state = checkpoint.load_latest(Path(out) / "checkpoints", map_location=engine.device)
            if state is None:  # stopped before its first checkpoint: step 0 is that run's exact state
                log.warning("no checkpoint in %s yet: starting from step 0", Path(out) / "checkpoints")
            else:
                engine.load_state_dict(state)
            if run is not None:
                run.truncate_metrics(engine.step)
        if run is not None:
            run.write_config(doc)
        return engine.fit(run)
    finally:
        if run is not None:
            run.unlock()
        if owns_group:  # leave no gloo/nccl threads running into interpreter exit (abort -6)
            dist.shutdown()


def load_yaml_doc(path: Path) -> dict[str, Any]:
    """A run's config.yaml as saved (sections kept)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not {"recipe", "train", "hparams"} <= set(doc):
        raise UsageError(f"{path} is not a gankit run config")
    return doc
