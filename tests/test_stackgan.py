"""StackGAN: conditioning augmentation and its KL term, both generators' shapes, the frozen
Stage-I, training both stages in one command (budget split, resume from either stage), the CLI
(txt2img --stages, eval, errors) and tiny runs on the CUB and Oxford-102 layouts."""

import json

import numpy as np
import pytest
import torch
from conftest import STACKGAN_TINY
from PIL import Image
from safetensors.torch import load_file
from test_text2image import make_cub, make_oxford

from gankit import export
from gankit.cli import main
from gankit.engine.loop import Engine
from gankit.losses import kl_normal
from gankit.models.stackgan import ConditioningAugmentation, StageIGenerator, StageIIGenerator, grid_side
from gankit.train import train

TINY = [*STACKGAN_TINY, "progress=false", "log_every=1"]


def test_kl_term_matches_torch_distributions_and_ca_reparameterises():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    want = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert torch.allclose(kl_normal(mu, logvar), want, atol=1e-6)
    torch.manual_seed(0)
    ca = ConditioningAugmentation(8, 3)
    emb, eps = torch.randn(5, 8), torch.randn(5, 3)
    c, m, lv = ca(emb, eps)
    assert torch.allclose(c, m + (0.5 * lv).exp() * eps)
    assert torch.equal(ca(emb, torch.zeros(5, 3))[0], m)  # ε = 0: the mean


@pytest.mark.parametrize("s1,mg", [(16, 8), (32, 8), (64, 16)])
def test_generators_keep_the_4x_ratio(s1, mg):
    torch.manual_seed(0)
    assert grid_side(s1) == mg  # the paper's M_g = 16 for a 64 px Stage-I
    g1, g2 = StageIGenerator(4, 8, 4, 3, s1, 4).eval(), StageIIGenerator(8, 4, 3, s1, 4, 1).eval()
    z, eps, emb = torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 8)
    low, mu, logvar = g1(z, eps, emb)
    high = g2(low, eps, emb)[0]
    assert low.shape == (2, 3, s1, s1) and high.shape == (2, 3, 4 * s1, 4 * s1) and mu.shape == logvar.shape == (2, 4)
    assert high.abs().max() <= 1


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_stage1_is_frozen_during_stage2(stackgan_stage1, tmp_path):
    s1 = load_file(stackgan_stage1 / "export" / "G1.safetensors")
    res = train("stackgan", data="shapes", out=tmp_path / "s2", steps=3,
                overrides=[*TINY, "stage=2", f"stage1_run={stackgan_stage1}"])
    assert res.step == 3
    cfg = json.loads((tmp_path / "s2" / "export" / "config.json").read_text())
    assert cfg["modules"] == ["G1", "G2", "T"] and cfg["data"]["info"]["stage1"]["step"] == 2
    after = load_file(tmp_path / "s2" / "export" / "G1.safetensors")  # weights and BN statistics
    assert s1.keys() == after.keys() and all(torch.equal(s1[k], after[k]) for k in s1)
    t1, t2 = (load_file(p / "export" / "T.safetensors") for p in (stackgan_stage1, tmp_path / "s2"))
    assert all(torch.equal(t1[k], t2[k]) for k in t1)  # Stage-II reads captions with Stage-I's encoder
    assert cfg["data"]["shape"] == [3, 64, 64]


