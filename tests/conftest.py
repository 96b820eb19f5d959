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
