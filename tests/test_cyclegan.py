"""CycleGAN beyond the shared contract: the unpaired data it reads, its networks' documented
shapes and receptive fields, the history pool, the lr schedule, its metrics, and the command line
(train on a generated unpaired folder, translate, eval) with its one-line errors."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.metrics.translation as tr
from gankit.cli import main
from gankit.data import load_dataset
from gankit.data.dataset import Dataset
from gankit.models.cyclegan import PatchDiscriminator, ResnetGenerator, default_d_layers, patch_size
from gankit.recipes.base import DataSpec
from gankit.recipes.cyclegan import CycleGANConfig, CycleGANRecipe, ImagePool

TINY = ["--size", "16", "--batch", "1", "--set", "ngf=2", "--set", "ndf=2", "--set", "n_blocks=1", "--set", "log_every=1"]


def write_unpaired(root, counts=(("trainA", 6), ("trainB", 5), ("testA", 3), ("testB", 2))):
    rng = np.random.default_rng(0)
    for sub, n in counts:
        (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / sub / f"{sub}_{i}.png")
    return root


def run_cli(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


# -- data -------------------------------------------------------------------------------------------


def test_mnist2mnistm_domains_are_disjoint_balanced_and_deterministic():
    ds = load_dataset("mnist2mnistm")
    assert ds.x.shape == (11000, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert ds.domains == {"A": (0, 2000), "B": (2000, 10000)} and ds.held_out == {"A": (10000, 10500), "B": (10500, 11000)}
    for d, train_per_class in (("A", 200), ("B", 800)):  # B: 200 digits x 4 photo patches per class
        for held in (False, True):
            counts = torch.bincount(ds.row_labels(d, held), minlength=10)
            assert counts.tolist() == [50 if held else train_per_class] * 10
    a, b = ds.rows("A"), ds.rows("B")
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])  # plain digits, as RGB
    assert (b[:, 0] != b[:, 1]).float().mean() > 0.5  # colour photo patches
    # disjoint halves: the MNIST digit under each B image is not any A digit (A is the digit itself)
    mnist = load_dataset("mnist").x[:, 0]  # (5000, 28, 28)
    a_digits = {bytes(x) for x in torch.cat([ds.rows("A"), ds.rows("A", True)])[:, 0, 2:30, 2:30].numpy()}
    assert len(a_digits) == 2500 and sum(bytes(x) in a_digits for x in mnist.numpy()) == 2500
    assert load_dataset("mnist2mnistm").fingerprint == ds.fingerprint


def test_unpaired_folder_layout_and_errors(tmp_path):
    root = write_unpaired(tmp_path / "u")
    ds = load_dataset(str(root), size=16)
    assert ds.domains == {"A": (0, 6), "B": (6, 11)} and ds.held_out == {"A": (11, 14), "B": (14, 16)}
    assert DataSpec.from_dataset(ds).domains == ("A", "B")

    from gankit.errors import DataError

    (root / "testB" / "testB_0.png").unlink()
    (root / "testB" / "testB_1.png").unlink()
    with pytest.raises(DataError, match=f"no image files in {root / 'testB'}"):
        load_dataset(str(root), size=16)
    (root / "testB").rmdir()
    assert load_dataset(str(root), size=16).held_out == {"A": (11, 14)}  # testB is optional


# -- networks, pool, schedule ------------------------------------------------------------------------


@pytest.mark.parametrize("size,layers,out", [(16, 1, 6), (32, 2, 6), (64, 3, 6), (128, 3, 14), (256, 3, 30)])
def test_patchgan_depth_and_score_map_follow_the_image(size, layers, out):
    assert default_d_layers(size) == layers and (patch_size(layers) >= size or layers == 3)
    D = PatchDiscriminator(1, ndf=2, layers=layers)
    assert sum(isinstance(x, torch.nn.InstanceNorm2d) for x in D.modules()) == layers
    assert D(torch.randn(1, 1, size, size)).shape == (1, 1, out, out)


@pytest.mark.parametrize("layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(layers, rf, monkeypatch):
    import gankit.models.cyclegan as m

    assert patch_size(layers) == rf
    # instance norm couples every pixel through its statistics: measure the field without it
    monkeypatch.setattr(m, "_norm", lambda ch: torch.nn.Identity())
    D = PatchDiscriminator(1, ndf=2, layers=layers)
    x = torch.randn(1, 1, 160, 160, requires_grad=True)
    y = D(x)
    c = y.shape[-1] // 2
    y[0, 0, c, c].backward()  # the input pixels one central score depends on
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    assert rows.max() - rows.min() + 1 == rf


def test_generator_keeps_shape_and_range():
    G = ResnetGenerator(3, ngf=4, n_blocks=2)
    y = G(torch.randn(2, 3, 20, 20))
    assert y.shape == (2, 3, 20, 20) and y.abs().max() <= 1


class Ctx:
    def rand(self, *shape):
        return torch.rand(*shape)


def test_image_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 1, 1), torch.device("cpu"))
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first, Ctx()), first) and pool.count == 4
    new = -1.0 - torch.arange(400.0).view(400, 1, 1, 1)
    out = pool.query(new, Ctx())
    from_history = (out != new).flatten()
    assert 0.4 < from_history.float().mean() < 0.6  # about half come from the history...
    stored = set(first.flatten().tolist()) | set(new.flatten().tolist())
    assert set(out.flatten().tolist()) <= stored and len(set(out.flatten().tolist())) == 400  # ...each fake once
    assert torch.equal(pool.state(), pool.buf) and ImagePool(0, (1,), torch.device("cpu")).query(new, Ctx()) is new


def test_lr_is_constant_then_decays_linearly_to_zero():
    spec = DataSpec("image", (3, 16, 16), domains=("A", "B"))
    r = CycleGANRecipe(CycleGANConfig(lr=1.0), spec)
    assert [r.lr_at(s, 10) for s in (0, 4, 5, 6, 10, 12)] == [1.0, 1.0, 1.0, 0.8, 0.0, 0.0]
    assert r.lr_at(10**6, None) == 1.0  # --minutes without schedule_steps: constant
    r = CycleGANRecipe(CycleGANConfig(lr=1.0, schedule_steps=100, decay_start=80), spec)
    assert r.lr_at(79, 5) == 1.0 and r.lr_at(90, 5) == 0.5


def test_recipes_refuse_the_wrong_number_of_domains():
    from gankit.errors import UsageError
    from gankit.recipes.dcgan import DCGANConfig, DCGANRecipe

    with pytest.raises(UsageError, match="needs unpaired data with domains A and B"):
        CycleGANRecipe(CycleGANConfig(), DataSpec("image", (3, 16, 16)))
    with pytest.raises(UsageError, match="point --data at one domain"):
        DCGANRecipe(DCGANConfig(), DataSpec("image", (3, 16, 16), domains=("A", "B")))


# -- metrics ---------------------------------------------------------------------------------------------


def labelled_two_domain(n=800):
    """Class c = a bright square at one of 4 places; B = the same with colours inverted."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    x = torch.zeros(n, 3, 16, 16, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, q = divmod(c, 2)
        x[i, :, 2 + 8 * r : 6 + 8 * r, 2 + 8 * q : 6 + 8 * q] = 200 + torch.randint(0, 50, (1,), generator=g).item()
    x[n // 2 :] = 255 - x[n // 2 :]
    h = n // 4
    return Dataset("toy2", "image", x, y, {"domain_names": {"A": "toya", "B": "toyb"}},
                   domains={"A": (0, h), "B": (2 * h, 3 * h)}, held_out={"A": (h, 2 * h), "B": (3 * h, 4 * h)})


def test_translation_scores_of_the_identity_and_of_a_perfect_translator(tmp_path, monkeypatch):
    monkeypatch.setattr(tr, "EPOCHS", 30)
    ds = labelled_two_domain()
    same = tr.evaluate_translation(lambda x, d: x, ds, cache=tmp_path)
    assert same["cycle_ABA"] == 0 and same["cycle_BAB"] == 0
    p = same["protocol"]
    assert same["content_toyb"] == p["untranslated_content_toyb"] and same["fid_toyb"] == p["untranslated_fid_toyb"]
    assert p["features_held_out_accuracy"] == 1.0
    invert = tr.evaluate_translation(lambda x, d: -x, ds, cache=tmp_path)  # A <-> B exactly
    assert invert["content_toyb"] == 1.0 and invert["cycle_ABA"] == 0
    assert invert["fid_toyb"] < same["fid_toyb"]
    assert len(list((tmp_path / "domain-classifiers").glob("*.safetensors"))) == 1  # trained once, cached


# -- command line ----------------------------------------------------------------------------------------


def test_cli_train_translate_eval_resume_on_an_unpaired_folder(tmp_path, capsys):
    root = write_unpaired(tmp_path / "u")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "cyclegan", "--data", root, "--steps", 3, "--out", run, *TINY,
                           "--set", "sample_every=2", "--eval-every", 2)
    assert code == 0, err
    for f in ("samples/latest.png", "export/G_AB.safetensors", "export/G_BA.safetensors", "checkpoints/step_000000003.pt"):
        assert (run / f).exists(), f
    assert not (run / "export" / "D_A.safetensors").exists()
    grid = Image.open(run / "samples" / "latest.png")
    assert grid.size == (4 * (8 * 18 + 2), 4 * (6 * 18 + 2))  # 8 per row (the held-out ones repeated), 6 rows, 4x
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("cycle_ABA" in r and "cycle_BAB" in r for r in recs)  # no labels: no content score

    code, out, err = run_cli(capsys, "translate", run, root / "testA", root / "trainB" / "trainB_0.png", "--out", tmp_path / "t")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "t")) == ["testA_0.png", "testA_1.png", "testA_2.png", "trainB_0.png"]
    assert Image.open(tmp_path / "t" / "testA_0.png").size == (16, 16)
    code, _, err = run_cli(capsys, "translate", run, root / "testB", "--direction", "BtoA", "--out", tmp_path / "t.npz")
    assert code == 0, err
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        assert z["arr_0"].dtype == np.uint8 and z["arr_0"].shape == (2, 16, 16, 3)
        assert z["names"].tolist() == ["testB_0.png", "testB_1.png"]

    code, out, err = run_cli(capsys, "eval", run, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert {"cycle_ABA", "cycle_BAB"} <= set(res) and res["protocol"]["n_A"] == 3
    code, _, err = run_cli(capsys, "train", "cyclegan", "--out", run, "--resume", "--steps", 4)
    assert code == 0, err
    assert (run / "checkpoints" / "step_000000004.pt").exists()


def test_cli_best_export_and_content_score_on_mnist2mnistm(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tr, "EPOCHS", 1)  # the classifier's quality does not matter here
    monkeypatch.setattr(tr, "VERSION", "domain-lenet-test")  # nor may it be cached as the real one
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "cyclegan", "--data", "mnist2mnistm", "--steps", 2, "--out", run, *TINY,
                           "--eval-every", 2, "--set", "eval_n=20")
    assert code == 0, err
    rec = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "fid_mnistm" in line][-1]
    assert 0 <= rec["content_mnistm"] <= 1 and rec["fid_mnistm"] > 0
    best = json.loads((run / "best" / "config.json").read_text())
    assert best["step"] == 2 and best["fid_mnistm"] == rec["fid_mnistm"]


