"""Fault battery: kill -9, full disk, unwritable runs, non-finite values, bad input, untrusted
files and concurrent writers, each against the real ``gankit`` command. Prints a table.

    python benchmarks/faults.py              # 24 kills (half of them mid-checkpoint-write)
    python benchmarks/faults.py --kills 6    # quicker

Every case runs ``python -m gankit`` in a subprocess, as a user would. The fast subset lives in
``tests/reliability/`` and imports these functions.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.engine import checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
GANKIT = [sys.executable, "-m", "gankit", "-q"]
# Big enough that a checkpoint write takes a few ms (so a kill can land inside it), small enough
# that a run of 120 steps takes seconds.
KILL_RUN = ["train", "gan", "--data", "ring8", "--batch", "32", "--set", "hidden=384", "--set", "depth=3",
            "--set", "checkpoint_every=4", "--set", "sample_every=100000", "--set", "log_every=4"]


@dataclass
class Case:
    name: str
    tried: int = 0
    handled: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, note: str = "") -> None:
        self.tried += 1
        self.handled += bool(ok)
        if not ok and note:
            self.notes.append(note)


def gankit(*args: str, cwd: Path | None = None, limit_fsize: int | None = None, timeout: float = 600,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    def preexec() -> None:
        if limit_fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))

    return subprocess.run([*GANKIT, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd,
                          preexec_fn=preexec, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess, code: int | None = 2, fragment: str = "") -> bool:
    err = r.stderr.strip()
    return ((code is None and r.returncode != 0) or r.returncode == code) and err.startswith("gankit: error:") \
        and "\n" not in err and "Traceback" not in err and fragment in err


def training_tensors(run: Path) -> dict[str, torch.Tensor]:
    steps = checkpoint.list_checkpoints(run / "checkpoints")
    state = checkpoint.load(steps[-1][1])
    out = {}
    for group in ("modules", "ema"):
        for n, sd in state[group].items():
            out.update({f"{group}.{n}.{k}": v for k, v in sd.items()})
    for n, sd in state["optimizers"].items():
        for pid, st in sd["state"].items():
            out.update({f"opt.{n}.{pid}.{k}": torch.as_tensor(v) for k, v in st.items()})
    return out


def latest_step(run: Path) -> int:
    state = checkpoint.load_latest(run / "checkpoints")
    return 0 if state is None else int(state["step"])


def kill_and_resume(work: Path, kills: int, steps: int = 120, seed: int = 0) -> Case:
    """SIGKILL a run ``kills`` times (every other time while a checkpoint temp file exists),
    resume after each, and compare the end state with an uninterrupted run's, bit for bit."""
    case = Case(f"kill -9 + --resume ({kills} kills)")
    rng = random.Random(seed)
    ref, run = work / "reference", work / "killed"
    r = gankit(*KILL_RUN, "--steps", str(steps), "--out", str(ref))
    assert r.returncode == 0, r.stderr
    started, mid_write, best = False, 0, 0
    while case.tried < kills:
        p = subprocess.Popen([*GANKIT, *KILL_RUN, "--steps", str(steps), "--out", str(run), *(["--resume"] if started else [])],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        want_mid_write = case.tried % 2 == 1
        deadline = time.monotonic() + rng.uniform(1.5, 4.0)
        while p.poll() is None and time.monotonic() < deadline + (5 if want_mid_write else 0):
            if want_mid_write and time.monotonic() >= deadline - 1 and any((run / "checkpoints").glob(".step_*.tmp-*")):
                break
            time.sleep(0.0005)
        if p.poll() is not None:  # the run finished before this kill: the note below says how many landed
            break
        p.kill()
        p.wait()
        # A kill that lands before the run wrote its config (slow start-up on a loaded machine) leaves
        # no run to resume: as a user would, start it again without --resume.
        started = (run / "config.yaml").exists()
        in_write = any((run / "checkpoints").glob(".step_*.tmp-*"))
        mid_write += in_write
        now = latest_step(run)
        case.check(now >= best, f"checkpoint lost: had step {best}, loadable now {now}")
        case.lost += now < best
        best = max(best, now)
    r = gankit(*KILL_RUN, "--steps", str(steps), "--out", str(run), "--resume")
    same = r.returncode == 0
    if same:
        a, b = training_tensors(ref), training_tensors(run)
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    case.check(same, "final weights differ from the uninterrupted run" if r.returncode == 0 else r.stderr[-300:])
    landed = case.tried - 1
    case.notes.insert(0, f"{landed} of {kills} kills landed ({mid_write} while a checkpoint temp file existed); "
                         f"final weights == uninterrupted: {same}")
    return case


def full_disk(work: Path) -> Case:
    """A write limit (RLIMIT_FSIZE) makes the next checkpoint fail like a full disk."""
    case = Case("full disk during a checkpoint")
    run = work / "disk"
    base = ["train", "gan", "--data", "ring8", "--set", "hidden=256", "--set", "checkpoint_every=10", "--out", str(run)]
    assert gankit(*base, "--steps", "10").returncode == 0
    r = gankit(*base, "--steps", "30", "--resume", limit_fsize=400_000)
    case.check(one_line_error(r, code=1, fragment="cannot write"), r.stderr[-300:])
    case.check(latest_step(run) == 10, "the previous checkpoint is not the loadable latest")
    case.check(not any((run / "checkpoints").glob("*.tmp-*")), "temp file left behind")
    return case


def unwritable(work: Path) -> Case:
    case = Case("unwritable run directory")
    blocker = work / "a_file"
    blocker.write_text("x")
    for out in (blocker / "run", Path("/proc/gankit-run")):
        r = gankit("train", "gan", "--steps", "2", "--out", str(out))
        case.check(one_line_error(r, code=2, fragment=str(out)), r.stderr[-300:])
    return case


POISON = """
import sys, torch
import gankit.losses as L
from gankit.recipes.gan import GANRecipe
from gankit.cli import main
where, at = sys.argv[1], int(sys.argv[2])
real_step, real_d = GANRecipe.train_step, L.LOSSES["non_saturating"]
def step(self, ctx, batch):
    if where == "weight" and ctx.step == at - 1:
        with torch.no_grad():
            self.modules["G"].net[2].weight[0, 0] = float("inf")
    return real_step(self, ctx, batch)
def d_loss(r, f, _d=real_d[0]):
    return _d(r, f) * (float("nan") if where == "loss" and L._calls.append(1) is None and len(L._calls) == at else 1.0)
L._calls = []
GANRecipe.train_step = step
L.LOSSES["non_saturating"] = (d_loss, real_d[1])
sys.exit(main(sys.argv[3:]))
"""


def nonfinite(work: Path) -> Case:
    """NaN/inf injected into a loss or a weight at step 7: stop at step 7, name it, write nothing bad."""
    case = Case("NaN / inf in a loss or a weight")
    for where, expect in (("loss", "loss for optimizer 'D' is nan; all weights still finite"),
                          ("weight", "non-finite weights in module G")):
        run = work / where
        args = ["-q", "train", "gan", "--steps", "20", "--set", "hidden=16", "--set", "checkpoint_every=5", "--out", str(run)]
        r = subprocess.run([sys.executable, "-c", POISON, where, "7", *args], capture_output=True, text=True, env=ENV)
        case.check(one_line_error(r, 3, expect) and "stopped at step 7:" in r.stderr, r.stderr[-300:])
        steps = [s for s, _ in checkpoint.list_checkpoints(run / "checkpoints")]
        export_step = __import__("json").loads((run / "export" / "config.json").read_text())["step"]
        case.check(steps == [5] and export_step == 5, f"checkpoints {steps}, export step {export_step}")
    return case


def write_bad_corpus(root: Path) -> dict[str, Path]:
    """Every kind of bad or odd image file, one folder each, plus one mixed folder."""
    rng = np.random.default_rng(0)
    good = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    files: dict[str, bytes | None] = {}
    tmp = root / "_src"
    tmp.mkdir(parents=True)
    good.save(tmp / "g.png")
    good.save(tmp / "g.jpg", quality=90)
    png, jpg = (tmp / "g.png").read_bytes(), (tmp / "g.jpg").read_bytes()
    files["zero_byte.png"] = b""
    files["truncated.png"] = png[: len(png) // 2]
    files["truncated.jpg"] = jpg[: len(jpg) // 2]
    files["corrupt.png"] = png[:40] + bytes(rng.integers(0, 255, 200, dtype=np.uint8)) + png[240:]
    files["not_an_image.jpg"] = b"%PDF-1.4 definitely not a jpeg\n"
    # a 20000x20000 PNG header with no pixel data: must be refused before decoding
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    files["bomb.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    odd = {
        "cmyk.jpg": good.convert("CMYK"),
        "gray16.png": Image.fromarray((rng.integers(0, 65535, (24, 24))).astype(np.uint16)),
        "palette.png": good.convert("P"),
        "rgba.png": good.convert("RGBA"),
        "one_pixel.png": Image.new("RGB", (1, 1), (200, 10, 10)),
    }
    folders = {}
    mixed = root / "mixed"
    mixed.mkdir()
    for name, data in files.items():
        d = root / f"only_{name.replace('.', '_')}"
        d.mkdir()
        (d / name).write_bytes(data)
        (mixed / name).write_bytes(data)
        folders[name] = d
    for name, img in odd.items():
        img.save(mixed / name)
    for i in range(6):
        good.save(mixed / f"good{i}.png")
    (mixed / "loop").symlink_to(mixed, target_is_directory=True)
    (mixed / "dangling.png").symlink_to(root / "nowhere.png")
    folders["mixed"] = mixed
    empty = root / "empty"
    empty.mkdir()
    folders["empty"] = empty
    loop_only = root / "loop_only"
    loop_only.mkdir()
    (loop_only / "self").symlink_to(loop_only, target_is_directory=True)
    folders["loop_only"] = loop_only
    return folders


def bad_input(work: Path) -> Case:
    case = Case("bad input data and arguments")
    folders = write_bad_corpus(work / "corpus")
    tiny = ["--steps", "1", "--size", "16", "--batch", "2", "--set", "width=4"]
    for name, folder in folders.items():
        out = work / f"run_{name}"
        r = gankit("train", "dcgan", "--data", str(folder), "--out", str(out), *tiny)
        if name == "mixed":  # 6 good + 5 odd-but-valid images train; the bad ones are counted
            ok = r.returncode == 0 and "skipped" in r.stderr and "Traceback" not in r.stderr
            case.check(ok, f"mixed folder: {r.stderr[-300:]}")
        else:
            ok = one_line_error(r, 2, str(folder)) and not out.exists()
            case.check(ok, f"{name}: rc {r.returncode}: {r.stderr.strip()[-200:]}")
    # unpaired (CycleGAN) roots: a domain folder that is missing, or holds no image
    for label, subs in (("missing_trainB", ("trainA", "testA")), ("empty_trainB", ("trainA", "trainB"))):
        root = work / f"unpaired_{label}"
        for sub in subs:
            (root / sub).mkdir(parents=True)
        for i in range(3):
            (root / "trainA" / f"{i}.png").write_bytes((folders["mixed"] / "good0.png").read_bytes())
        out = work / f"run_{label}"
        r = gankit("train", "cyclegan", "--data", str(root), "--out", str(out), "--steps", "1", "--size", "16",
                   "--set", "ngf=2", "--set", "ndf=2", "--set", "n_blocks=1")
        case.check(one_line_error(r, 2, "trainB") and not out.exists(), f"{label}: rc {r.returncode}: {r.stderr.strip()[-200:]}")
    captioned_folders(work, folders["mixed"] / "good0.png", case)
    for args, fragment in [
        (["--set", "nosuchkey=1"], "unknown setting"), (["--set", "lr=fast"], "bad value for lr"),
        (["--set", "ema=2"], "bad value for ema"), (["--steps", "-3"], "positive"), (["--steps", "0"], "positive"),
        (["--minutes", "0"], "positive"), (["--batch", "100000"], "larger than the dataset"),
        (["--batch", "0"], "positive"), (["--seed", "x"], "bad value for seed"),
    ]:
        out = work / "run_args"
        r = gankit("train", "dcgan", "--data", "digits", "--out", str(out), *(["--steps", "1"] if "--steps" not in args else []), *args)
        case.check(one_line_error(r, 2, fragment) and not out.exists(), f"{args}: {r.stderr.strip()[-200:]}")
    return case


def captioned_folders(work: Path, good_png: Path, case: Case) -> None:
    """Caption files that are not UTF-8 or hold no line: alone, a one-line error naming the first;
    beside good ones, skipped, counted and named in one warning while training goes on."""
    tiny = ["--steps", "1", "--size", "16", "--batch", "2", "--set", "width=4", "--set", "t_dim=4", "--set", "z_dim=4",
            "--set", "encoder_steps=1", "--set", "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32"]
    bad = {"not_utf8": b"a red \xff\xfe circle\n", "no_lines": b"", "blank_lines": b"\n  \n\t\n"}
    for label, payload in bad.items():
        root = work / f"captions_{label}"
        root.mkdir(parents=True)
        for i in range(3):
            (root / f"p{i}.png").write_bytes(good_png.read_bytes())
            (root / f"p{i}.txt").write_bytes(payload)
        out = work / f"run_captions_{label}"
        r = gankit("train", "text2image", "--data", str(root), "--out", str(out), *tiny, env={"GANKIT_CACHE": str(work / "cache")})
        case.check(one_line_error(r, 2, "p0.png") and not out.exists(), f"captions {label}: rc {r.returncode}: {r.stderr.strip()[-200:]}")
    root = work / "captions_mixed"
    root.mkdir()
    for i in range(4):
        (root / f"g{i}.png").write_bytes(good_png.read_bytes())
        (root / f"g{i}.txt").write_text(f"a small red circle number {i}\n")
    for label, payload in bad.items():
        (root / f"{label}.png").write_bytes(good_png.read_bytes())
        (root / f"{label}.txt").write_bytes(payload)
    out = work / "run_captions_mixed"
    r = gankit("train", "text2image", "--data", str(root), "--out", str(out), *tiny, env={"GANKIT_CACHE": str(work / "cache")})
    ok = r.returncode == 0 and "3 images without usable captions skipped" in r.stderr and "Traceback" not in r.stderr
    case.check(ok and (out / "export" / "config.json").is_file(), f"captions mixed: rc {r.returncode}: {r.stderr.strip()[-300:]}")


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def untrusted_files(work: Path) -> Case:
    import pickle

    case = Case("untrusted checkpoint / export")
    run = work / "victim"
    assert gankit("train", "gan", "--steps", "4", "--set", "hidden=8", "--out", str(run)).returncode == 0
    marker = work / "PWNED"
    # 1. a checkpoint carrying a pickle payload, picked up by --resume
    ckpt = checkpoint.checkpoint_path(run / "checkpoints", 999)
    with open(ckpt, "wb") as f:
        torch.save({"format": checkpoint.FORMAT, "step": 999, "x": _Payload(str(marker))}, f)
    r = gankit("train", "gan", "--steps", "1000", "--out", str(run), "--resume")
    case.check(one_line_error(r, 2, "refusing to load") and not marker.exists(), r.stderr[-300:])
    ckpt.unlink()
    # 2. an export whose weights file is a pickle instead of safetensors
    g = run / "export" / "G.safetensors"
    g.write_bytes(pickle.dumps(_Payload(str(marker))))
    r = gankit("sample", str(run), "--n", "4", "--out", str(work / "s.npz"))
    case.check(one_line_error(r, 2, "refusing") and not marker.exists(), r.stderr[-300:])
    # 3. a torch.save()d state dict renamed to .safetensors
    torch.save({"w": torch.zeros(2)}, g)
    r = gankit("sample", str(run), "--n", "4", "--out", str(work / "s.npz"))
    case.check(one_line_error(r, 2, "refusing") and not marker.exists(), r.stderr[-300:])
    case.notes.append(f"marker file created: {marker.exists()}")
    return case


def concurrent_writers(work: Path) -> Case:
    case = Case("two trainings into one --out")
    run = work / "shared"
    a = subprocess.Popen([*GANKIT, "train", "gan", "--minutes", "1", "--out", str(run)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t = time.monotonic()
        while not (run / ".lock").exists() and time.monotonic() - t < 60:
            time.sleep(0.05)
        time.sleep(0.5)
        b = gankit("train", "gan", "--minutes", "1", "--out", str(run), "--resume")
        case.check(one_line_error(b, 2, "in use by another gankit process"), b.stderr[-300:])
        c = gankit("train", "gan", "--minutes", "1", "--out", str(run))
        case.check(c.returncode == 2 and "Traceback" not in c.stderr, c.stderr[-300:])
    finally:
        a.terminate()  # SIGTERM: finishes the step, checkpoints, exits
        a.wait(timeout=120)
    case.check(a.returncode == 130 and latest_step(run) > 0, f"first writer ended with {a.returncode}")
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description="gankit fault battery")
    ap.add_argument("--kills", type=int, default=24)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = []
        for fn in (lambda w: kill_and_resume(w, a.kills, steps=max(120, 60 * a.kills)), nonfinite, full_disk, unwritable, bad_input, untrusted_files, concurrent_writers):
            sub = work / f"c{len(cases)}"
            sub.mkdir()
            t = time.monotonic()
            cases.append(fn(sub))
            cases[-1].notes.append(f"{time.monotonic() - t:.0f} s")
    print(f"{'case':<36}{'tried':>7}{'handled':>9}{'data lost':>11}")
    for c in cases:
        print(f"{c.name:<36}{c.tried:>7}{c.handled:>9}{c.lost:>11}")
        for n in c.notes:
            print(f"    {n}")
    tried, handled, lost = (sum(getattr(c, k) for c in cases) for k in ("tried", "handled", "lost"))
    print(f"{'total':<36}{tried:>7}{handled:>9}{lost:>11}")
    sys.exit(0 if tried == handled and lost == 0 else 1)


if __name__ == "__main__":
    main()
