"""`gankit eval` end to end: real digits score as real, a broken generator scores as broken."""

import json

import numpy as np
import pytest
import torch

from gankit.cli import main
from gankit.data import load_dataset
from gankit.metrics.evaluate import evaluate


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


def test_real_digits_score_as_real(mnist):
    held = mnist.x[::2]  # half the real digits against all of them
    r = evaluate(held, mnist, seed=0)
    assert r["fid_lenet"] < 2.0 and r["classes_lenet"] == 10
    assert r["is_lenet"] > 8.5  # 10 classes, confidently predicted
    assert r["precision_lenet"] > 0.9 and r["recall_lenet"] > 0.9
    assert r["protocol"]["n_real"] == 5000 and r["protocol"]["features_held_out_accuracy"] >= 0.95


def test_collapsed_generator_scores_badly(mnist):
    ones = mnist.x[mnist.labels == 1][:1].repeat(500, 1, 1, 1)  # one image, 500 times
    r = evaluate(ones, mnist, seed=0)
    real = evaluate(mnist.x[::2], mnist, seed=0)
    assert r["fid_lenet"] > 20 * real["fid_lenet"]
    assert r["classes_lenet"] == 1 and r["is_lenet"] < 1.5 and r["recall_lenet"] < 0.05


def test_eval_cli_on_npz(tmp_path, mnist, capsys):
    f = tmp_path / "s.npz"
    np.savez(f, arr_0=mnist.x[:300].permute(0, 2, 3, 1).numpy())
    assert main(["eval", str(f), "--data", "mnist", "--json", "--metrics", "fid,classes"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"fid_lenet", "classes_lenet", "protocol"}
    np.savez(f, arr_0=np.zeros((5, 4), dtype=np.float32))
    assert main(["eval", str(f), "--data", "mnist"]) == 2
    assert "arr_0 must be uint8" in capsys.readouterr().err
    assert main(["eval", str(f)]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["eval", str(f), "--data", "mnist", "--metrics", "fid,nope"]) == 2


def test_eval_cli_on_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-q", "train", "dcgan", "--data", "mnist", "--steps", "2", "--set", "width=4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"]["data"] == "mnist" and out["protocol"]["n_fake"] == 200
    assert np.isfinite(out["fid_lenet"]) and out["fid_lenet"] > 0
