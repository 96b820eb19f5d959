"""Every registered recipe passes the same contract on tiny data (build, step, sample, state,
exact resume, export). A new recipe must add its tiny settings to TINY."""

import copy

import pytest
import torch

from gankit import export
from gankit.config import to_dict
from gankit.engine import checkpoint
from gankit.engine.loop import Engine
from gankit.recipes import REGISTRY
from gankit.recipes.base import DataSpec
from gankit.train import load_data, resolve

from conftest import STACKGAN_TINY

TINY = {
    "gan": ("ring8", ["hidden=16", "depth=1", "batch=8", "ema=true"]),
    "gan-image": ("digits", ["hidden=16", "depth=1", "batch=8", "loss=minimax"]),
    "dcgan": ("digits", ["width=4", "width_d=2", "batch=8", "ema=true", "r1_gamma=1"]),
    "dcgan-wgan": ("digits", ["width=4", "width_d=none", "batch=8", "loss=wgan_gp", "k=2", "spectral_norm=true"]),
    "dcgan-aug": ("digits", ["width=4", "width_d=4", "batch=8", "augment=translation,cutout", "ema=false", "lr=2e-4",
                             "info_cat=0"]),  # the plain game (no InfoGAN code)
    # InfoGAN's categorical code and Q head, with k = 2 D steps (the code of each D step's own latents)
    "dcgan-info": ("digits", ["width=4", "width_d=2", "batch=8", "info_cat=3", "k=2", "z_dim=8"]),
    # 16 px, tiny nets; pool of 3 (full after 2 steps of batch 2, so resume crosses a full pool);
    # an explicit lr schedule that decays within the 6 steps of the resume test
    "cyclegan": ("mnist2mnistm", ["ngf=2", "ndf=2", "n_blocks=1", "size=16", "batch=2", "pool_size=3",
                                  "schedule_steps=6", "decay_start=2"]),
    "text-encoder": ("shapes", ["size=16", "text_width=8", "text_hidden=8", "emb_dim=8", "image_width=4",
                                "max_chars=32", "batch=8"]),
    "text2image": ("shapes", ["size=16", "width=4", "width_d=2", "t_dim=4", "z_dim=4", "batch=8", "ms_pairs=3",
                              "encoder_steps=2",
                              "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32"]),
    "text2image-gan": ("shapes", ["size=16", "width=4", "t_dim=4", "z_dim=4", "batch=8", "encoder_steps=2",
                                  "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32",
                                  "variant=gan", "ema=false", "ms_space=pixels"]),
    # StackGAN's conditioning augmentation in G, under the default cond=image: the latent is [z, ε, u]
    "text2image-ca": ("shapes", ["size=16", "width=4", "t_dim=4", "z_dim=4", "batch=8", "ms_pairs=3", "encoder_steps=2",
                                 "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32",
                                 "ca=true", "kl_weight=2"]),
    # the conditional IMLE term: candidates searched without gradients, the nearest in G's pass
    "text2image-imle": ("shapes", ["size=16", "width=4", "t_dim=4", "z_dim=4", "batch=8", "ms_pairs=3",
                                   "encoder_steps=2",
                                   "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32",
                                   "lambda_imle=2", "imle_n=3", "imle_m=2"]),
    # G reads the caption's φ(t), as in the paper (the default reads θ(x) of a retrieved image)
    "text2image-text": ("shapes", ["size=16", "width=4", "width_d=2", "t_dim=4", "z_dim=4", "batch=8", "ms_pairs=3",
                                   "encoder_steps=2",
                                   "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32",
                                   "cond=text"]),
    # the paper's G with both G-side options: CA's latent is [z, ε] (no u); IMLE under the caption
    "text2image-text-ca-imle": ("shapes", ["size=16", "width=4", "t_dim=4", "z_dim=4", "batch=8", "ms_pairs=3",
                                           "encoder_steps=2",
                                           "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,"
                                           "max_chars=32",
                                           "cond=text", "ca=true", "lambda_imle=2", "imle_n=3", "imle_m=2"]),
    # the paper's D (BatchNorm, random wrong captions), plus the off-paper R1 and two time-scale options
    "text2image-paperd": ("shapes", ["size=16", "width=4", "t_dim=4", "z_dim=4", "batch=8", "encoder_steps=2",
                                     "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32",
                                     "spectral_norm=false", "projection=false", "wrong=random", "r1_gamma=1",
                                     "lambda_con=0", "lambda_con_g=0",
                                     "lr_d=2e-4", "channels_last=false"]),
    # 64 px Stage-II over a 16 px Stage-I; stage 2 reads the session's tiny Stage-I run ({stage1})
    "stackgan-1": ("shapes", [*STACKGAN_TINY, "stage=1"]),
    "stackgan-2": ("shapes", [*STACKGAN_TINY, "stage=2", "stage1_run={stage1}"]),
}