def test_stage2_engine_has_no_optimizer_for_stage1(stackgan_stage1):
    from gankit.config import to_dict
    from gankit.recipes.base import DataSpec
    from gankit.train import load_data, resolve

    cls, hp, tcfg = resolve("stackgan", data="shapes", overrides=[*TINY, "stage=2", f"stage1_run={stackgan_stage1}"],
                            steps=2)
    ds = load_data(tcfg.data, cls, hp, tcfg)
    spec = DataSpec.from_dataset(ds)
    eng = Engine(cls(hp, spec), ds, tcfg, {"recipe": "stackgan", "hparams": to_dict(hp), "data_info": spec.to_dict()})
    assert set(eng.recipe.optimizers) == {"D2", "G2"} and not eng.recipe.modules["G1"].training
    before = _weights(eng.recipe.modules["G1"])
    eng.fit(None)
    assert all(torch.equal(before[k], v) for k, v in eng.recipe.modules["G1"].state_dict().items())
    assert eng.recipe.lr_at(0) == hp.lr
    hp.lr_decay_epochs = 1
    n = eng.recipe.n_images
    assert eng.recipe.lr_at(n // hp.batch + 1) == hp.lr / 2  # one epoch seen: halved


def test_both_stages_in_one_command_split_the_budget_and_resume(tmp_path):
    run = tmp_path / "both"
    res = train("stackgan", data="shapes", out=run, steps=5, overrides=TINY)  # Stage-I 0.3 * 5 -> 2 steps
    assert res.step == 3 and res.run_dir == run
    doc = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert doc["first_run"]["steps"] == 2 and doc["hparams"]["stage"] == "both"
    assert doc["hparams"]["stage1_run"] == str((run / "stage1").resolve()) and doc["train"]["steps"] == 3
    s1 = __import__("yaml").safe_load((run / "stage1" / "config.yaml").read_text())
    assert s1["hparams"]["stage"] == "1" and s1["train"]["steps"] == 2 and s1["first_run_of"]["train"]["steps"] == 5
    g1 = load_file(run / "stage1" / "export" / "G1.safetensors")
    assert all(torch.equal(g1[k], v) for k, v in load_file(run / "export" / "G1.safetensors").items())
    # --steps stays the total of both stages
    assert train("stackgan", out=run, resume=True, steps=7, overrides=["progress=false"]).step == 5
    assert json.loads((run / "export" / "config.json").read_text())["step"] == 5


def test_minutes_split_what_preparing_stage1_left(tmp_path, monkeypatch):
    """--minutes T is the command's: the text encoder Stage-I prepares comes out of it, Stage-I
    trains for stage1_share of what is left, Stage-II until T is spent. A fake clock on which
    preparing Stage-I's data takes 120 s; the deadlines train() hands the engine are read off it."""
    import gankit.train as gt

    class Clock:
        now = 1000.0
        strftime = staticmethod(__import__("time").strftime)

        @classmethod
        def monotonic(cls) -> float:
            return cls.now

    load_data, fit, deadlines, loads = gt.load_data, Engine.fit, [], []

    def slow_first_load(*a, **kw):
        loads.append(1)
        Clock.now += 120.0 if len(loads) == 1 else 0.0  # Stage-I's preparation (its encoder's is inside it)
        return load_data(*a, **kw)

    def record(self, run, deadline=None):
        if self.recipe.name == "stackgan":  # not the text encoder's run
            deadlines.append(deadline)
        return fit(self, run)  # trains by --steps on the real clock

    monkeypatch.setattr(gt, "time", Clock)
    monkeypatch.setattr(gt, "load_data", slow_first_load)
    monkeypatch.setattr(Engine, "fit", record)
    res = train("stackgan", data="shapes", out=tmp_path / "r", steps=4, minutes=10, overrides=TINY)
    assert res.step == 3
    # Stage-I: 0.3 of the 480 s left after 120 s of preparation; Stage-II: until 600 s after the start
    assert deadlines == [pytest.approx(1120.0 + 0.3 * 480.0), pytest.approx(1600.0)]


def test_a_moved_run_resumes_with_its_own_stage1(tmp_path):
    run = tmp_path / "before"
    train("stackgan", data="shapes", out=run, steps=4, overrides=TINY)
    moved = tmp_path / "after"
    run.rename(moved)
    assert train("stackgan", out=moved, resume=True, steps=6, overrides=["progress=false"]).step == 5
    doc = __import__("yaml").safe_load((moved / "config.yaml").read_text())
    assert doc["hparams"]["stage1_run"] == doc["first_run"]["path"] == str((moved / "stage1").resolve())


def test_resume_while_stage1_is_unfinished(tmp_path, monkeypatch):
    fit = Engine.fit

    def interrupted_stage1(self, run, **kw):
        if getattr(self.recipe.cfg, "stage", None) == "1":
            self._stop_requested = True  # as Ctrl-C during Stage-I
        return fit(self, run, **kw)

    run = tmp_path / "r"
    with monkeypatch.context() as m:
        m.setattr(Engine, "fit", interrupted_stage1)
        res = train("stackgan", data="shapes", out=run, steps=4, overrides=TINY)
    assert res.reason == "interrupted" and res.run_dir == run and not (run / "config.yaml").exists()
    res = train("stackgan", out=run, resume=True, steps=4, overrides=["progress=false"])
    assert res.reason == "steps" and res.step == 3  # Stage-I 1 step, then Stage-II 3
    doc = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert doc["first_run"]["steps"] == 1 and doc["hparams"]["ngf2"] == 4  # the saved settings, not defaults


@pytest.mark.parametrize("layout", ["cub", "oxford"])
def test_stackgan_trains_on_caption_layouts(tmp_path, layout):
    data = {"cub": make_cub, "oxford": make_oxford}[layout](tmp_path / layout)
    res = train("stackgan", data=str(data), out=tmp_path / "run", steps=2, overrides=TINY)
    assert res.step == 1
    cfg = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert cfg["modules"] == ["G1", "G2", "T"] and cfg["data"]["shape"] == [3, 64, 64]
    model = export.load(tmp_path / "run")
    assert model.sample(3, seed=1).shape == (3, 3, 64, 64)


def test_cli_txt2img_stages_eval_and_errors(stackgan_stage1, tmp_path, capsys, monkeypatch):
    from gankit.metrics import attributes

    run = tmp_path / "s2"
    sets = sum((["--set", s] for s in [*TINY, "stage=2", f"stage1_run={stackgan_stage1}"]), [])
    assert main(["-q", "train", "stackgan", "--data", "shapes", "--steps", "2", "--out", str(run), *sets]) == 0
    assert (run / "samples" / "latest.png").is_file()
    cap = "a small red circle on a black background"
    assert main(["txt2img", str(run), cap, "--n-per-caption", "3", "--stages", "--out", str(tmp_path / "a.npz")]) == 0
    with np.load(tmp_path / "a.npz") as f:
        assert f["arr_0"].shape == (3, 64, 64, 3) and f["stage1"].shape == (3, 16, 16, 3)
        stages = f["arr_0"]
    assert main(["txt2img", str(run), cap, "--n-per-caption", "3", "--out", str(tmp_path / "b.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "b.npz")["arr_0"], stages)  # same seed, same images
    assert main(["txt2img", str(run), cap, "--n-per-caption", "2", "--stages", "--out", str(tmp_path / "p.png")]) == 0
    assert Image.open(tmp_path / "p.png").size == (4 * 64 + 5 * 2, 64 + 2 * 2)  # Stage-I beside Stage-II
    assert main(["txt2img", str(run), "--interpolate", "a red circle", "a blue square", "--steps", "3",
                 "--n-per-caption", "1", "--out", str(tmp_path / "i.npz")]) == 0
    assert np.load(tmp_path / "i.npz")["arr_0"].shape == (6, 64, 64, 3)
    # gankit eval: caption accuracy and fid_attr of Stage-II and of Stage-I upsampled (plumbing only:
    # an untrained classifier stands in for shapes-attr)
    torch.manual_seed(0)
    monkeypatch.setattr(attributes, "load_classifier", lambda cache=None: (
        attributes.AttributeNet().eval(), {"held_out_accuracy": {"colour": 0.0}}))
    capsys.readouterr()
    assert main(["-q", "eval", str(run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("colour_acc", "shape_acc", "fid_attr", "stage1_bicubic_colour_acc", "stage1_bicubic_fid_attr"):
        assert key in res and np.isfinite(res[key]), key
    (tmp_path / "x").mkdir()
    cases = [
        (["txt2img", str(stackgan_stage1), cap, "--stages", "--out", str(tmp_path / "x" / "s.png")], "Stage-I run"),
        (["txt2img", str(run), "--interpolate", "a", "b", "--stages", "--out", str(tmp_path / "x" / "s.png")],
         "--stages applies"),
        (["train", "stackgan", "--steps", "2", "--set", "stage=3"], "expected one of 1, 2, both"),
        (["train", "stackgan", "--steps", "2", "--set", "stage=2"], "needs stage1_run"),
        (["train", "stackgan", "--steps", "2", "--set", "size=32"], "power of two >= 64"),
        (["train", "stackgan", "--steps", "1"], "cannot be split"),
        (["train", "stackgan", "--steps", "2", "--data", "digits"], "needs captioned data"),
        (["train", "stackgan", "--steps", "2", "--set", "stage=2", "--set", f"stage1_run={tmp_path / 'nope'}"],
         "no such run"),
        (["train", "stackgan", "--steps", "2", *sets, "--set", "z_dim=5"], "trained with z_dim=4"),
        (["train", "stackgan", "--steps", "4", "--out", str(run), *sets], "already holds a run"),
    ]
    for argv, fragment in cases:
        code = main(["-q", *argv[:2], *(["--out", str(tmp_path / "x" / "run")] if "--out" not in argv and
                                        argv[0] == "train" else []), *argv[2:]])
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert err.startswith("gankit: error:") and "\n" not in err and fragment in err, (argv, err)
    assert list((tmp_path / "x").iterdir()) == []  # no run directory, no partial Stage-I
