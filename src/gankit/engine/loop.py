"""The training loop every recipe runs in.

The engine knows infrastructure only: devices and data parallelism, the data sampler, the step
context a recipe's ``train_step`` talks to, EMA, the cadence of logs / sample grids / checkpoints,
budgets (steps or minutes), stopping on signals or non-finite values, and exact resume. It never
names G or D: a recipe hands it named modules and optimizers.

Data: one tensor, or several named training tensors (``Dataset.domains``, e.g. CycleGAN's
unpaired A and B). With several, the engine keeps one epoch-shuffled sampler per name, each with
its own generator, and hands ``train_step`` a ``{name: batch}`` dict; it attaches no meaning to
the names. One tensor may carry ``Dataset.aligned`` tensors (e.g. caption embeddings) drawn with
the same ids; ``Dataset.frozen`` holds weights of modules a recipe keeps frozen (a pretrained text
encoder), loaded right after ``build``.

Exact resume: the state saved at a step boundary holds modules, optimizers, EMA copies, the global
RNG (CPU and CUDA), the data samplers (generator, permutation and position) and recipe extras.
Anything the engine does between steps (sample grids at fixed latents, toy metrics, checkpoints)
draws from private generators and runs in eval mode, so it changes no training state. On CPU, N
steps straight and N/2 + resume + N/2 give bit-identical weights (tested).
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit import export as export_mod
from gankit.config import TrainConfig
from gankit.engine import checkpoint, dist
from gankit.engine.rundir import RunDir
from gankit.engine.standing import standing_copies
from gankit.errors import NonFiniteError, UsageError

log = logging.getLogger("gankit")

#: Metrics drawn in plots/metrics.png (and printed by ``gankit train`` at the end).
EVAL_PLOT_KEYS = ("modes", "hq", "mode_kl", "fid_lenet", "is_lenet", "classes_lenet",
                  "content_mnistm", "fid_mnistm", "cycle_ABA", "cycle_BAB", "colour_acc", "shape_acc", "all_acc")


class BatchSampler:
    """Epoch-shuffled minibatches drawn on the device from an in-memory tensor.

    Each rank walks its own shard (every ``world``-th item); the last partial batch of an epoch is
    dropped. Images stay uint8 on the device and become float in [-1, 1] per batch.

    ``aligned`` tensors (first dimension aligned with ``x``, e.g. caption embeddings) are indexed
    with the same ids: the batch is then a dict ``{"x": images, **aligned rows}``. Without them
    the batch is the image tensor itself and the random draws are unchanged.
    """

    def __init__(self, x: Tensor, batch: int, seed: int, rank: int = 0, world: int = 1, stream: int = 0,
                 what: str = "the dataset", aligned: dict[str, Tensor] | None = None,
                 channels_last: bool = False) -> None:
        self.x = x
        self.channels_last = channels_last and x.dim() == 4
        self.aligned = dict(aligned or {})
        self.index = torch.arange(rank, x.shape[0], world)
        if batch > len(self.index):
            raise UsageError(
                f"batch {batch * world} is larger than {what} ({x.shape[0]} items); lower --batch"
            )
        self.batch = batch
        # ``stream`` separates the generators of several samplers in one run (0: the one-tensor case)
        self.gen = torch.Generator().manual_seed(seed * 7919 + rank + (stream << 32))
        self.perm: Tensor | None = None
        self.pos = 0
        self.epoch = 0

    def next(self) -> Tensor:
        if self.perm is None or self.pos + self.batch > len(self.perm):
            self.perm = self.index[torch.randperm(len(self.index), generator=self.gen)]
            self.pos = 0
            self.epoch += 1
        ids = self.perm[self.pos : self.pos + self.batch].to(self.x.device, non_blocking=True)
        self.pos += self.batch
        b = self.x[ids]
        b = b.float().mul_(2.0 / 255.0).sub_(1.0) if b.dtype == torch.uint8 else b
        if self.channels_last:
            b = b.contiguous(memory_format=torch.channels_last)  # (B, C, H, W), stored NHWC
        if self.aligned:
            return {"x": b, **{k: v[ids] for k, v in self.aligned.items()}}
        return b

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.gen.set_state(s["gen"])
        self.perm, self.pos, self.epoch = s["perm"], int(s["pos"]), int(s["epoch"])


class DomainSampler:
    """One :class:`BatchSampler` per named training tensor; ``next()`` gives ``{name: batch}``."""

    def __init__(self, samplers: dict[str, BatchSampler]) -> None:
        self.samplers = samplers
        self.batch = next(iter(samplers.values())).batch

    def next(self) -> dict[str, Tensor]:
        return {name: s.next() for name, s in self.samplers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.samplers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in self.samplers.items():
            s.load_state_dict(state[name])


def make_sampler(data: Any, device: torch.device, batch: int, seed: int, rank: int, world: int,
                 aligned: dict[str, Tensor] | None = None, channels_last: bool = False) -> Any:
    """A :class:`BatchSampler` over ``data.x`` (with its ``aligned`` tensors), or a
    :class:`DomainSampler` when ``data.domains`` names several."""
    x = data.x.to(device)
    domains = getattr(data, "domains", None)
    if not domains:
        return BatchSampler(x, batch, seed, rank, world, aligned=aligned, channels_last=channels_last)
    if aligned:
        raise ValueError("aligned tensors are not supported with several training domains")
    return DomainSampler({
        name: BatchSampler(x[start:stop], batch, seed, rank, world, stream=i + 1, what=f"domain {name}",
                           channels_last=channels_last)
        for i, (name, (start, stop)) in enumerate(domains.items())
    })


def nonfinite_modules(modules: dict[str, nn.Module]) -> list[str]:
    """Names of modules holding a non-finite parameter or floating-point buffer."""
    bad = []
    for name, m in modules.items():
        tensors = [t for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            bad.append(name)
    return bad


@dataclass
class FitResult:
    step: int
    reason: str  # "steps" | "minutes" | "interrupted" | "done"
    last: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None


class Engine:
    """Runs ``recipe`` on ``data``; is also the ``StepContext`` given to ``train_step``."""

    def __init__(self, recipe: Any, data: Any, tcfg: TrainConfig, config_doc: dict[str, Any]) -> None:
        self.recipe, self.data, self.tcfg, self.doc = recipe, data, tcfg, config_doc
        self.run: RunDir | None = None
        self.dist = dist.init(tcfg.device)
        self.device = self.dist.device
        self.step = 0
        self._stop_requested = False
        self._elapsed_before = 0.0
        self._last: dict[str, Any] = {}
        # best evaluation so far (for RUN/best) and the most classes ever covered (collapse warning)
        self.best: dict[str, Any] = {"fid_lenet": float("inf"), "step": 0, "max_classes": 0}

        torch.manual_seed(tcfg.seed)  # identical initial weights on every rank
        recipe.build(self.device)
        for name, weights in getattr(data, "frozen", {}).items():  # e.g. a pretrained text encoder
            recipe.modules[name].load_state_dict(weights)
        if tcfg.channels_last:  # NHWC convolutions: 1.2-1.3x the steps per second on CPU (oneDNN)
            for m in recipe.modules.values():
                m.to(memory_format=torch.channels_last)  # only 4-D weights change layout
        self._all_modules_tensors = [t for m in recipe.modules.values() for t in (*m.parameters(), *m.buffers())]
        dist.broadcast_(self._all_modules_tensors, self.dist.world)
        self._opt_params = {
            name: [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
            for name, opt in recipe.optimizers.items()
        }
        self.ema = {n: copy.deepcopy(recipe.modules[n]).eval().requires_grad_(False) for n in recipe.ema_modules()}
        torch.manual_seed(tcfg.seed + 104729 * (self.dist.rank + 1))  # the training noise stream
        per_rank = recipe.batch_size // self.dist.world
        if per_rank * self.dist.world != recipe.batch_size:
            raise UsageError(f"batch {recipe.batch_size} is not divisible by {self.dist.world} processes")
        aligned = {k: v.to(self.device) for k, v in getattr(data, "aligned", {}).items()}
        self.sampler = make_sampler(data, self.device, per_rank, tcfg.seed, self.dist.rank, self.dist.world, aligned,
                                    channels_last=tcfg.channels_last)
        self.grid_inputs = recipe.data_inputs(tcfg.grid_n, torch.Generator().manual_seed(tcfg.seed), data)
        self._aligned = aligned
        self._standing: tuple[int, dict[str, nn.Module]] | None = None  # (step, copies) for sampling
        self._standing_sampler: tuple[Any, dict[str, Any]] | None = None  # (sampler, its initial state)

    @property
    def total_steps(self) -> int | None:
        """The run's step budget (``--steps``); None when only ``--minutes`` bounds it."""
        return self.tcfg.steps

    # -- StepContext ------------------------------------------------------------------------------
    def randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, device=self.device)

    def rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, device=self.device)

    def next_batch(self) -> Any:
        return self.sampler.next()

    def optimize(self, name: str, loss: Tensor) -> None:
        """Backward ``loss`` into optimizer ``name``'s parameters only, average across ranks, step.

        Restricting backward to the optimizer's parameters means a G step computes no weight
        gradients for D (only the input gradients it needs), and never touches D's ``.grad``.
        """
        if not bool(torch.isfinite(loss)):
            raise self._nonfinite(f"loss for optimizer {name!r} is {loss.item()}")
        opt, params = self.recipe.optimizers[name], self._opt_params[name]
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss, inputs=params)
        if self.dist.world > 1:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            dist.allreduce_mean_([p.grad for p in params], self.dist.world)
        opt.step()

    # -- state --------------------------------------------------------------------------------------
    def _nonfinite(self, what: str) -> NonFiniteError:
        bad = nonfinite_modules({**self.recipe.modules, **{f"{k} (EMA)": v for k, v in self.ema.items()}})
        where = f"non-finite weights in module {', '.join(bad)}" if bad else "all weights still finite"
        msg = f"training stopped at step {self.step + 1}: {what}; {where}; no checkpoint or export was written for it"
        if self.run is not None and self.dist.is_main:
            self.run.append_metrics({"step": self.step + 1, "event": "nonfinite", "message": msg})
        return NonFiniteError(msg)

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "modules": {n: m.state_dict() for n, m in self.recipe.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in self.recipe.optimizers.items()},
            "ema": {n: m.state_dict() for n, m in self.ema.items()},
            "rng": rng,
            "sampler": self.sampler.state_dict(),
            "extra": self.recipe.extra_state(),
            "elapsed": self._elapsed(),
            "best": dict(self.best),
            "config": self.doc,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        """Restore everything :meth:`state_dict` saved (call before :meth:`fit`)."""
        for n, m in self.recipe.modules.items():
            m.load_state_dict(s["modules"][n])
        for n, o in self.recipe.optimizers.items():
            o.load_state_dict(s["optimizers"][n])
        for n, m in self.ema.items():
            m.load_state_dict(s["ema"][n])
        self.recipe.load_extra_state(s.get("extra", {}))
        self.step = int(s["step"])
        self._elapsed_before = float(s.get("elapsed", 0.0))
        self.best.update(s.get("best", {}))
        if self.dist.is_main:  # other ranks get fresh, step-dependent streams (exactness is CPU, 1 process)
            torch.set_rng_state(s["rng"]["torch"])
            if "cuda" in s["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(s["rng"]["cuda"], self.device)
            self.sampler.load_state_dict(s["sampler"])
        else:
            torch.manual_seed(self.tcfg.seed + 104729 * (self.dist.rank + 1) + self.step)
        dist.broadcast_(self._all_modules_tensors, self.dist.world)

    def inference_modules(self) -> dict[str, nn.Module]:
        """The modules samples, evaluations and exports use: EMA copies where kept, and where the
        recipe asks for ``standing_stats``, copies with re-estimated BatchNorm statistics."""
        modules = {**self.recipe.modules, **self.ema}
        if not self.recipe.standing_batches:
            return modules
        if self._standing is None or self._standing[0] != self.step:
            self._standing = (self.step, self._standing_copies(modules))
        return {**modules, **self._standing[1]}

    def _standing_copies(self, modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """Standing statistics (``gankit.engine.standing``) from a sampler and a latent stream of
        their own, seeded the same every time: the training streams are not touched (exact resume)
        and the copies depend only on the weights."""
        if self._standing_sampler is None:  # built once (on a GPU, data.x is copied to the device once)
            sampler = make_sampler(self.data, self.device, self.recipe.batch_size, self.tcfg.seed + 7, 0, 1,
                                   self._aligned, channels_last=self.tcfg.channels_last)
            self._standing_sampler = (sampler, sampler.state_dict())
        sampler, start = self._standing_sampler
        sampler.load_state_dict(start)  # the same batches every time
        gen = torch.Generator().manual_seed(self.tcfg.seed + 7)
        return standing_copies(modules, self.recipe.standing_modules(),
                               lambda mods: self.recipe.standing_pass(mods, sampler.next(), gen),
                               self.recipe.standing_batches)

    def _elapsed(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._t0 if hasattr(self, "_t0") else 0.0)

    # -- events ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _ema_update(self) -> None:
        # Warm-up (as TF's ExponentialMovingAverage with num_updates): early on the average would
        # otherwise keep (decay ** step) of the random initial weights, 37% after 1,000 steps at 0.999.
        decay = min(self.recipe.ema_decay, (1 + self.step) / (10 + self.step))
        for n, ema in self.ema.items():
            live = self.recipe.modules[n]
            torch._foreach_lerp_(list(ema.parameters()), list(live.parameters()), 1.0 - decay)
            for b_ema, b in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b)

    def generate(self, inputs: Any) -> Tensor:
        """Samples from the inference modules (EMA where kept) in eval mode; training mode restored."""
        return self._in_eval_mode(self.recipe.generate, inputs)

    def _in_eval_mode(self, fn: Any, *args: Any) -> Any:
        """``fn(inference modules, *args)`` with every module in eval mode; training mode restored."""
        modules = self.inference_modules()
        modes = {n: m.training for n, m in modules.items()}
        for m in modules.values():
            m.eval()
        try:
            return fn(modules, *args)
        finally:
            for n, m in modules.items():
                m.train(modes[n])

    def _sample_event(self) -> dict[str, Any]:
        """Grid at the fixed latents, plus mode metrics on toy data. Rank 0 only."""
        from gankit import viz

        path = self.run.samples / f"step_{self.step:09d}.png"
        metrics: dict[str, Any] = {}
        if self.data.kind == "points":
            from gankit.metrics.modes import mode_stats

            modes, std = torch.tensor(self.data.info["modes"]), float(self.data.info["std"])
            pts = self.generate(self.recipe.sample_inputs(5000, torch.Generator().manual_seed(self.tcfg.seed + 1)))
            metrics = mode_stats(pts.cpu(), modes, std)
            title = f"step {self.step}: {metrics['modes']}/{len(modes)} modes, {100 * metrics['hq']:.1f}% high quality"
            viz.save_points(pts.cpu()[:2000], path, real=self.data.x[:2000], modes=modes, std=std, title=title)
        else:
            out, nrow = self._in_eval_mode(self.recipe.grid, self.grid_inputs)
            if out.dim() == 4:  # recipes that generate no images (a text encoder) have no grid
                viz.save_grid(out.cpu(), path, nrow=nrow, upscale=max(1, 64 // out.shape[-1]))
        return metrics

    def _checkpoint(self) -> None:
        """Checkpoint + export, refusing to write non-finite state. Rank 0 only."""
        bad = nonfinite_modules({**self.recipe.modules, **self.ema})
        if bad:
            raise self._nonfinite(f"weights of {', '.join(bad)} became non-finite")
        checkpoint.save(self.run.checkpoints, self.step, self.state_dict(), self.tcfg.keep_checkpoints)
        self._write_export(self.run.export, {})
        self._last_ckpt = self.step

    def _eval_event(self) -> dict[str, Any]:
        """fid/IS/class coverage in lenet features (or the recipe's own metrics); best export;
        collapse warning. Rank 0 only."""
        from gankit.metrics.evaluate import evaluate

        own = self._in_eval_mode(self.recipe.evaluate, self.data, self.tcfg.eval_n, self.tcfg.seed)
        if own is not None:
            return self._recipe_eval_event(own)

        inputs = self.recipe.sample_inputs(self.tcfg.eval_n, torch.Generator().manual_seed(self.tcfg.seed + 2))
        fake = torch.cat([self.generate(inputs[i : i + 500]).cpu() for i in range(0, self.tcfg.eval_n, 500)])
        res = evaluate(fake, self.data, metrics=("fid", "is", "classes"), seed=self.tcfg.seed)
        rec = {k: v for k, v in res.items() if k != "protocol"}
        self.run.append_metrics({"step": self.step, **rec})
        self._last.update(rec)
        fid, classes = rec["fid_lenet"], rec["classes_lenet"]
        warning = None
        if self.data.labels is not None and classes <= self.best["max_classes"] - 2:
            warning = f"samples cover {classes} of 10 digit classes (up to {self.best['max_classes']} before)"
        elif self.best["step"] and fid > 2 * self.best["fid_lenet"]:
            warning = f"fid_lenet jumped to {fid:.3g} (best {self.best['fid_lenet']:.3g} at step {self.best['step']})"
        if warning:
            log.warning("possible mode collapse at step %d: %s", self.step, warning)
            self.run.append_metrics({"step": self.step, "event": "collapse_warning", "message": warning})
        self.best["max_classes"] = max(self.best["max_classes"], classes)
        if fid < self.best["fid_lenet"]:
            self.best.update(fid_lenet=fid, step=self.step)
            self._write_export(self.run.path / "best", {"fid_lenet": fid, "eval_protocol": res["protocol"]})
        return rec

    def _recipe_eval_event(self, res: dict[str, Any]) -> dict[str, Any]:
        """Log a recipe's own metrics; keep the best export by ``recipe.best_metric`` if reported."""
        rec = {k: v for k, v in res.items() if k != "protocol"}
        self.run.append_metrics({"step": self.step, **rec})
        self._last.update(rec)
        key, mode = self.recipe.best_metric
        if key in rec:
            value = float(rec[key])
            best = self.best.get(key, float("inf") if mode == "min" else float("-inf"))
            if value < best if mode == "min" else value > best:
                self.best.update({key: value, "step": self.step})
                self._write_export(self.run.path / "best", {key: value, "eval_protocol": res.get("protocol", {})})
        return rec

    def _write_export(self, folder: Path, meta: dict[str, Any]) -> None:
        modules = self.inference_modules()
        export_mod.write(
            folder,
            recipe=self.recipe.name,
            hparams=self.doc["hparams"],
            spec=self.doc["data_info"],
            modules={n: modules[n] for n in self.recipe.export_modules()},
            meta={"step": self.step, "ema": sorted(self.ema), "seed": self.tcfg.seed,
                  "channels_last": self.tcfg.channels_last, **meta},
        )

    def _events(self, final: bool) -> None:
        """Sample grid, evaluation and checkpoint due at this step (rank 0).

        In the loop an event is due when the step is a multiple of its cadence; at the end of
        training, the events that were *not* just done at the final step run once more.
        """
        t, s = self.tcfg, self.step

        def due(every: int) -> bool:
            return every > 0 and (s % every == 0) != final

        if due(t.sample_every):
            metrics = self._sample_event()
            if metrics:
                self.run.append_metrics({"step": s, **metrics})
                self._last.update(metrics)
        if due(t.eval_every) and self.data.kind == "image":
            self._eval_event()
        if due(t.sample_every) or due(t.eval_every):
            self._plots()
        if (s % t.checkpoint_every == 0) if not final else self._last_ckpt != s:
            self._checkpoint()

    def _plots(self) -> None:
        from gankit import viz

        if not self.run.metrics.exists():  # a grid before the first log line (sample_every < log_every)
            return
        records = [r for r in viz.read_jsonl(self.run.metrics) if "event" not in r]
        loss_keys = sorted({k for r in records for k in r if k.startswith(("loss_", "D_"))})
        eval_keys = sorted({k for r in records for k in r if k in EVAL_PLOT_KEYS})
        if loss_keys:
            viz.plot_metrics(records, self.run.plots / "losses.png", keys=loss_keys, title=f"{self.recipe.name} losses")
        if eval_keys:
            viz.plot_metrics(records, self.run.plots / "metrics.png", keys=eval_keys, title=f"{self.recipe.name} sample quality")

    def _finish_files(self) -> None:
        from gankit import viz

        frames = sorted(self.run.samples.glob("step_*.png"))
        if frames:
            viz.save_gif(frames, self.run.samples / "progress.gif")
            last = frames[-1].read_bytes()
            checkpoint.atomic_write(self.run.samples / "latest.png", lambda f: f.write(last))
        self._plots()

    # -- the loop -----------------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True  # finish the current step, checkpoint, then exit

        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def fit(self, run: RunDir | None, deadline: float | None = None) -> FitResult:
        """Train until the budget is spent; ``run`` (rank 0) receives logs, grids and state.

        ``deadline``: the ``time.monotonic()`` at which ``--minutes`` runs out, when the budget
        began before this call (``gankit.train`` counts data preparation in it); default: the
        config's minutes from now.
        """
        self.run = run
        tcfg, main = self.tcfg, self.dist.is_main and self.run is not None
        target = tcfg.steps
        if target is not None and self.step >= target:
            return FitResult(self.step, "done", {}, self.run.path if self.run else None)
        from tqdm.auto import tqdm

        self._t0 = time.monotonic()
        if deadline is None and tcfg.minutes:
            deadline = self._t0 + tcfg.minutes * 60
        show_bar = tcfg.progress and self.dist.is_main and sys.stderr.isatty()
        bar = tqdm(total=target, initial=self.step, disable=not show_bar, unit="step", dynamic_ncols=True, leave=True)
        acc: dict[str, Tensor] = {}
        n_acc, t_log, event_time = 0, time.monotonic(), 0.0
        old_handlers = self._install_signals()
        self._last_ckpt = self.step if self.step else -1
        reason = "steps"
        try:
            while True:
                if target is not None and self.step >= target:
                    break
                over_time = deadline is not None and time.monotonic() >= deadline
                if self.dist.world > 1 and (deadline is not None or self._stop_requested):
                    stop = dist.any_flag(over_time or self._stop_requested, self.dist.world, self.device)
                else:
                    stop = over_time or self._stop_requested
                if stop:
                    reason = "interrupted" if self._stop_requested else "minutes"
                    break
                logs = self.recipe.train_step(self, self.sampler.next())
                self.step += 1
                if self.ema:
                    self._ema_update()
                for k, v in logs.items():
                    acc[k] = acc[k] + v if k in acc else v.clone()
                n_acc += 1
                bar.update(1)
                if self.step % tcfg.log_every == 0:
                    rec = self._log_record(acc, n_acc, time.monotonic() - t_log - event_time)
                    acc, n_acc, t_log, event_time = {}, 0, time.monotonic(), 0.0
                    bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items() if k.startswith(("loss_", "D_"))}, refresh=False)
                    if main:
                        self.run.append_metrics(rec)
                    if not show_bar and self.dist.is_main:
                        log.info("step %d  %s", self.step, "  ".join(f"{k} {v:.4g}" for k, v in rec.items() if k not in ("step", "time")))
                if main:
                    t_ev = time.monotonic()
                    self._events(final=False)
                    event_time += time.monotonic() - t_ev
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        if n_acc and main:
            rec = self._log_record(acc, n_acc, time.monotonic() - t_log - event_time)
            self.run.append_metrics(rec)
        if main:
            self._events(final=True)
            self._finish_files()
        dist.barrier(self.dist.world)
        return FitResult(self.step, reason, dict(self._last), self.run.path if self.run else None)

    def _log_record(self, acc: dict[str, Tensor], n: int, seconds: float) -> dict[str, Any]:
        rec: dict[str, Any] = {"step": self.step, "time": round(self._elapsed(), 2)}
        rec.update({k: float(v) / n for k, v in acc.items()})
        if seconds > 0:
            rec["img_per_s"] = round(n * self.recipe.batch_size / seconds, 1)
        self._last.update(rec)
        return rec