def test_cli_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    no_b = write_unpaired(tmp_path / "no_b", counts=(("trainA", 2), ("testA", 1)))
    empty_b = write_unpaired(tmp_path / "empty_b", counts=(("trainA", 2), ("trainB", 0)))
    both = write_unpaired(tmp_path / "both", counts=(("trainA", 2), ("trainB", 2)))
    cases = [
        (["train", "cyclegan", "--data", no_b, "--steps", 1], "has no trainB/ folder"),
        (["train", "cyclegan", "--data", empty_b, "--steps", 1], f"no image files in {empty_b / 'trainB'}"),
        (["train", "cyclegan", "--data", "digits", "--steps", 1], "needs unpaired data with domains A and B"),
        (["train", "dcgan", "--data", both, "--steps", 1], "point --data at one domain"),
        (["train", "cyclegan", "--data", both, "--steps", 1, "--batch", 3], "larger than domain A"),
        (["train", "cyclegan", "--steps", 1, "--size", 30], "multiple of 4"),
        (["train", "cyclegan", "--steps", 1, "--set", "lambda_cyc=5"], "did you mean 'lambda_cycle'"),
        (["train", "cyclegan", "--steps", 1, "--set", "decay_start=9", "--set", "schedule_steps=5"], "below schedule_steps"),
    ]
    for argv, fragment in cases:
        before = set(os.listdir(tmp_path))
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err.startswith("gankit: error:") and "\n" not in err, (argv, err)
        assert fragment in err, (argv, err)
        assert set(os.listdir(tmp_path)) == before, f"{argv} left files behind"

    run = tmp_path / "run"
    assert run_cli(capsys, "train", "cyclegan", "--data", both, "--steps", 1, "--out", run, *TINY)[0] == 0
    img = both / "trainA" / "trainA_0.png"
    for argv, fragment in [
        (["translate", run, img, "--direction", "XtoY", "--out", tmp_path / "o"], "--direction must be AtoB or BtoA"),
        (["translate", run, tmp_path / "missing.png", "--out", tmp_path / "o"], "no such image file or folder"),
        (["translate", run, tmp_path / "empty_b" / "trainB", "--out", tmp_path / "o"], "no image files in"),
        (["translate", run, img, both / "trainA", "--out", tmp_path / "o"], "two inputs would be written as trainA_0.png"),
        (["translate", run, img, "--out", tmp_path / "nodir" / "o.npz"], "output folder does not exist"),
        (["translate", tmp_path / "nothing", img, "--out", tmp_path / "o"], "no such run"),
        (["sample", run, "--out", tmp_path / "s.png"], "use `gankit translate"),
    ]:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err.startswith("gankit: error:") and "\n" not in err, (argv, err)
        assert fragment in err, (argv, err)
        assert not (tmp_path / "o").exists()