def recipe_of(case):
    """'dcgan-wgan' -> 'dcgan'; 'text-encoder' is itself a recipe name."""
    return next(r for r in sorted(REGISTRY, key=len, reverse=True) if case == r or case.startswith(r + "-"))


def test_every_recipe_has_a_tiny_setting():
    assert set(REGISTRY) <= {recipe_of(k) for k in TINY}


def make(case, steps=4, seed=0):
    data, sets = TINY[case]
    sets = [s.format(stage1=_PREREQ.get("stage1")) for s in sets]
    cls, hp, tcfg = resolve(recipe_of(case), data=data, overrides=sets, steps=steps, seed=seed)
    if case not in _DATA:  # loaded once per case: every test below builds several engines
        _DATA[case] = load_data(tcfg.data, cls, hp, tcfg)
    ds = copy.copy(_DATA[case])
    spec = DataSpec.from_dataset(ds)
    doc = {"recipe": cls.name, "hparams": to_dict(hp), "data_info": spec.to_dict()}
    eng = Engine(cls(hp, spec), ds, tcfg, doc)
    eng.test_data = ds
    return eng, spec


_DATA = {}
_PREREQ = {}  # runs some cases need trained first (filled by the case fixture)


def weights(eng):
    sd = eng.state_dict()
    return {f"{g}.{n}.{k}": v for g in ("modules", "ema") for n, m in sd[g].items() for k, v in m.items()}


@pytest.fixture(params=sorted(TINY))
def case(request):
    if "{stage1}" in " ".join(TINY[request.param][1]):
        _PREREQ["stage1"] = request.getfixturevalue("stackgan_stage1")
    return request.param


def test_step_changes_only_trainable_params_and_logs_finite(case):
    eng, _ = make(case)
    trainable = {id(p) for params in eng._opt_params.values() for p in params}
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in eng.recipe.modules.items()}
    logs = eng.recipe.train_step(eng, eng.sampler.next())
    assert logs and all(torch.isfinite(v).all() and v.dim() == 0 for v in logs.values())
    for opt_name, params in eng._opt_params.items():
        assert params, f"optimizer {opt_name} has no parameters"
    for n, m in eng.recipe.modules.items():
        for p, old in zip(m.parameters(), before[n]):
            if id(p) not in trainable:
                assert torch.equal(p, old), f"frozen parameter of {n} changed"
        changed = [not torch.equal(p, old) for p, old in zip(m.parameters(), before[n])]
        if any(id(p) in trainable for p in m.parameters()):
            assert any(changed), f"module {n} was not updated by its optimizer"


def test_sample_shape_and_determinism(case):
    eng, spec = make(case)
    inputs = eng.recipe.data_inputs(5, torch.Generator().manual_seed(3), eng.test_data)
    a, b = eng.generate(inputs), eng.generate(inputs)
    shape = getattr(eng.recipe, "sample_shape", None) or spec.shape  # a text encoder yields embeddings
    assert tuple(a.shape) == (5, *shape) and torch.equal(a, b)
    if spec.kind == "image":
        assert a.min() >= -1 and a.max() <= 1


def test_state_roundtrip_and_exact_resume(case, tmp_path):
    straight, _ = make(case, steps=6)
    straight.fit(None)

    first, _ = make(case, steps=3)
    first.fit(None)
    checkpoint.save(tmp_path, first.step, first.state_dict(), keep=2)
    state = checkpoint.load(checkpoint.checkpoint_path(tmp_path, 3))  # weights_only=True
    second, _ = make(case, steps=6)
    second.load_state_dict(state)
    restored = weights(second)
    for k, v in weights(first).items():
        assert torch.equal(v, restored[k]), k
    second.fit(None)

    a, b = weights(straight), weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    sa, sb = straight.state_dict()["optimizers"], second.state_dict()["optimizers"]
    for n in sa:
        for pid, st in sa[n]["state"].items():
            for key, val in st.items():
                assert torch.equal(torch.as_tensor(val), torch.as_tensor(sb[n]["state"][pid][key])), (n, pid, key)


def test_export_roundtrip(case, tmp_path):
    eng, spec = make(case, steps=2)
    eng.fit(None)
    mods = eng.inference_modules()
    export.write(tmp_path, recipe=eng.recipe.name, hparams=eng.doc["hparams"], spec=spec.to_dict(),
                 modules={n: mods[n] for n in eng.recipe.export_modules()},
                 meta={"step": eng.step, "channels_last": eng.tcfg.channels_last})
    model = export.load(tmp_path)
    inputs = eng.recipe.data_inputs(4, torch.Generator().manual_seed(0), eng.test_data)
    assert torch.equal(model.recipe.generate(model.recipe.modules, inputs), eng.generate(inputs))
    assert torch.equal(model.sample(4, seed=0, data=eng.test_data), eng.generate(inputs))
