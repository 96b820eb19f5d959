"""Engine guarantees: exact resume through the CLI path, atomic checkpoints, refusal of pickled
code, non-finite stops, the run-directory lock, and 2-process data parallelism on CPU."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.engine import checkpoint
from gankit.engine.rundir import RunDir
from gankit.errors import GankitError, NonFiniteError, UntrustedFileError, UsageError
from gankit.train import train

TINY_DCGAN = ["width=4", "sample_every=3", "checkpoint_every=2", "log_every=1"]


def final_state(run: Path) -> dict:
    (_, path), *_ = reversed(checkpoint.list_checkpoints(run / "checkpoints"))
    return checkpoint.load(path)


def assert_same_training_state(a: dict, b: dict) -> None:
    for group in ("modules", "ema"):
        for n in a[group]:
            for k, v in a[group][n].items():
                assert torch.equal(v, b[group][n][k]), f"{group}.{n}.{k}"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["step"] == b["step"]


def test_exact_resume_through_train(tmp_path):
    # evaluation runs in between too: it must not disturb the training state either
    common = dict(data="digits", batch=8, overrides=TINY_DCGAN + ["ema=true", "eval_every=3", "eval_n=50"])
    train("dcgan", out=tmp_path / "straight", steps=8, **common)
    train("dcgan", out=tmp_path / "split", steps=5, **common)  # stops between checkpoint cadences
    train("dcgan", out=tmp_path / "split", resume=True, steps=8, **common)
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "split"))
    steps = [r["step"] for r in map(eval_json, (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()) if "loss_D" in r]
    assert steps == list(range(1, 9)), "metrics.jsonl must hold each step once after a resume"


def eval_json(line):
    import json

    return json.loads(line)


def test_channels_last_is_a_layout_not_a_different_computation(tmp_path):
    common = dict(data="digits", batch=8, steps=6, overrides=TINY_DCGAN)
    train("dcgan", out=tmp_path / "nhwc", **common)
    train("dcgan", out=tmp_path / "nchw", **{**common, "overrides": TINY_DCGAN + ["channels_last=false"]})
    a, b = final_state(tmp_path / "nhwc"), final_state(tmp_path / "nchw")
    conv = a["modules"]["G"]["net.0.weight"]
    assert conv.dim() == 4 and conv.is_contiguous(memory_format=torch.channels_last)
    assert b["modules"]["G"]["net.0.weight"].is_contiguous()
    for n in a["modules"]:  # other kernels, other rounding: equal to float tolerance, not bitwise
        for k, v in a["modules"][n].items():
            if v.is_floating_point():
                assert torch.allclose(v, b["modules"][n][k], atol=1e-4, rtol=1e-3), f"{n}.{k}"


def test_minutes_budget_counts_data_preparation(tmp_path, monkeypatch, caplog):
    """--minutes is the invocation's budget: time spent preparing data (text2image trains its text
    encoder there) is not training time on top of it."""
    import logging
    import time

    import gankit.train as gt

    class TwoMinutesAgo:  # train() first reads when the command started: 2 minutes ago, as if preparing took them
        strftime = staticmethod(time.strftime)
        calls = 0

        @classmethod
        def monotonic(cls) -> float:
            cls.calls += 1
            return time.monotonic() - (120.0 if cls.calls == 1 else 0.0)

    monkeypatch.setattr(gt, "time", TwoMinutesAgo)
    common = dict(data="digits", batch=8, overrides=TINY_DCGAN)
    with caplog.at_level(logging.WARNING, logger="gankit"):
        res = train("dcgan", out=tmp_path / "spent", minutes=1, **common)
    assert (res.step, res.reason) == (0, "minutes")
    assert "no time is left to train" in caplog.text and "--resume --minutes" in caplog.text
    TwoMinutesAgo.calls = 0
    res = train("dcgan", out=tmp_path / "left", minutes=3, steps=3, **common)  # a minute left: trains on
    assert (res.step, res.reason) == (3, "steps")


def test_resume_refuses_changed_hparams_and_existing_run(tmp_path):
    out = tmp_path / "r"
    train("gan", out=out, steps=2, data="ring8", overrides=["hidden=8", "depth=1", "batch=8"])
    with pytest.raises(UsageError, match="cannot change 'lr' when resuming"):
        train("gan", out=out, resume=True, steps=4, overrides=["lr=0.1"])
    with pytest.raises(UsageError, match="already holds a run"):
        train("gan", out=out, steps=2, data="ring8")
    res = train("gan", out=out, resume=True, steps=2)
    assert res.reason == "done" and res.step == 2


def test_atomic_checkpoint_failure_keeps_previous(tmp_path, monkeypatch):
    good = checkpoint.save(tmp_path, 1, {"w": torch.ones(3)}, keep=3)

    def half_write_then_fail(obj, f):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_write_then_fail)
    with pytest.raises(GankitError, match="No space left on device") as err:
        checkpoint.save(tmp_path, 2, {"w": torch.zeros(3)}, keep=3)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [good.name]
    assert torch.equal(checkpoint.load_latest(tmp_path)["w"], torch.ones(3))


def test_crash_mid_write_leaves_previous_loadable(tmp_path):
    checkpoint.save(tmp_path, 1, {"w": torch.ones(2)}, keep=3)
    (tmp_path / ".step_000000002.pt.tmp-999").write_bytes(b"\x80\x02 cut short")  # killed mid-write
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [1]
    assert checkpoint.load_latest(tmp_path)["step"] == 1


def test_truncated_newest_falls_back(tmp_path):
    checkpoint.save(tmp_path, 1, {"w": torch.ones(2)}, keep=3)
    p2 = checkpoint.save(tmp_path, 2, {"w": torch.ones(2)}, keep=3)
    p2.write_bytes(p2.read_bytes()[:50])  # e.g. disk corruption
    assert checkpoint.load_latest(tmp_path)["step"] == 1


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = checkpoint.checkpoint_path(tmp_path, 1)
    with open(path, "wb") as f:
        torch.save({"format": checkpoint.FORMAT, "step": 1, "x": Payload(str(marker))}, f)
    with pytest.raises(UntrustedFileError, match="refusing to load"):
        checkpoint.load(path)
    with pytest.raises(UntrustedFileError):
        checkpoint.load_latest(tmp_path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(str(tmp_path / "control"))))  # the payload is real
    assert (tmp_path / "control").exists()


def test_nonfinite_weight_stops_with_module_name(tmp_path, monkeypatch):
    from gankit.recipes.gan import GANRecipe

    real_step = GANRecipe.train_step

    def poisoned(self, ctx, batch):
        if ctx.step == 3:
            with torch.no_grad():
                next(self.modules["G"].parameters()).view(-1)[0] = float("nan")
        return real_step(self, ctx, batch)

    monkeypatch.setattr(GANRecipe, "train_step", poisoned)
    out = tmp_path / "r"
    with pytest.raises(NonFiniteError, match=r"step 4: loss for optimizer 'D' is nan; non-finite weights in module G"):
        train("gan", out=out, steps=10, data="ring8", overrides=["hidden=8", "depth=1", "batch=8", "checkpoint_every=2"])
    assert [s for s, _ in checkpoint.list_checkpoints(out / "checkpoints")] == [2]
    assert checkpoint.load_latest(out / "checkpoints")["step"] == 2
    assert '"event": "nonfinite"' in (out / "metrics.jsonl").read_text()


def test_lock_refuses_second_writer(tmp_path):
    a, b = RunDir(tmp_path), RunDir(tmp_path)
    a.create()
    a.lock()
    with pytest.raises(UsageError, match=f"in use by another gankit process \\(pid {os.getpid()}\\)"):
        b.lock()
    a.unlock()
    b.lock()
    b.unlock()


DDP_CHECK = r"""
import torch, torch.distributed as dist
from gankit.train import resolve, load_data
from gankit.engine.loop import Engine
from gankit.recipes.base import DataSpec
cls, hp, tcfg = resolve("gan", data="ring8", overrides=["hidden=8", "depth=1", "batch=16"], steps=5)
ds = load_data(tcfg.data, cls, hp, tcfg)
eng = Engine(cls(hp, DataSpec.from_dataset(ds)), ds, tcfg, {})
eng.fit(None)
flat = torch.cat([p.detach().flatten() for m in eng.recipe.modules.values() for p in m.parameters()])
out = [torch.zeros_like(flat) for _ in range(2)]
dist.all_gather(out, flat)
assert torch.equal(out[0], out[1]), "ranks diverged"
assert eng.sampler.batch == 8
print("RANK_OK", dist.get_rank())
from gankit.engine.dist import exit_worker, shutdown
shutdown()  # barrier, then destroy: no rank tears down while a peer is mid-collective
exit_worker(0)  # as the CLI does: no gloo teardown racing interpreter finalization
"""


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_two_process_data_parallel_keeps_ranks_in_sync(tmp_path):
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_CHECK)
    r = _torchrun([str(script)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("RANK_OK") == 2


def test_two_process_cli_run(tmp_path):
    r = _torchrun(["-m", "gankit", "-q", "train", "gan", "--data", "ring8", "--steps", "6", "--batch", "16",
                   "--set", "hidden=8", "--set", "depth=1", "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert checkpoint.load_latest(tmp_path / "run" / "checkpoints")["step"] == 6
    assert (tmp_path / "run" / "export" / "config.json").exists()


def test_eval_every_logs_metrics_keeps_best_and_warns_on_collapse(tmp_path, monkeypatch):
    import json

    import gankit.metrics.evaluate as ev

    scripted = iter([(30.0, 10), (20.0, 10), (25.0, 7), (60.0, 7)])  # (fid, classes) per evaluation

    def fake_evaluate(fake, data, metrics, seed):
        assert fake.shape[0] == 20 and data.kind == "image"
        fid, classes = next(scripted)
        return {"fid_lenet": fid, "is_lenet": 5.0, "is_lenet_std": 0.1, "classes_lenet": classes, "protocol": {"n_fake": 20}}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    out = tmp_path / "r"
    train("dcgan", out=out, steps=8, data="digits", batch=8, overrides=["width=4", "eval_every=2", "eval_n=20"])
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["fid_lenet"] for r in recs if "fid_lenet" in r] == [30.0, 20.0, 25.0, 60.0]
    warnings = [r["message"] for r in recs if r.get("event") == "collapse_warning"]
    assert warnings == ["samples cover 7 of 10 digit classes (up to 10 before)", "samples cover 7 of 10 digit classes (up to 10 before)"]
    best = json.loads((out / "best" / "config.json").read_text())
    assert best["step"] == 4 and best["fid_lenet"] == 20.0
    assert checkpoint.load_latest(out / "checkpoints")["best"]["step"] == 4
    assert (out / "plots" / "metrics.png").exists()
