"""``--features inception``: the FID InceptionV3's layout against the weights file's, locating and
loading the file (never unpickling code), and ``gankit eval --features inception`` end to end.

The real ``pt_inception-2015-12-05-6726825d.pth`` is not available offline, so every test uses
random weights saved in its format; the reference layout below is written out by hand.
"""

import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.errors import UntrustedFileError, UsageError
from gankit.metrics import inception
from gankit.metrics.inception import ENV_VAR, WEIGHTS_NAME, FIDInceptionV3, extract, find_weights, load_inception

# Every BasicConv2d of the FID InceptionV3: (key prefix, in channels, out channels, kh, kw).
# Channels and kernels follow the TF 2015-12-05 graph (Szegedy et al. 2015, Fig. 5-7 / Table 1).
STEM = [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
        ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3)]


def block_a(name, cin, pool):
    return [(f"{name}.branch1x1", cin, 64, 1, 1), (f"{name}.branch5x5_1", cin, 48, 1, 1),
            (f"{name}.branch5x5_2", 48, 64, 5, 5), (f"{name}.branch3x3dbl_1", cin, 64, 1, 1),
            (f"{name}.branch3x3dbl_2", 64, 96, 3, 3), (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
            (f"{name}.branch_pool", cin, pool, 1, 1)]


def block_c(name, c7):
    return [(f"{name}.branch1x1", 768, 192, 1, 1), (f"{name}.branch7x7_1", 768, c7, 1, 1),
            (f"{name}.branch7x7_2", c7, c7, 1, 7), (f"{name}.branch7x7_3", c7, 192, 7, 1),
            (f"{name}.branch7x7dbl_1", 768, c7, 1, 1), (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
            (f"{name}.branch7x7dbl_3", c7, c7, 1, 7), (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
            (f"{name}.branch7x7dbl_5", c7, 192, 1, 7), (f"{name}.branch_pool", 768, 192, 1, 1)]


def block_e(name, cin):
    return [(f"{name}.branch1x1", cin, 320, 1, 1), (f"{name}.branch3x3_1", cin, 384, 1, 1),
            (f"{name}.branch3x3_2a", 384, 384, 1, 3), (f"{name}.branch3x3_2b", 384, 384, 3, 1),
            (f"{name}.branch3x3dbl_1", cin, 448, 1, 1), (f"{name}.branch3x3dbl_2", 448, 384, 3, 3),
            (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3), (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
            (f"{name}.branch_pool", cin, 192, 1, 1)]


CONVS = [
    *STEM,
    *block_a("Mixed_5b", 192, 32), *block_a("Mixed_5c", 256, 64), *block_a("Mixed_5d", 288, 64),
    ("Mixed_6a.branch3x3", 288, 384, 3, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
    ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3),
    *block_c("Mixed_6b", 128), *block_c("Mixed_6c", 160), *block_c("Mixed_6d", 160), *block_c("Mixed_6e", 192),
    ("Mixed_7a.branch3x3_1", 768, 192, 1, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
    ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
    ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3),
    *block_e("Mixed_7b", 1280), *block_e("Mixed_7c", 2048),
]


def reference_shapes():
    shapes = {}
    for name, cin, cout, kh, kw in CONVS:
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{buf}"] = (cout,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"], shapes["fc.bias"] = (1008, 2048), (1008,)
    return shapes


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Random weights in the file's format, He-scaled so activations stay O(1) through 94 layers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FIDInceptionV3()
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_NAME
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    """No env var, and a torch hub cache that is empty."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints" / WEIGHTS_NAME


def test_layout_matches_the_weights_file():
    ref = reference_shapes()
    assert len(CONVS) == 94 and len(ref) == 94 * 6 + 2
    sd = FIDInceptionV3().state_dict()
    assert set(sd) == set(ref)
    assert {k: tuple(v.shape) for k, v in sd.items()} == ref
    for key in ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.weight", "Conv2d_1a_3x3.bn.bias",
                "Conv2d_1a_3x3.bn.running_mean", "Conv2d_1a_3x3.bn.running_var",
                "Mixed_5b.branch5x5_1.conv.weight", "Mixed_5c.branch_pool.bn.running_var",
                "Mixed_5d.branch3x3dbl_3.conv.weight", "Mixed_6a.branch3x3.conv.weight",
                "Mixed_6b.branch7x7dbl_5.conv.weight", "Mixed_6c.branch7x7_2.bn.bias",
                "Mixed_6d.branch1x1.conv.weight", "Mixed_6e.branch7x7_3.conv.weight",
                "Mixed_7a.branch7x7x3_4.conv.weight", "Mixed_7b.branch3x3_2a.conv.weight",
                "Mixed_7c.branch3x3dbl_3b.bn.running_mean", "fc.weight", "fc.bias"):
        assert key in sd, key
    assert tuple(sd["fc.weight"].shape) == (1008, 2048)
    # Parameters: torchvision documents inception_v3 at 27,161,264; minus its AuxLogits head
    # (768*128 + 2*128 + 128*768*25 + 2*768 + 768*1000 + 1000 = 3,326,696) plus 8 more classes
    # (8 * 2049) gives 23,850,960. Buffers add 2 per BatchNorm channel and the 94 counters
    # (which the usual file carries: pytorch-fid issue #34 lists them as its keys).
    params = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "tracked")))
    assert params == 27_161_264 - 3_326_696 + 8 * 2049 == 23_850_960
    assert sum(v.numel() for v in sd.values()) == sum(math.prod(s) for s in ref.values()) == 23_885_486


def test_located_by_flag_env_and_hub_cache_then_forward(weights_file, no_weights_env, monkeypatch, tmp_path):
    hub = no_weights_env
    hub.parent.mkdir(parents=True)
    hub.symlink_to(weights_file)
    assert find_weights() == hub  # hub cache under $TORCH_HOME
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inception.hub_checkpoint() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints" / WEIGHTS_NAME
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    other = tmp_path / "env.pth"
    other.symlink_to(weights_file)
    monkeypatch.setenv(ENV_VAR, str(other))
    assert find_weights() == other  # env var beats the hub cache
    assert find_weights(weights_file) == weights_file  # the flag beats both

    sha = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    models = {}
    for source in ("flag", "env", "hub"):
        if source == "hub":
            monkeypatch.delenv(ENV_VAR)
        model, record = load_inception(weights_file if source == "flag" else None)
        assert record["weights_sha256"] == sha and record["weights"] == (other.name if source == "env" else WEIGHTS_NAME)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        models[source] = model
    ref = torch.load(weights_file, weights_only=True)
    for model in models.values():
        assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())

    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    feats, probs = extract(models["hub"], gray)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert probs.shape == (2, 1008) and torch.allclose(probs.sum(1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(feats[0], feats[1])  # the two images are told apart
    # gray is RGB with three equal channels; uint8 and the same image in [-1, 1] agree
    rgb = gray.float().div(127.5).sub(1).expand(-1, 3, -1, -1)
    feats_rgb, _ = extract(models["hub"], rgb)
    assert torch.allclose(feats, feats_rgb, rtol=1e-4, atol=1e-5)


def test_missing_weights_say_where_and_how(no_weights_env, tmp_path):
    with pytest.raises(UsageError) as err:
        find_weights()
    msg = str(err.value)
    assert "\n" not in msg and ENV_VAR in msg and "--inception-weights" in msg and str(no_weights_env) in msg
    assert "never downloads" in msg
    with pytest.raises(UsageError, match="--inception-weights .*nope.pth: no such file"):
        load_inception(tmp_path / "nope.pth")


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_is_refused(tmp_path, no_weights_env, monkeypatch):
    marker = tmp_path / "PWNED"
    bad = tmp_path / WEIGHTS_NAME
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "x": Payload(str(marker))}, bad)
    with pytest.raises(UntrustedFileError, match="refusing to load .*Unsupported global") as err:
        load_inception(bad)
    assert "\n" not in str(err.value) and not marker.exists()
    monkeypatch.setenv(ENV_VAR, str(bad))  # the same file found through the env var
    with pytest.raises(UntrustedFileError):
        load_inception()
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(str(tmp_path / "control"))))  # the payload is real
    assert (tmp_path / "control").exists()


def test_wrong_keys_or_shapes_are_one_line_errors(tmp_path, no_weights_env):
    model = FIDInceptionV3()
    good = model.state_dict()
    path = tmp_path / "w.pth"

    def check(state, pattern):
        with pytest.raises(UsageError, match=pattern) as err:
            inception.check_state(state, model, path)
        assert "\n" not in str(err.value)

    check({k: v for k, v in good.items() if k != "Mixed_6c.branch7x7_2.conv.weight"},
          "missing key 'Mixed_6c.branch7x7_2.conv.weight'")
    check({**good, "AuxLogits.fc.weight": torch.zeros(1000, 768)}, "unexpected key 'AuxLogits.fc.weight'")
    check({**good, "fc.weight": torch.zeros(1000, 2048)}, r"fc.weight has shape \(1000, 2048\), expected \(1008, 2048\)")
    # a file converted straight from the TF graph has no BatchNorm counters: accepted
    fixed = inception.check_state({k: v for k, v in good.items() if "tracked" not in k}, model, path)
    assert set(fixed) == set(good)
    # through the loader: a small file of the wrong network, a non-dict, and a damaged file
    torch.save({"conv1.weight": torch.zeros(32, 1, 5, 5)}, path)
    with pytest.raises(UsageError, match="missing key 'Conv2d_1a_3x3.conv.weight'"):
        load_inception(path)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(UsageError, match="not a state dict of tensors"):
        load_inception(path)
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, path)
    path.write_bytes(path.read_bytes()[:4000])  # truncated download
    with pytest.raises(UsageError, match="cannot read"):
        load_inception(path)


def test_eval_cli_with_inception_features(tmp_path, weights_file, no_weights_env, capsys, gankit_cache):
    rng = np.random.default_rng(0)
    real = tmp_path / "real"
    real.mkdir()
    for i in range(12):  # a tiny image folder as the real data: 12 forwards instead of thousands
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(real / f"{i}.png")
    fake = tmp_path / "fake.npz"
    np.savez(fake, arr_0=rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8))
    args = ["eval", str(fake), "--data", str(real), "--features", "inception", "--inception-weights", str(weights_file)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"fid_inception", "kid_inception", "kid_inception_std", "is_inception", "is_inception_std",
                        "precision_inception", "recall_inception", "protocol"}
    assert all(np.isfinite(v) for k, v in out.items() if k != "protocol")
    p = out["protocol"]
    assert p["features"] == inception.VERSION and p["features"].startswith("inception")
    assert p["features_weights"] == WEIGHTS_NAME and p["n_fake"] == 10 and p["n_real"] == 12
    assert hashlib.sha256(weights_file.read_bytes()).hexdigest().startswith(p["features_weights_sha256"])
    cached = [f.name for f in (gankit_cache / "stats").iterdir()]
    assert any(n.startswith(f"{inception.VERSION}-{p['features_weights_sha256']}-") for n in cached)
    assert not any(n.startswith("lenet") and p["data_fingerprint"] in n for n in cached)
    # classes is lenet-only; asked for explicitly it is refused before any work
    assert main([*args, "--metrics", "fid,classes"]) == 2
    err = capsys.readouterr().err
    assert "needs --features lenet" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", str(fake), "--data", str(real), "--features", "vgg"]) == 2
    assert "available: lenet, inception" in capsys.readouterr().err


def test_eval_cli_without_weights_exits_2_in_one_line(tmp_path, no_weights_env):
    fake = tmp_path / "fake.npz"
    np.savez(fake, arr_0=np.zeros((10, 8, 8, 1), dtype=np.uint8))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # no_weights_env already set TORCH_HOME, removed the env var
    r = subprocess.run([sys.executable, "-m", "gankit", "eval", str(fake), "--data", "digits", "--features", "inception"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ENV_VAR in r.stderr and "--inception-weights" in r.stderr and str(no_weights_env) in r.stderr
