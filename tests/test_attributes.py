"""The caption-accuracy measure of text2image: an oracle that draws what a caption says scores
what the classifier can read; a generator that ignores the caption scores chance."""

import json

import numpy as np
import pytest
import torch

from gankit.data import shapes
from gankit.metrics import attributes


class _Inputs:
    def __init__(self, caps, z):
        self.caps, self.z = caps, z


class _Drawer:
    """A stand-in text2image recipe: draws real shapes, either the ones captions state or fixed ones."""

    def __init__(self, follow_captions: bool, use_z: bool = True):
        self.follow, self.use_z = follow_captions, use_z
        self.cfg = type("Cfg", (), {"z_dim": 2})()

    def inputs_for(self, caps, z):
        return _Inputs(caps, z)

    def generate(self, modules, inputs):
        rows = []
        for i, cap in enumerate(inputs.caps):
            said = shapes.parse_caption(cap) if self.follow else {}
            # unstated attributes (size, position) drawn from z, as a generator would
            free = [int(inputs.z[i, 0] > 0), int((inputs.z[i, 1].abs() * 10) % 5)] if self.use_z else [0, 0]
            row = []
            for a, values in shapes.ATTRIBUTES.items():
                default = {"size": free[0], "position": free[1]}.get(a, 0)
                row.append(values.index(said[a]) if a in said else default)
            rows.append(row)
        x = shapes.draw_attributes(torch.tensor(rows), 32, seed=len(rows))
        return x.float().mul(2 / 255).sub(1)


@pytest.fixture(scope="module")
def quick_classifier(gankit_cache):
    """The real classifier recipe, 2 epochs instead of 6 so the suite stays fast (cached under a
    test version name in the session cache, where training-time evaluation finds it too)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(attributes, "EPOCHS", 2)
    mp.setattr(attributes, "VERSION", "shapes-attr-test")
    cache = gankit_cache
    clf, record = attributes.load_classifier(cache)
    yield cache, record
    mp.undo()


def test_classifier_reads_real_shapes_and_is_cached(quick_classifier):
    cache, record = quick_classifier
    acc = record["held_out_accuracy"]
    assert set(acc) == set(shapes.ATTRIBUTES)
    assert min(acc.values()) >= 0.8, acc  # 2 epochs; the real 6-epoch classifier reads 99.5-100%
    _, again = attributes.load_classifier(cache)  # from the cache, not retrained
    assert again == record


def test_caption_accuracy_oracle_vs_caption_blind(quick_classifier):
    cache, record = quick_classifier
    oracle = attributes.caption_accuracy(_Drawer(True), {}, seed=0, repeats=1, diversity_n=100, cache=cache)
    for a in ("colour", "shape", "background"):
        assert oracle[f"{a}_acc"] >= record["held_out_accuracy"][a] - 0.05, oracle
    assert oracle["protocol"]["captions"] == 540
    blind = attributes.caption_accuracy(_Drawer(False), {}, seed=0, repeats=1, diversity_n=0, cache=cache)
    assert "diversity" not in blind  # accuracies only (StackGAN's bicubic baseline)
    # always a red (index 0) circle on black: right only for the 1/6 of captions asking for red
    assert abs(blind["colour_acc"] - 1 / 6) < 0.03 and abs(blind["shape_acc"] - 1 / 3) < 0.05
    assert blind["all_acc"] < 0.05
    d = oracle["diversity"]
    assert d["colour_acc"] > 0.9 and d["positions_covered"] >= 3 and d["sizes_covered"] == 2
    pc = d["per_caption"]
    assert pc["captions"] == 54 and pc["positions_covered_mean"] >= 4.5 and pc["sizes_covered_mean"] >= 1.9, pc
    assert pc["size_balance_mean"] > 0.75 and all(0.35 < v < 0.65 for v in pc["small_share"].values()), pc
    # read from the pixels, the data's two sizes: half large, none between
    assert pc["size_balance_area"] > 0.75 and all(0.35 < v < 0.65 for v in pc["large_share_area"].values()), pc
    assert pc["medium_share_area"] == 0, pc


def test_per_caption_spread_sees_a_generator_that_ignores_z(quick_classifier):
    """Varied across captions but one image per caption: the per-caption spread is 1 and 1."""
    cache, _ = quick_classifier
    res = attributes.caption_accuracy(_Drawer(True, use_z=False), {}, seed=0, repeats=1, diversity_n=50,
                                      cache=cache, open_n=20)
    pc = res["diversity"]["per_caption"]
    assert res["colour_acc"] > 0.9 and pc["n"] == 20
    assert pc["positions_covered_mean"] <= 1.25 and pc["sizes_covered_mean"] <= 1.25, pc  # 1 and 1, bar misreads
    assert pc["size_balance_mean"] < 0.15, pc  # one size per caption
    assert pc["size_balance_area"] == 0 and all(v == 0 for v in pc["large_share_area"].values()), pc  # all small


class _BetweenDrawer(_Drawer):
    """Draws every caption's colour, shape and background with an object 46 % of the image wide, at the
    centre: between the data's two sizes (30 % and 55 %), where no real object lies."""

    def generate(self, modules, inputs):
        out = []
        for cap in inputs.caps:
            a = {**shapes.names([0] * 5), **shapes.parse_caption(cap)}
            out.append(shapes._draw(a["shape"], shapes.COLOURS[a["colour"]], shapes.BACKGROUNDS[a["background"]],
                                    0.46, 0.5, 0.5, 32))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().mul(2 / 255).sub(1)


