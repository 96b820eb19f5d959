"""Standing statistics (gankit.engine.standing): BatchNorm statistics of the sampled generator
re-estimated for its own weights, without touching training."""

import pytest
import torch
from torch import nn

from gankit.engine.standing import batch_norms, standing_copies

from test_contract import make, weights


def test_standing_copies_average_batch_statistics_and_leave_the_original_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    original = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [torch.randn(16, 3) * (i + 1) + i for i in range(5)]
    it = iter(batches)
    copies = standing_copies({"G": net, "other": nn.Linear(1, 1)}, ("G", "other"),
                             lambda mods: mods["G"](next(it)), passes=5)

    assert set(copies) == {"G"}  # no BatchNorm in "other": nothing to re-estimate
    bn = copies["G"][1]
    with torch.no_grad():
        h = [net[0](b) for b in batches]  # what the BatchNorm layer saw, (16, 4) each
    # momentum None: the plain mean of the per-batch mean and unbiased variance
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in h]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0, unbiased=True) for x in h]).mean(0))
    assert int(bn.num_batches_tracked) == 5
    assert not copies["G"].training and not bn.training and bn.momentum == net[1].momentum
    for k, v in net.state_dict().items():
        assert torch.equal(v, original[k]), f"the original module's {k} changed"
    assert standing_copies({"G": net}, ("G",), lambda mods: None, passes=0) == {}


def test_text2image_samples_with_standing_statistics_and_training_is_untouched():
    straight, _ = make("text2image", steps=6)  # first: an Engine seeds the global training stream
    straight.fit(None)
    eng, _ = make("text2image", steps=3)
    assert eng.recipe.standing_batches == 32 and eng.recipe.standing_modules() == ("G",)
    eng.fit(None)
    ema_g = eng.ema["G"]
    before = {k: v.clone() for k, v in ema_g.state_dict().items()}
    g = eng.inference_modules()["G"]
    assert g is not ema_g and eng.inference_modules()["G"] is g  # one re-estimation per step
    assert len(batch_norms(g)) == len(batch_norms(ema_g)) > 0
    for i, (bn, bn_ema) in enumerate(zip(batch_norms(g), batch_norms(ema_g))):
        assert int(bn.num_batches_tracked) == 32, i
        assert not torch.equal(bn.running_mean, bn_ema.running_mean), i
    for k, v in ema_g.state_dict().items():
        assert torch.equal(v, before[k]), f"EMA G's {k} changed"
    # same parameters, only the statistics differ
    for (k, p), q in zip(g.named_parameters(), ema_g.parameters()):
        assert torch.equal(p, q), k

    # sampling mid-run (grids, evaluations, exports all go through inference_modules) draws from
    # streams of its own: the run continues exactly as one that never sampled
    eng.tcfg.steps = 6
    eng.generate(eng.recipe.sample_inputs(4, torch.Generator().manual_seed(0)))
    eng.fit(None)
    a, b = weights(straight), weights(eng)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after sampling mid-run"
    assert eng.inference_modules()["G"] is not g  # re-estimated for the new weights


@pytest.mark.parametrize("case", ["dcgan", "stackgan-1"])
def test_standing_stats_is_an_option_elsewhere(case):
    eng, _ = make(case, steps=2)
    assert eng.recipe.standing_batches == 0
    eng.fit(None)
    assert eng.inference_modules()[eng.recipe.standing_modules()[0]] is eng.ema[eng.recipe.standing_modules()[0]]
    eng.recipe.cfg.standing_stats = 4
    name = eng.recipe.standing_modules()[0]
    g = eng.inference_modules()[name]
    assert g is not eng.ema[name] and all(int(bn.num_batches_tracked) == 4 for bn in batch_norms(g))
