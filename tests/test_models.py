"""Model building blocks whose fast paths must equal the layers they stand for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator, ProjectZ, latent_category


@pytest.mark.parametrize("channels_last", [False, True])
def test_project_z_is_the_transposed_convolution(channels_last):
    torch.manual_seed(0)
    fast = ProjectZ(5, 3, 4, 1, 0, bias=False)
    ref = nn.ConvTranspose2d(5, 3, 4, 1, 0, bias=False)
    ref.load_state_dict(fast.state_dict())  # same parameter name and shape (old checkpoints load)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    z = torch.randn(7, 5, 1, 1)
    z_fast, z_ref = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    y_fast, y_ref = fast(z_fast), ref(z_ref)
    assert y_fast.shape == y_ref.shape == (7, 3, 4, 4)
    torch.testing.assert_close(y_fast, y_ref)
    g = torch.randn_like(y_ref)  # a non-uniform upstream gradient: checks the (C, kh, kw) order
    y_fast.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(z_fast.grad, z_ref.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)


def test_generator_keeps_its_parameter_names():
    keys = set(DCGANGenerator(8, 1, 16, 4).state_dict())
    assert "net.0.weight" in keys and keys == set(_plain_generator(8, 1, 16, 4).state_dict())


def _plain_generator(z_dim, channels, size, width):
    G = DCGANGenerator(z_dim, channels, size, width)
    old = G.net[0]
    G.net[0] = nn.ConvTranspose2d(old.in_channels, old.out_channels, 4, 1, 0, bias=False)
    return G


def test_discriminator_width_sets_first_layer_and_doubles():
    D = DCGANDiscriminator(1, 32, 16)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 1]


def test_export_saved_before_width_d_and_lr_d_loads_as_trained(tmp_path):
    """An export from before ``width_d``/``lr_d``/``info_cat`` existed has D as wide as G and no
    InfoGAN code; it must still load."""
    from gankit import export
    from gankit.config import from_dict, to_dict
    from gankit.recipes.base import DataSpec
    from gankit.recipes.dcgan import DCGANConfig, DCGANRecipe

    spec = DataSpec("image", (1, 16, 16), None, {})
    old = DCGANRecipe(DCGANConfig(size=16, width=8, width_d=None, lr_d=None, info_cat=0), spec)
    old.build(torch.device("cpu"))
    new_keys = ("width_d", "lr_d", "info_cat", "lambda_info")
    hparams = {k: v for k, v in to_dict(old.cfg).items() if k not in new_keys}  # as saved then
    export.write(tmp_path, recipe="dcgan", hparams=hparams, spec=spec.to_dict(), modules=old.modules, meta={})
    model = export.load(tmp_path)
    assert (model.recipe.cfg.width_d, model.recipe.cfg.lr_d, model.recipe.cfg.info_cat) == (None, None, 0)
    for name, module in old.modules.items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(model.recipe.modules[name].state_dict()[key], value)
    # a config that names the keys keeps them; one that lacks them does not take today's defaults
    assert from_dict(DCGANConfig, {"width_d": 16, "lr_d": 0.01}).width_d == 16
    assert DCGANConfig().width_d == 16 and from_dict(DCGANConfig, {}).width_d is None
    assert DCGANConfig().info_cat == 10 and from_dict(DCGANConfig, {}).info_cat == 0


def test_infogan_code_is_argmax_and_enters_g_as_one_hot():
    torch.manual_seed(0)
    z = torch.randn(500, 12)
    code = latent_category(z, 4)
    assert torch.equal(code, z[:, :4].argmax(1))
    assert torch.bincount(code, minlength=4).min() > 90  # argmax of iid N(0, 1): uniform over 4
    G = DCGANGenerator(12, 1, 16, 4, cat=4).eval()
    plain = DCGANGenerator(16, 1, 16, 4).eval()  # the same net, fed [z, one_hot] by hand
    plain.load_state_dict(G.state_dict())
    x = torch.cat([z[:6], torch.nn.functional.one_hot(code[:6], 4).float()], 1)
    assert torch.allclose(G(z[:6]), plain(x), atol=1e-6)
    with pytest.raises(ValueError):
        DCGANGenerator(3, 1, 16, 4, cat=4)  # the code is read from z: k <= z_dim


def test_discriminator_q_head_shares_the_logit():
    torch.manual_seed(0)
    D = DCGANDiscriminator(1, 16, 4, q_dim=3).eval()
    out = D(torch.randn(5, 1, 16, 16))
    assert out.shape == (5, 4)  # logit, then Q's three logits
    D0 = DCGANDiscriminator(1, 16, 4).eval()
    sd = {k: (v[:1] if k == "net.5.weight" else v) for k, v in D.state_dict().items()}  # last conv: logit channel
    D0.load_state_dict(sd)
    x = torch.randn(5, 1, 16, 16)
    assert D0(x).shape == (5,)
    assert torch.allclose(D0(x), D(x)[:, 0], atol=1e-6)


@pytest.mark.parametrize("lambda_info, learns", [(1.0, True), (0.0, False)])
def test_infogan_term_makes_the_code_readable(tmp_path, lambda_info, learns):
    """-log Q(c | G(z)) starts near log 10 (Q guesses); the information term, and only it, makes
    G's code readable within 120 steps of tiny nets on the 8x8 digits."""
    import json
    import math

    from gankit.train import train

    train("dcgan", out=tmp_path / "run", data="digits", steps=120, seed=0,
          overrides=["width=8", "width_d=8", "batch=32", "progress=false", "log_every=20", f"lambda_info={lambda_info}"])
    info = [json.loads(line)["info"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            if '"info"' in line]
    assert len(info) == 6
    if learns:
        assert info[-1] < 0.25 * math.log(10)
    else:
        assert info[-1] > 0.6 * math.log(10)