def test_open_caption_spread_by_area_flags_objects_between_the_sizes(quick_classifier):
    """The classifier must call an in-between object small or large; the area measure puts it in the
    middle third between the data's median sizes."""
    cache, _ = quick_classifier
    pc = attributes.caption_accuracy(_BetweenDrawer(True), {}, seed=0, repeats=1, diversity_n=20, cache=cache,
                                     open_n=10)["diversity"]["per_caption"]
    assert pc["medium_share_area"] == 1, pc


def test_object_area_counts_pixels_off_the_background_and_separates_the_sizes():
    attrs = shapes.all_combinations(1)[::7]  # (78, 5): every shape, size and background
    x = shapes.draw_attributes(attrs, 32, 0)
    bgs = [shapes.ATTRIBUTES["background"][int(b)] for b in attrs[:, 3]]
    got = shapes.object_area(x, bgs)
    assert torch.equal(got, shapes.object_area(x.float().mul(2 / 255).sub(1), bgs))  # uint8 or [-1, 1]
    for i in range(len(x)):  # naive: pixel by pixel
        bg = shapes.BACKGROUNDS[bgs[i]]
        px = x[i].permute(1, 2, 0).reshape(-1, 3).tolist()
        want = sum(max(abs(p[c] - bg[c]) for c in range(3)) > shapes.AREA_THRESHOLD for p in px) / len(px)
        assert abs(float(got[i]) - want) < 1e-6
    ref = shapes.size_reference(32)
    for i, row in enumerate(attrs.tolist()):  # every real object lies on its size's side of the midpoint
        lo, hi = ref[shapes.SHAPES[row[1]]]
        assert lo < hi and (float(got[i]) > (lo + hi) / 2) == (row[2] == 1)


def test_eval_every_logs_caption_accuracy_and_keeps_the_best(quick_classifier, tmp_path):
    from test_text2image import TINY_T2I

    from gankit.train import train

    run = tmp_path / "run"
    res = train("text2image", data="shapes", out=run, steps=4, batch=8, size=16,
                overrides=[*TINY_T2I, "eval_every=2"])
    assert res.step == 4
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "all_acc" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert 0 <= r["all_acc"] <= r["colour_acc"] <= 1 and r["positions_covered"] in range(6)
    best = json.loads((run / "best" / "config.json").read_text())
    assert best["all_acc"] == max(r["all_acc"] for r in evals)


def test_eval_every_refuses_captioned_data_without_a_measure(tmp_path):
    from test_text2image import TINY_T2I, make_paired

    from gankit.errors import UsageError
    from gankit.train import train

    with pytest.raises(UsageError, match="caption accuracy on the built-in shapes"):
        train("text2image", data=str(make_paired(tmp_path / "p")), out=tmp_path / "run", steps=2, batch=4, size=16,
              overrides=[*TINY_T2I, "eval_every=1"])
    assert not (tmp_path / "run").exists()
