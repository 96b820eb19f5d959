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


def default_out(recipe: str, data: str) -> Path:
    return Path("runs") / f"{recipe}-{Path(str(data)).name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(recipe: str, *, out: str | Path | None = None, resume: bool = False, data: str | None = None,
          config_file: str | None = None, overrides: tuple[str, ...] | list[str] = (), **flags: Any) -> Any:
    """Train ``recipe`` and return the engine's :class:`~gankit.engine.loop.FitResult`.

    A recipe whose settings ask for a run trained first (``Recipe.first_run``: StackGAN's Stage-I
    with ``stage=both``) gets it here: see :func:`_train_first`.
    """
    from gankit.recipes import get_recipe

    kwargs = {"out": out, "resume": resume, "data": data, "config_file": config_file, "overrides": list(overrides),
              "budget_started": time.monotonic(), **flags}  # --minutes counts from here
    staged = _train_first(get_recipe(recipe), recipe, kwargs)
    if staged is None:
        return _train_one(recipe, **kwargs)
    if isinstance(staged, dict):
        return _train_one(recipe, **staged)
    return staged  # the first run was interrupted: so is this command


def split_budget(tcfg: TrainConfig, share: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(first run's, main run's) --steps / --minutes: ``share`` of each given budget to the first run."""
    first: dict[str, Any] = {"steps": None, "minutes": None}
    main: dict[str, Any] = {"steps": None, "minutes": None}
    if tcfg.steps is not None:
        if tcfg.steps < 2:
            raise UsageError(f"--steps {tcfg.steps} cannot be split between two stages; give at least 2")
        first["steps"] = min(max(1, round(share * tcfg.steps)), tcfg.steps - 1)
        main["steps"] = tcfg.steps - first["steps"]
    if tcfg.minutes is not None:
        first["minutes"], main["minutes"] = share * tcfg.minutes, (1 - share) * tcfg.minutes
    return first, main


def _train_first(cls: type, recipe: str, kw: dict[str, Any]) -> Any:
    """Train (or resume) the run ``cls.first_run`` asks for, into ``RUN/<subdir>``.

    Returns None when there is none (the caller trains the run as usual), the first run's
    :class:`FitResult` (``run_dir`` = RUN) when it was interrupted, or the keyword arguments of
    :func:`_train_one` for the main run. Budget: the first run gets ``FirstRun.share`` of
    ``--steps``, or of the ``--minutes`` left once its data is prepared (StackGAN's text encoder is
    trained then), the main run the rest. The main run counts its own steps; its
    config.yaml records the first run's (``first_run.steps``), so that ``--resume --steps N``
    keeps N the total of both. ``--resume`` while the first run is unfinished resumes it (with its
    share of the new budget), then starts the main run; once the main run has started, a new
    ``--minutes`` goes to it whole.
    """
    from gankit.config import to_dict
    from gankit.engine.loop import FitResult
    from gankit.engine.rundir import RunDir
    from gankit.recipes.base import Recipe

    if cls.first_run.__func__ is Recipe.first_run.__func__:
        return None
    out, resume = kw["out"], kw["resume"]
    budget = {k: kw[k] for k in ("steps", "minutes") if kw.get(k) is not None}
    if resume and out is None:
        raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
    if resume and RunDir(out).config.exists():  # the main run has started: its first run is done
        doc = load_yaml_doc(RunDir(out).config)
        first_doc = doc.get("first_run")
        if not first_doc:
            return None
        main = {**kw, "doc_extra": {"first_run": first_doc}}
        # the first run lives in RUN/<subdir> by construction; its recorded absolute path goes stale
        # when RUN is moved, so the link setting (whichever holds that path) follows RUN
        new = str((Path(out) / Path(first_doc["path"]).name).resolve())
        if new != first_doc["path"]:
            log.info("this run was moved: its first run is now %s (was %s)", new, first_doc["path"])
            main["hparams_patch"] = {k: new for k, v in doc["hparams"].items() if v == first_doc["path"]}
            main["doc_extra"] = {"first_run": {**first_doc, "path": new}}
        if "steps" in budget:  # N is the total of both stages
            _, _, tcfg = resolve(recipe, data=kw["data"], config_file=kw["config_file"], overrides=kw["overrides"],
                                 resume_doc=doc, **{k: v for k, v in kw.items() if k not in _NOT_FLAGS})
            if tcfg.steps <= first_doc["steps"]:
                raise UsageError(f"--steps {tcfg.steps} is not above the {first_doc['steps']} steps of the first stage "
                                 f"({first_doc['path']}); --steps is the total of both stages")
            main["steps"] = tcfg.steps - first_doc["steps"]
        return main

    saved = None  # with --resume: the main run's settings, saved with its unfinished first run
    if resume:
        for sub_cfg in sorted(Path(out).glob("*/config.yaml")):
            saved = load_yaml_doc(sub_cfg).get("first_run_of") or saved
        if saved is None:
            return None  # _train_one gives the usual answer
        saved = {"recipe": recipe, **saved}
    flags = {k: v for k, v in kw.items() if k not in _NOT_FLAGS}
    cls, hp, tcfg = resolve(recipe, data=kw["data"], config_file=kw["config_file"], overrides=kw["overrides"],
                            resume_doc=saved, **flags)
    first = cls.first_run(hp)
    if first is None:
        return None
    out = Path(out) if out is not None else default_out(recipe, tcfg.data)
    sub = out / first.subdir
    if not resume and (RunDir(out).has_state() or RunDir(sub).has_state()):
        raise UsageError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    budget1, budget2 = split_budget(tcfg, first.share)
    main_doc = {"hparams": to_dict(hp), "train": to_dict(tcfg)}
    log.info("%s: training %s first into %s (%s)", recipe, first.subdir, sub,
             ", ".join(f"{k} {v:g}" for k, v in budget1.items() if v is not None))
    if resume:  # the first run keeps its saved settings; only its budget is new
        sub_kw = {"resume": RunDir(sub).has_state(), "overrides": [], "config_file": None}
    else:
        sub_kw = {**flags, "resume": False, "overrides": [*kw["overrides"], *first.overrides],
                  "config_file": kw["config_file"]}
    # --minutes: the first run trains for its share of what is left once its data (and text encoder) is
    # ready; the main run until the invocation's budget ends
    clock = {"budget_started": kw["budget_started"], "budget_total": tcfg.minutes}
    res = _train_one(recipe, **{**sub_kw, **budget1, "out": sub, "data": tcfg.data,
                                "doc_extra": {"first_run_of": main_doc}, **clock, "budget_share": first.share})
    if res.reason == "interrupted":
        return FitResult(res.step, "interrupted", res.last, out)
    if budget2["steps"] is not None:
        budget2["steps"] = max(1, tcfg.steps - res.step)
    link = f"{first.link}={sub.resolve()}"
    extra = {"first_run": {"path": str(sub.resolve()), "steps": res.step}}
    if resume:  # the main run starts now, from the settings saved with its first run
        saved["hparams"] = {**saved["hparams"], first.link: str(sub.resolve())}
        return {"out": out, "resume": False, "data": tcfg.data, "config_file": None, "overrides": kw["overrides"],
                "settings_doc": saved, "doc_extra": extra, **flags, **budget2, **clock}
    return {**kw, **budget2, "out": out, "overrides": [*kw["overrides"], link], "doc_extra": extra, **clock}


# keyword arguments of _train_one that are not settings
_NOT_FLAGS = ("out", "resume", "data", "config_file", "overrides", "doc_extra", "settings_doc", "hparams_patch",
              "budget_started", "budget_total", "budget_share")


def _train_one(recipe: str, *, out: str | Path | None = None, resume: bool = False, data: str | None = None,
               config_file: str | None = None, overrides: tuple[str, ...] | list[str] = (),
               doc_extra: dict[str, Any] | None = None, settings_doc: dict[str, Any] | None = None,
               hparams_patch: dict[str, Any] | None = None, budget_started: float | None = None,
               budget_total: float | None = None, budget_share: float = 1.0, **flags: Any) -> Any:
    """One run of ``recipe``. ``doc_extra``: more entries for its config.yaml; ``settings_doc``: saved
    settings a new run starts from (as a resumed run does: only budget and cadence may change);
    ``hparams_patch``: saved settings replaced on resume (a first run's path after a move).

    ``--minutes`` is the invocation's: it began at ``budget_started`` (``time.monotonic()``; default
    just before this run prepares its data, so a text encoder trained then is inside it) and lasts
    ``budget_total`` minutes (default this run's ``--minutes``). The run trains until that ends, or,
    a first stage, for ``budget_share`` of what is left once its data is ready.
    """
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
        resume_doc["hparams"].update(hparams_patch or {})
    cls, hp, tcfg = resolve(recipe, data=data, config_file=config_file, overrides=overrides,
                            resume_doc=resume_doc if resume_doc is not None else settings_doc, **flags)
    prep_started = time.monotonic()
    if budget_started is None:
        budget_started = prep_started  # --minutes covers data preparation (text2image's text encoder)
    ds = load_data(tcfg.data, cls, hp, tcfg)
    spec = DataSpec.from_dataset(ds)
    doc = {
        "gankit": __version__,
        "recipe": recipe,
        "train": to_dict(tcfg),
        "hparams": to_dict(hp),
        "data_info": {**spec.to_dict(), "name": ds.name, "fingerprint": ds.fingerprint},
        **(doc_extra or {}),
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
            out = default_out(recipe, tcfg.data)
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
        deadline = None
        if tcfg.minutes is not None:
            total = tcfg.minutes if budget_total is None else budget_total
            now = time.monotonic()
            left = budget_started + total * 60 - now
            deadline = now + budget_share * left  # a first stage gets its share of what preparing left
            prep = (now - prep_started) / 60
            if left <= 0:
                log.warning("--minutes %g is spent (preparing the data took %.1f min): no time is left to train; "
                            "continue with --resume --minutes M", total, prep)
            elif prep >= 1:
                log.info("preparing the data took %.1f of the %g minutes", prep, total)
        return engine.fit(run, deadline=deadline)
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
