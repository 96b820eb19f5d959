import os

import pytest
import torch

# Tests are small; one thread keeps them fast and deterministic beside other work on 2 cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def gankit_cache(tmp_path_factory):
    """One fresh cache per test session (the lenet extractor is trained once, not per test)."""
    path = tmp_path_factory.mktemp("gankit-cache")
    old = os.environ.get("GANKIT_CACHE")
    os.environ["GANKIT_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GANKIT_CACHE", None)
    else:
        os.environ["GANKIT_CACHE"] = old


# Tiny StackGAN settings (64 px Stage-II, the smallest side the recipe takes; 4-channel nets).
STACKGAN_TINY = ["ngf1=4", "ndf1=4", "ngf2=4", "ndf2=4", "n_res=1", "c_dim=4", "t_dim=4", "z_dim=4", "batch=4",
                 "encoder_steps=2", "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32"]


@pytest.fixture(scope="session")
def stackgan_stage1(tmp_path_factory, gankit_cache):
    """A 2-step Stage-I run on shapes (trained once per session) for the Stage-II tests."""
    from gankit.train import train

    out = tmp_path_factory.mktemp("stackgan") / "stage1"
    train("stackgan", data="shapes", out=out, steps=2, overrides=[*STACKGAN_TINY, "stage=1", "progress=false"])
    return out
