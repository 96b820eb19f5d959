import json

import pytest
import torch

from gankit.data import load_dataset
from gankit.metrics import lenet


@pytest.fixture(scope="module")
def trained(gankit_cache):
    model, record = lenet.load_lenet()  # the session cache (GANKIT_CACHE)
    return gankit_cache, model, record


def test_trains_accurately_and_records_it(trained):
    cache, _, record = trained
    assert record["held_out_accuracy"] >= 0.95 and record["held_out_images"] == 500
    assert json.loads((cache / f"{lenet.VERSION}.json").read_text()) == record


def test_cache_reloads_same_weights_through_safetensors(trained):
    cache, model, record = trained
    rng = torch.get_rng_state()
    again, rec2 = lenet.load_lenet(cache)
    assert torch.equal(rng, torch.get_rng_state()), "loading the extractor must not consume global RNG"
    assert rec2 == record
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_damaged_cache_is_rebuilt(trained, tmp_path, monkeypatch):
    (tmp_path / f"{lenet.VERSION}.safetensors").write_bytes(b"garbage")
    (tmp_path / f"{lenet.VERSION}.json").write_text("{}")
    _, model, record = trained
    monkeypatch.setattr(lenet, "train_lenet", lambda: (model, record))
    _, rec = lenet.load_lenet(tmp_path)
    assert rec == record and (tmp_path / f"{lenet.VERSION}.safetensors").stat().st_size > 1000


def test_prepare_accepts_any_digit_layout(trained):
    _, model, _ = trained
    ds = load_dataset("mnist")
    x28 = ds.x[:8]  # uint8 (8, 1, 28, 28)
    x32 = torch.nn.functional.pad(x28, (2, 2, 2, 2))
    rgb64 = torch.nn.functional.interpolate(x32.float(), size=64).to(torch.uint8).repeat(1, 3, 1, 1)
    assert torch.equal(lenet.prepare(x28), lenet.prepare(x32))
    assert lenet.prepare(rgb64).shape == (8, 1, 32, 32)
    with torch.no_grad():
        assert model.features(lenet.prepare(x28)).shape == (8, 128)
        agree = (model(lenet.prepare(rgb64)).argmax(1) == model(lenet.prepare(x28)).argmax(1)).float().mean()
    assert agree >= 0.75  # a 2x upscaled RGB copy is still read as the same digits


@pytest.mark.slow
def test_training_is_deterministic():
    a, ra = lenet.train_lenet()
    b, rb = lenet.train_lenet()
    assert ra == rb and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
