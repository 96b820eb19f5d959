import pytest

from gankit.config import TrainConfig, apply_overrides, from_dict, load_yaml, to_dict
from gankit.errors import UsageError
from gankit.recipes.dcgan import DCGANConfig


def test_overrides_parse_types():
    t, h = TrainConfig(), DCGANConfig()
    apply_overrides([t, h], ["width=32", "lr=1e-4", "ema=true", "betas=0.0,0.9", "loss=hinge", "steps=1_000", "minutes=none"])
    assert (h.width, h.lr, h.ema, h.betas, h.loss, t.steps, t.minutes) == (32, 1e-4, True, (0.0, 0.9), "hinge", 1000, None)


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("widht=32", "did you mean 'width'"),
        ("width=abc", "bad value for width: 'abc'"),
        ("width=3.5", "bad value for width"),
        ("ema=maybe", "bad value for ema"),
        ("loss=hnge", "did you mean 'hinge'"),
        ("lr", "expected key=value"),
    ],
)
def test_overrides_refuse(item, fragment):
    with pytest.raises(UsageError, match=fragment):
        apply_overrides([TrainConfig(), DCGANConfig()], [item])


def test_validation():
    with pytest.raises(UsageError, match="steps must be a positive"):
        t = TrainConfig(steps=0)
        t.validate()
    with pytest.raises(UsageError, match="power of two"):
        DCGANConfig(size=48).validate()
    with pytest.raises(UsageError, match="wgan_gp"):
        DCGANConfig(loss="wgan_gp", d_norm="batch").validate()
    with pytest.raises(UsageError, match="label_smoothing must be in"):
        DCGANConfig(label_smoothing=1.0).validate()
    with pytest.raises(UsageError, match="not loss=hinge"):
        DCGANConfig(label_smoothing=0.1, loss="hinge").validate()
    DCGANConfig(label_smoothing=0.1).validate()


def test_dcgan_two_time_scales():
    import torch

    from gankit.recipes.base import DataSpec
    from gankit.recipes.dcgan import DCGANRecipe

    spec = DataSpec("image", (1, 16, 16), None, {})
    for lr_d, want_d in ((None, 1e-3), (4e-3, 4e-3)):
        recipe = DCGANRecipe(DCGANConfig(lr=1e-3, lr_d=lr_d, size=16, width=4), spec)
        recipe.build(torch.device("cpu"))
        assert recipe.optimizers["G"].param_groups[0]["lr"] == 1e-3
        assert recipe.optimizers["D"].param_groups[0]["lr"] == want_d
    from gankit.recipes.text2image import Text2ImageConfig

    for Config in (DCGANConfig, Text2ImageConfig):  # one check, in validate_common
        with pytest.raises(UsageError, match="lr_d must be > 0, or none to use lr, got 0.0"):
            Config(lr_d=0.0).validate()


@pytest.mark.parametrize("name", ["dcgan", "text2image"])
def test_discriminator_width(name):
    """width_d (ndf) sets D's first layer and leaves G's last hidden layer at width; a run saved
    before width_d existed (no key) gets D as wide as G, whatever today's default."""
    import torch
    from torch import nn

    from gankit.config import from_dict
    from gankit.recipes.base import DataSpec
    from gankit.recipes.dcgan import DCGANRecipe
    from gankit.recipes.text2image import Text2ImageConfig, Text2ImageRecipe

    if name == "dcgan":
        Recipe, Config, extra = DCGANRecipe, DCGANConfig, {}
        spec = DataSpec("image", (1, 16, 16), None, {})
    else:
        arch = {"max_chars": 32, "width": 4, "hidden": 4, "emb_dim": 4}
        Recipe, Config, extra = Text2ImageRecipe, Text2ImageConfig, {"t_dim": 4, "cond": "text"}
        spec = DataSpec("image", (3, 16, 16), None, {"text_encoder": {"arch": arch}})
    assert from_dict(Config, {}).width_d is None  # DCGAN's default is 16, text2image's none
    for width_d, want in ((None, 8), (4, 4)):
        recipe = Recipe(Config(size=16, width=8, width_d=width_d, **extra), spec)
        recipe.build(torch.device("cpu"))
        first_d = next(m for m in recipe.modules["D"].modules() if isinstance(m, nn.Conv2d))
        last_g = [m for m in recipe.modules["G"].modules() if isinstance(m, nn.ConvTranspose2d)][-1]
        assert (first_d.out_channels, last_g.in_channels) == (want, 8)  # width_d moves D only
    with pytest.raises(UsageError, match="width_d must be a positive integer, or none to use width, got 0"):
        Config(width_d=0).validate()


def test_contrastive_settings_validation():
    from gankit.recipes.stackgan import StackGANConfig
    from gankit.recipes.text2image import Text2ImageConfig

    for Config in (Text2ImageConfig, StackGANConfig):
        with pytest.raises(UsageError, match="with projection=false set both to 0"):
            Config(projection=False).validate()
        with pytest.raises(UsageError, match="must be >= 0 and tau > 0"):
            Config(tau=0.0).validate()
        with pytest.raises(UsageError, match="must be >= 0 and tau > 0"):
            Config(lambda_con_g=-1.0).validate()
        with pytest.raises(UsageError, match="con_max_sim is a cosine similarity"):
            Config(con_max_sim=1.5).validate()
        Config(projection=False, lambda_con=0.0, lambda_con_g=0.0).validate()  # the paper's D


def test_standing_stats_validation():
    from gankit.recipes.dcgan import DCGANConfig
    from gankit.recipes.stackgan import StackGANConfig
    from gankit.recipes.text2image import Text2ImageConfig

    for Config in (Text2ImageConfig, StackGANConfig, DCGANConfig):
        with pytest.raises(UsageError, match="standing_stats must be 0 \\(off\\) or a number of batches, got -1"):
            Config(standing_stats=-1).validate()
        Config(standing_stats=0).validate()


def test_info_cat_validation():
    from gankit.recipes.dcgan import DCGANConfig

    for bad in (1, 101):
        with pytest.raises(UsageError, match=f"info_cat must be 0 \\(off\\) or a number of categories in \\[2, "
                                             f"z_dim=100\\], got {bad}"):
            DCGANConfig(info_cat=bad).validate()
    with pytest.raises(UsageError, match="lambda_info must be >= 0, got -1"):
        DCGANConfig(info_cat=10, lambda_info=-1.0).validate()
    DCGANConfig(info_cat=10).validate()
    DCGANConfig(info_cat=0).validate()


def test_yaml_roundtrip(tmp_path):
    import yaml

    h = DCGANConfig(width=16, betas=(0.0, 0.9))
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"recipe": "dcgan", "train": {"seed": 3}, "hparams": to_dict(h)}))
    flat = load_yaml(f)
    assert flat["seed"] == 3 and from_dict(DCGANConfig, {k: v for k, v in flat.items() if k in to_dict(h)}) == h
    f.write_text("[1, 2]")
    with pytest.raises(UsageError, match="mapping"):
        load_yaml(f)
    with pytest.raises(UsageError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
