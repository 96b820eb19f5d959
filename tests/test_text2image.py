"""Text-to-image: the shapes data and its captions, caption layouts on disk, the text encoder's
and GAN-CLS losses, the sampler's aligned tensors, and the CLI end to end on tiny fixtures."""

import json
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data import load_dataset, shapes
from gankit.engine.loop import BatchSampler
from gankit.errors import DataError
from gankit.losses import (contrastive_match, d_matching_aware, different_class, feature_layout, feature_occupancy,
                           misdescribes, mode_seeking, sje_loss)
from gankit.models.text_encoder import CharCNNRNN, tokenize
from gankit.train import train

TINY_T2I = ["width=4", "t_dim=4", "z_dim=4", "encoder_steps=2", "log_every=1",
            "encoder_overrides=text_width=8,text_hidden=8,emb_dim=8,image_width=4,max_chars=32"]


# --- shapes ------------------------------------------------------------------------------------


def test_shapes_values_captions_and_held_out_templates():
    ds = load_dataset("shapes", size=32, seed=3)
    assert ds.x.shape == (9720, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert len(ds.captions) == 9720 and all(len(c) == shapes.CAPTIONS_PER_IMAGE for c in ds.captions)
    assert ds.attributes.shape == (9720, 5)
    assert torch.equal(torch.bincount(shapes.class_of(ds.attributes)), torch.full((108,), 90))  # balanced
    again = load_dataset("shapes", size=32, seed=3)
    assert torch.equal(ds.x, again.x) and ds.captions == again.captions
    assert not torch.equal(ds.x, load_dataset("shapes", size=32, seed=4).x)
    # exact colours: a large centred object's middle pixel and a corner of the background
    i = next(j for j, r in enumerate(ds.attributes.tolist()) if r[2] == 1 and r[4] == 0 and r[1] != 2)
    a = shapes.names(ds.attributes[i])
    assert tuple(ds.x[i, :, 16, 16].tolist()) == shapes.COLOURS[a["colour"]]
    assert tuple(ds.x[i, :, 0, 0].tolist()) == shapes.BACKGROUNDS[a["background"]]
    # the plain template is always there and parses back; held-out templates never appear
    held_prefixes = [t.split("{")[0] for t in shapes.HELD_OUT_TEMPLATES if not t.startswith("{")]
    for caps, row in zip(ds.captions[:500], ds.attributes[:500]):
        truth = shapes.names(row)
        assert caps[0] == shapes.caption(truth)
        assert shapes.parse_caption(caps[0]) == {k: v for k, v in truth.items() if k != "position"}
        assert len(set(caps)) >= 4
        assert not any(c.startswith(p) for c in caps for p in held_prefixes if p)
    assert not set(shapes.TRAIN_TEMPLATES) & set(shapes.HELD_OUT_TEMPLATES)


def test_every_caption_template_parses_to_what_it_states():
    rng = random.Random(0)
    for row in shapes.all_combinations():
        truth = shapes.names(row)
        for t in shapes.TRAIN_TEMPLATES + shapes.HELD_OUT_TEMPLATES:
            assert shapes.parse_caption(shapes.caption(truth, t, rng)) == {k: truth[k] for k in shapes.mentioned(t)}


def test_shapes_size_setting_and_default():
    assert load_dataset("shapes", size=16).x.shape[-1] == 16
    assert shapes.DEFAULT_SIZE == 64


# --- caption layouts on disk -------------------------------------------------------------------


def _img(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)


def make_cub(root, bad=True):
    for c, cls in enumerate(("001.Black_footed_Albatross", "002.Laysan_Albatross")):
        for i in range(5):
            name = f"{cls}/bird_{c}_{i}"
            _img(root / "images" / f"{name}.jpg", c * 10 + i)
            (root / "text_c10" / cls).mkdir(parents=True, exist_ok=True)
            (root / "text_c10" / f"{name}.txt").write_text(f"a bird of class {c} number {i}\nthis bird has wings\n")
    lines = sorted(str(p.relative_to(root / "images")) for p in (root / "images").rglob("*.jpg"))
    (root / "images.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(lines)))
    (root / "bounding_boxes.txt").write_text("".join(f"{k + 1} 4.0 5.0 20.0 18.0\n" for k in range(len(lines))))
    if bad:
        _img(root / "images" / "002.Laysan_Albatross" / "no_text.jpg", 99)  # image without captions
        _img(root / "images" / "002.Laysan_Albatross" / "empty.jpg", 98)
        (root / "text_c10" / "002.Laysan_Albatross" / "empty.txt").write_text("\n  \n")
    return root


def make_oxford(root):
    for i in range(1, 9):
        _img(root / "jpg" / f"image_{i:05d}.jpg", i)
        cls = root / "text_c10" / f"class_{1 + i % 2:05d}"
        cls.mkdir(parents=True, exist_ok=True)
        (cls / f"image_{i:05d}.txt").write_text(f"a flower with {i} petals\n")
    _img(root / "jpg" / "image_00009.jpg", 9)
    (root / "text_c10" / "class_00001" / "image_00009.txt").write_bytes(b"\xff\xfe not utf-8 \xc3\x28")
    return root


def make_paired(root):
    for i in range(8):
        _img(root / f"pic{i}.png", i)
        (root / f"pic{i}.txt").write_text(f"picture number {i}\nanother caption {i}\n")
    _img(root / "lonely.png", 50)  # no .txt
    return root


def test_caption_layouts_load_and_report_mismatches(tmp_path, caplog):
    cub = load_dataset(str(make_cub(tmp_path / "CUB_200_2011")), size=16)
    assert cub.x.shape == (10, 3, 16, 16) and cub.info["layout"] == "cub" and cub.info["mismatched"] == 2
    assert cub.labels.tolist() == [0] * 5 + [1] * 5 and cub.captions[0] == ["a bird of class 0 number 0", "this bird has wings"]
    assert len(cub.warnings) == 1 and "2 images without usable captions" in cub.warnings[0]
    assert "no_text.jpg" in cub.warnings[0] or "empty.jpg" in cub.warnings[0]
    assert "bounding boxes" in cub.info["source"]
    ox = load_dataset(str(make_oxford(tmp_path / "flowers")), size=16)
    assert ox.x.shape[0] == 8 and ox.info["layout"] == "oxford" and "not UTF-8" in ox.warnings[0]
    assert sorted(set(ox.labels.tolist())) == [0, 1]
    pa = load_dataset(str(make_paired(tmp_path / "paired")), size=16)
    assert pa.x.shape[0] == 8 and pa.labels is None and "lonely.png: no caption file" in pa.warnings[0]
    # a plain image folder with a stray .txt stays a plain image folder
    plain = tmp_path / "plain"
    for i in range(4):
        _img(plain / f"a{i}.png", i)
    (plain / "a0.txt").write_text("stray")
    assert load_dataset(str(plain), size=16).captions is None


def test_caption_folder_without_any_usable_caption_is_one_error(tmp_path):
    root = tmp_path / "bad"
    for i in range(3):
        _img(root / f"p{i}.png", i)
        (root / f"p{i}.txt").write_text("")
    with pytest.raises(DataError, match="no image with captions") as err:
        load_dataset(str(root), size=16)
    assert "\n" not in str(err.value)


# --- losses, tokens, sampler ---------------------------------------------------------------------


def test_sje_loss_matches_naive_formula():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    negative = torch.rand(6, 6, generator=g) < 0.6  # not symmetric: text j may miss image i and not j's text i
    negative.fill_diagonal_(False)
    negative[2] = False  # every text describes image 2: it has no negatives (its hinge term is 0)
    total = 0.0
    for i in range(6):  # image i against the texts that do not describe it
        terms = [max(0.0, 1 + float(img[i] @ txt[j]) - float(img[i] @ txt[i])) for j in range(6) if negative[i, j]]
        total += (sum(terms) / len(terms) if terms else 0.0) / 6
    for j in range(6):  # text j against the images it does not describe
        terms = [max(0.0, 1 + float(img[i] @ txt[j]) - float(img[j] @ txt[j])) for i in range(6) if negative[i, j]]
        total += (sum(terms) / len(terms) if terms else 0.0) / 6
    assert abs(float(sje_loss(img, txt, negative)) - total) < 1e-5
    labels = torch.tensor([0, 1, 1, 2, 3, 3])
    assert different_class(labels).tolist() == [[int(a) != int(b) for b in labels] for a in labels]


def test_misdescribes_only_what_a_caption_states():
    attrs = torch.tensor([[0, 1, 0, 2, 3], [0, 1, 1, 2, 4], [5, 1, 0, 2, 3]])  # image rows
    stated = torch.tensor([[0, 1, 0, 2, -1],  # caption 0: size stated, position open
                           [0, 1, -1, 2, 4],  # caption 1: size open, position stated
                           [5, -1, -1, -1, -1]])  # caption 2: colour only
    naive = [[any(int(s) >= 0 and int(s) != int(a) for s, a in zip(stated[j], attrs[i])) for j in range(3)]
             for i in range(3)]
    assert misdescribes(stated, attrs).tolist() == naive
    assert naive == [[False, True, True], [True, False, True], [True, True, False]]


def test_stated_attributes_of_shapes_captions_and_their_shuffled_copies():
    from gankit.recipes.text_encoder import stated_attributes, with_shuffled_words

    _, attrs, caps = shapes.generate(16, 0)
    attrs, caps = attrs[:200], caps[:200]
    stated = stated_attributes(caps, 1)  # (200, 10, 5)
    assert stated.shape == (200, 2 * shapes.CAPTIONS_PER_IMAGE, 5) and stated.dtype == torch.int8
    assert torch.equal(stated[:, :5], stated[:, 5:])  # a shuffled copy states what its original does
    for i in range(200):
        for j, c in enumerate(caps[i]):
            said = {a: shapes.ATTRIBUTES[a][int(v)] for a, v in zip(shapes.ATTRIBUTES, stated[i, j]) if v >= 0}
            assert said == {a: v for a, v in shapes.names(attrs[i]).items() if a in said} == shapes.parse_caption(c)
    assert (stated[..., 4] >= 0).any() and (stated[..., 2] < 0).any()  # some state position, some leave size open
    # every caption describes its own image; none states a value its image lacks
    for k in range(10):
        assert not misdescribes(stated[:, k].long(), attrs).diagonal().any()
    assert len(with_shuffled_words(caps, 1, 0)[0]) == stated.shape[1]


@pytest.mark.parametrize("negatives", ["stated", "class"])
def test_text_encoder_data_carries_what_its_negatives_need(negatives):
    from types import SimpleNamespace

    from gankit.recipes.text_encoder import TextEncoderConfig, TextEncoderRecipe

    ds = load_dataset("shapes", size=16, seed=0)
    cfg = TextEncoderConfig(negatives=negatives)
    out = TextEncoderRecipe.prepare_data(ds, cfg, SimpleNamespace(eval_every=0, seed=0)).aligned
    assert out["tokens"].shape[:2] == out["stated" if negatives == "stated" else "tokens"].shape[:2]
    needs = {"stated", "attrs"} if negatives == "stated" else {"cls"}
    assert set(out) == {"tokens", "n_caps"} | needs


def test_contrastive_match_matches_naive_formula():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    exclude = torch.zeros(5, 5, dtype=torch.bool)
    exclude[1, 3] = exclude[3, 1] = True  # captions 1 and 3 may describe one image: not negatives
    exclude[2, 2] = True  # the diagonal is the positive whatever the mask says
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    total = 0.0
    for side in (0, 1):
        for i in range(5):
            pair = (lambda j: cos(img[i], txt[j])) if side == 0 else (lambda j: cos(img[j], txt[i]))
            keep = [j for j in range(5) if j == i or not exclude[i, j]]
            total += -math.log(math.exp(pair(i) / 0.1) / sum(math.exp(pair(j) / 0.1) for j in keep)) / 10
    assert float(contrastive_match(img, txt, exclude, tau=0.1)) == pytest.approx(total, rel=1e-9)
    # matched codes score lower than shuffled ones
    assert contrastive_match(txt, txt, exclude, 0.1) < contrastive_match(txt.roll(1, 0), txt, exclude, 0.1)


def test_matching_aware_loss_closed_form():
    r, w, f = torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([0.5])
    sig = torch.sigmoid
    want = -(torch.log(sig(r)) + 0.5 * (torch.log(1 - sig(w)) + torch.log(1 - sig(f))))
    assert torch.allclose(d_matching_aware(r, w, f), want)


def test_hard_wrong_caption_is_the_nearest_other_below_the_threshold():
    from gankit.recipes.text2image import caption_similarity, hard_wrong

    e = torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.6, 0.8], [0.0, 1.0]])  # cos(0,1) ~ .99, cos(0,2) = .6
    sim = caption_similarity(e)
    out = hard_wrong(e, sim, max_sim=0.95)
    assert torch.equal(out[0], e[2])  # row 1 is a near-duplicate (> .95): the next most similar is row 2
    assert torch.equal(out[3], e[2])  # cos(3,2) = .8 beats cos(3,1) ~ .14
    assert torch.equal(hard_wrong(e, sim, max_sim=1.1)[0], e[1])  # no threshold: the nearest other row
    near = torch.tensor([[1.0, 0.0], [1.0, 0.01], [1.0, 0.02]])  # all near-duplicates: the next row, never itself
    assert torch.equal(hard_wrong(near, caption_similarity(near), 0.5), near[[1, 2, 0]])


def test_caption_similarity_to_an_image_is_to_the_nearest_of_its_captions():
    """describes=image: caption j is judged against every caption of image i (padding ignored), so
    a caption that leaves an attribute open cannot become a wrong caption or a contrastive negative
    for an image whose other caption matches it, however far it is from the drawn one."""
    from gankit.recipes.text2image import caption_similarity, hard_wrong

    torch.manual_seed(0)
    caps = torch.randn(4, 3, 8)  # (B, K, E)
    n = torch.tensor([3, 2, 1, 3])
    caps[2, 1:] = 100.0  # padding beyond n_caps must not count
    right = caps[torch.arange(4), torch.tensor([0, 1, 0, 2])]  # the drawn caption of each image
    sim = caption_similarity(right, caps, n)
    c = torch.nn.functional.normalize(caps, dim=2)
    r = torch.nn.functional.normalize(right, dim=1)
    naive = torch.tensor([[max(float(c[i, k] @ r[j]) for k in range(int(n[i]))) for j in range(4)] for i in range(4)])
    assert torch.allclose(sim, naive, atol=1e-6)
    assert torch.allclose(sim.diagonal(), torch.ones(4), atol=1e-6)
    assert torch.allclose(caption_similarity(right), r @ r.T)

    # image 0 is drawn with an open caption; image 1's caption is a near-copy of image 0's *other* caption
    caps = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.05, 1.0, 0.0], [0.0, 0.0, 0.0]],
                         [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    n = torch.tensor([2, 1, 1])
    right = caps[:, 0]
    by_caption, by_image = caption_similarity(right), caption_similarity(right, caps, n)
    assert by_caption[0, 1] < 0.1 and by_image[0, 1] > 0.99
    assert torch.equal(hard_wrong(right, by_caption, 0.9)[0], right[1])  # the drawn caption alone: a false wrong
    assert torch.equal(hard_wrong(right, by_image, 0.9)[0], right[2])  # never image 1's caption, which describes it


def test_projection_term_adds_text_image_inner_product():
    from gankit.models.text2image import MatchingDiscriminator, rescale_embedding

    torch.manual_seed(0)
    D = MatchingDiscriminator(8, 4, 3, 16, 4, norm="none", spectral_norm=True, projection=True).eval()
    x, e = torch.randn(2, 3, 16, 16), torch.randn(2, 8)
    h = D.image(x)
    plain = D.joint(torch.cat([h, D.text(e)[:, :, None, None].expand(-1, -1, 4, 4)], 1)).flatten()
    want = plain + (D.proj(rescale_embedding(e)) * h.mean((2, 3))).sum(1)
    assert torch.allclose(D(x, e), want, atol=1e-6)
    assert not torch.allclose(D(x, e), plain)


def test_mode_seeking_formula():
    z1, z2 = torch.zeros(2, 3), torch.ones(2, 3)  # E|z1 - z2| = 1
    f1, f2 = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)
    assert torch.allclose(mode_seeking(f1, f2, z1, z2), torch.tensor(1 / (0.5 + 1e-5)))
    assert mode_seeking(f1, f1, z1, z2) > 1e4  # identical images for different z: heavily penalised


def test_mode_seeking_term_in_d_features_or_pixels():
    from gankit.models.text2image import MatchingDiscriminator
    from gankit.recipes.text2image import mode_seeking_term

    torch.manual_seed(0)
    D = MatchingDiscriminator(8, 4, 3, 16, 4, norm="none", spectral_norm=True, projection=True).eval()
    a, b, z1, z2 = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 5), torch.randn(4, 5)
    h = D.image(a)
    want = 1 / ((h - D.image(b)).abs().flatten(1).mean(1) / (z1 - z2).abs().mean(1)).mean()
    assert torch.allclose(mode_seeking_term("features", D, a, b, h, z1, z2), want, rtol=1e-4)
    assert torch.allclose(mode_seeking_term("pixels", D, a, b, h, z1, z2), mode_seeking(a, b, z1, z2))
    lay = mode_seeking(feature_layout(h), feature_layout(D.image(b)), z1, z2)
    assert torch.allclose(mode_seeking_term("layout", D, a, b, h, z1, z2), lay, rtol=1e-4)
    occ = feature_occupancy(torch.cat([h, D.image(b)]))  # normalised over both images' features together
    assert torch.allclose(mode_seeking_term("occupancy", D, a, b, h, z1, z2), mode_seeking(occ[:4], occ[4:], z1, z2),
                          rtol=1e-4)


def test_feature_occupancy_keeps_how_much():
    h = torch.zeros(2, 3, 2, 2)
    h[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # a small object: norm 5 in one cell
    h[1, :, :, :1] = torch.tensor([3.0, 4.0, 0.0])[:, None, None]  # a large one: norm 5 in two cells
    occ = feature_occupancy(h)  # mean over all 8 cells 15 / 8
    want = torch.tensor([[5.0, 0, 0, 0], [5.0, 0, 5.0, 0]]) / (15 / 8)
    assert torch.allclose(occ, want, atol=1e-3)
    assert float(occ[1].sum()) == pytest.approx(2 * float(occ[0].sum()), rel=1e-3)  # the layout would give both the same total
    assert torch.allclose(feature_layout(h).sum(1), torch.full((2,), 4.0), atol=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 4, 4, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert torch.allclose(feature_occupancy(torch.einsum("dc,bchw->bdhw", q, x)), feature_occupancy(x), atol=1e-5)
    assert torch.allclose(feature_occupancy(3 * x), feature_occupancy(x), atol=1e-5)  # scale-free over the batch
    assert float(feature_occupancy(x).mean()) == pytest.approx(1.0)
    # an object moved to a disjoint place: a 1-cell and a 4-cell one. The layout counts both moves
    # alike (each image's peaks are scaled to the same mean), occupancy by area, as pixels would
    small_a, small_b, large_a, large_b = torch.zeros(4, 1, 1, 4, 4)
    small_a[..., 0, 0] = small_b[..., 3, 3] = 1.0
    large_a[..., :2, :2] = large_b[..., 2:, 2:] = 1.0
    imgs = torch.cat([small_a, small_b, large_a, large_b])
    for f, want_ratio in ((feature_layout, 1.0), (feature_occupancy, 0.25)):
        v = f(imgs)
        assert float((v[0] - v[1]).abs().sum() / (v[2] - v[3]).abs().sum()) == pytest.approx(want_ratio, rel=1e-2)  # eps: 1e-4 per empty cell


def test_feature_layout_reads_where_not_what():
    h = torch.zeros(2, 3, 2, 2)
    h[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # norm 5 in cell (0, 0), nothing elsewhere
    h[1, :, 1, 1] = torch.tensor([0.0, 0.0, 2.0])  # norm 2 in cell (1, 1)
    lay = feature_layout(h)  # (2, 4), each row's mean 1
    assert torch.allclose(lay, torch.tensor([[4.0, 0, 0, 0], [0, 0, 0, 4.0]]), atol=1e-3)  # eps: sqrt(1e-8) per cell
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 4, 4, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))  # an orthogonal map of the channels
    rotated = torch.einsum("dc,bchw->bdhw", q, x)  # other content, the same norm in every cell
    assert torch.allclose(feature_layout(rotated), feature_layout(x), atol=1e-5)
    assert torch.allclose(feature_layout(3 * x), feature_layout(x), atol=1e-5)  # scale-free
    assert torch.allclose(feature_layout(x).mean(1), torch.ones(5))
    moved = x.roll(1, dims=3)  # the same content one cell to the right: a different layout
    assert (feature_layout(moved) - feature_layout(x)).abs().mean() > 0.1


def test_mode_seeking_pair_reads_rows_i_and_batch_plus_i():
    from gankit.models.text2image import MatchingDiscriminator
    from gankit.recipes.text2image import mode_seeking_pair, mode_seeking_term

    torch.manual_seed(0)
    D = MatchingDiscriminator(8, 4, 3, 16, 4, norm="none", spectral_norm=True, projection=True).eval()
    B, n = 6, 2
    fake, fake2, z, z2 = torch.randn(B, 3, 16, 16), torch.randn(n, 3, 16, 16), torch.randn(B, 5), torch.randn(n, 5)
    joined = torch.cat([fake, fake2])
    h_all = D.image(joined)  # one pass over the joined batch: D without BatchNorm scores each row alone
    for space in ("features", "pixels", "layout"):
        want = mode_seeking_term(space, D, fake[:n], fake2, D.image(fake[:n]), z[:n], z2)
        assert torch.allclose(mode_seeking_pair(space, joined, h_all, z, z2), want, rtol=1e-4)
    occ = feature_occupancy(h_all)  # normalised over the whole joined batch, not only the 2n rows compared
    assert torch.allclose(mode_seeking_pair("occupancy", joined, h_all, z, z2),
                          mode_seeking(occ[:n], occ[B:], z[:n], z2), rtol=1e-4)
    copies = torch.cat([fake, fake[:n]])  # the second latents' images equal their partners': heavily penalised
    assert mode_seeking_pair("pixels", copies, D.image(copies), z, z2) > 1e4
    shifted = torch.cat([fake, fake[1:n + 1]])  # equal to other rows' images only: not penalised
    assert mode_seeking_pair("pixels", shifted, D.image(shifted), z, z2) < 10


def test_conditioning_augmentation_makes_eps_part_of_the_latent():
    """With ca, G(w, φ) reads w = [z, ε] through ĉ = μ(φ) + σ(φ) ⊙ ε; without it, φ's FC + LeakyReLU."""
    from gankit.models.text2image import ConditioningAugmentation, TextProjection, TextToImageGenerator

    torch.manual_seed(0)
    G = TextToImageGenerator(4, 8, 3, 3, 16, 4, ca=True).eval()
    assert isinstance(G.text, ConditioningAugmentation)
    z, emb = torch.randn(2, 4), torch.randn(2, 8)
    eps = torch.randn(2, 3)
    c, mu, logvar = G.text(emb, eps)
    assert torch.allclose(c, mu + (0.5 * logvar).exp() * eps)
    assert torch.equal(torch.stack(G.text.stats(emb)), torch.stack([mu, logvar]))
    want = G.body(torch.cat([z, c], 1))
    assert torch.allclose(G(torch.cat([z, eps], 1), emb), want)
    assert not torch.allclose(G(torch.cat([z, -eps], 1), emb), want)  # ε changes the image
    plain = TextToImageGenerator(4, 8, 3, 3, 16, 4).eval()
    assert isinstance(plain.text, TextProjection)
    assert torch.allclose(plain(z, emb), plain.body(torch.cat([z, plain.text(emb)], 1)))


def test_nearest_latents_picks_each_images_nearest_candidate():
    """Conditional IMLE's search against a naive loop: for each real image, the candidate latent
    whose image under that image's caption is nearest in squared pixel distance."""
    from gankit.recipes.text2image import nearest_latents

    class Toy(torch.nn.Module):  # image = latent's first component + caption's, broadcast over pixels
        def forward(self, w, emb):
            return (w[:, :1] + emb[:, :1])[:, :, None, None].expand(-1, 3, 4, 4) + w[:, 1:2, None, None]

    torch.manual_seed(0)
    n, m = 5, 7
    G, cand, emb, x = Toy(), torch.randn(n * m, 3), torch.randn(n, 2), torch.randn(n, 3, 4, 4)
    picks = []
    for i in range(n):
        d = [float(((G(cand[i * m + j : i * m + j + 1], emb[i : i + 1]) - x[i]) ** 2).sum()) for j in range(m)]
        picks.append(int(np.argmin(d)))
    assert len(set(picks)) > 1  # the nearest is not one fixed slot, so a wrong index shows
    got = nearest_latents(G, cand, emb, x)
    assert torch.equal(got, torch.stack([cand[i * m + j] for i, j in enumerate(picks)]))
    assert not got.requires_grad


def _naive_retrieval(emb, theta, caps, n_caps, tau):
    """p(i | t) (B, N) in float64 by loops: softmax over images of the cosine to their nearest caption / τ."""
    out = []
    for e in emb.double():
        s = [max(float(torch.dot(e, c) / (e.norm() * c.norm())) for c in caps[i, : n_caps[i]].double())
             for i in range(theta.shape[0])]
        out.append(torch.softmax(torch.tensor(s, dtype=torch.float64) / tau, 0))
    return torch.stack(out)


def test_retrieval_prior_against_a_naive_loop():
    """The prior's picks are the inverse CDF of softmax_i(s_i / τ) at u, s_i the cosine to image i's
    nearest valid caption (the padded rows never count), and it returns that image's θ. The table
    keeps captions in float16: probabilities agree with float64 to ~1e-3 at τ 0.05."""
    from gankit.models.text2image import RetrievalPrior

    g = torch.Generator().manual_seed(0)
    N, K, E, B, tau = 37, 4, 6, 64, 0.05
    theta, caps = torch.randn(N, E, generator=g), torch.randn(N, K, E, generator=g)
    n_caps = torch.randint(1, K + 1, (N,), generator=g)
    caps[torch.arange(K)[None] >= n_caps[:, None]] = 100.0  # padding: would win every max if read
    P = RetrievalPrior(N, K, E, tau, chunk=5)
    P.fill(theta, caps, n_caps)
    emb, u = torch.randn(B, E, generator=g), torch.rand(B, generator=g)
    want = _naive_retrieval(emb, theta, caps, n_caps, tau)  # (B, N)
    got = torch.softmax(P.scores(emb).double() / tau, 1)
    assert (got - want).abs().max() < 2e-3
    idx = P.index(emb, u)
    cdf = want.cumsum(1)
    for b, i in enumerate(idx.tolist()):  # u lies in image i's interval of the CDF (up to the float16 error)
        lo = float(cdf[b, i - 1]) if i else 0.0
        assert lo - 2e-3 <= float(u[b]) <= float(cdf[b, i]) + 2e-3
    assert len(set(idx.tolist())) > 10
    assert torch.equal(P(emb, u), theta[idx])


def test_retrieval_prior_splits_what_a_caption_leaves_open():
    """Two images share an open caption ("a red circle") and differ in a stated one ("small" /
    "large"): the open caption picks either with probability ½ (u below or above ½), each stated
    one only its own image; a third image, described by neither, is never picked."""
    from gankit.models.text2image import RetrievalPrior

    e = torch.eye(4)
    open_, small, large, blue = e[0], e[1] + e[0], e[2] + e[0], e[3]
    caps = torch.stack([torch.stack([open_, small]), torch.stack([open_, large]), torch.stack([blue, blue])])
    theta = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    P = RetrievalPrior(3, 2, 4, tau=0.01)
    P.fill(theta, caps, torch.tensor([2, 2, 2]))
    u = torch.linspace(0.01, 0.99, 99)
    picks = P.index(open_.expand(99, -1), u)
    assert set(picks[u < 0.49].tolist()) == {0} and set(picks[u > 0.51].tolist()) == {1}
    assert set(P.index(small.expand(99, -1), u).tolist()) == {0}
    assert set(P.index(large.expand(99, -1), u).tolist()) == {1}


def test_cond_default_and_what_an_old_export_means():
    """A new run's G reads θ(x) unless its encoder has no image side; a config saved before
    ``cond`` existed (no key) loads as G reading the caption, with the mode-seeking term on."""
    from gankit.config import from_dict
    from gankit.recipes.text2image import Text2ImageConfig

    new = Text2ImageConfig()
    assert new.cond == "auto" and new.image_cond and new.ms_weight == 0
    assert not Text2ImageConfig(encoder="minilm").image_cond and Text2ImageConfig(encoder="minilm").ms_weight == 0.1
    old = from_dict(Text2ImageConfig, {"lambda_ms": 0.1})
    assert old.cond == "text" and not old.image_cond and old.ms_weight == 0.1
    assert Text2ImageConfig(cond="text", lambda_ms=0.3).ms_weight == 0.3


@pytest.mark.parametrize("sets, want", [(["cond=text"], [8 + 3, 4]), (["cond=text", "variant=cls"], [8 + 3]),
                                        (["cond=text", "variant=int", "lambda_ms=0"], [8, 4]),
                                        (["cond=text", "ms_pairs=99"], [8 + 8, 4]),
                                        (["cond=text", "ca=true"], [8 + 3, 4]), ([], [8, 4]),
                                        (["lambda_ms=0.1"], [8 + 3, 4]), (["ca=true"], [8, 4]),
                                        (["cond=text", "lambda_imle=1", "imle_n=2", "imle_m=3"], [2 * 3, 8 + 3 + 2, 4]),
                                        (["lambda_imle=1", "imle_n=2", "imle_m=3"], [2 * 3, 8 + 2, 4])])
def test_text2image_step_batches_of_g(sets, want):
    """G's passes in one training step: the batch plus ms_pairs second latents in one pass (clamped
    to the batch), then GAN-INT's batch // 2 interpolations; every latent is z (4), and with ca
    [z, ε] (4 + t_dim 4). With the default cond (image) the prior's u is not G's (training never
    draws it) and the mode-seeking term is off unless set. With the IMLE term, its imle_n x imle_m candidates come first (no
    gradients), and the imle_n chosen latents ride in the main pass."""
    from gankit.engine.loop import Engine
    from gankit.recipes.base import DataSpec
    from gankit.train import load_data, resolve

    cls, hp, tcfg = resolve("text2image", data="shapes", steps=1, overrides=[
        *TINY_T2I, "size=16", "batch=8", "ms_pairs=3", "standing_stats=0", "progress=false", *sets])
    ds = load_data(tcfg.data, cls, hp, tcfg)
    eng = Engine(cls(hp, DataSpec.from_dataset(ds)), ds, tcfg, {})
    shapes_in = []
    eng.recipe.modules["G"].register_forward_pre_hook(lambda m, args: shapes_in.append(tuple(args[0].shape)))
    eng.fit(None)
    width = 8 if "ca=true" in sets else 4
    assert shapes_in == [(n, width) for n in want]


def test_tokenizer_and_unseen_captions():
    codes = tokenize(["A Red  Circle!", "é" * 5, "x" * 50], 16)
    assert codes.shape == (3, 16) and codes.dtype == torch.uint8
    assert codes[0, :13].all() and not codes[0, 13:].any() and not codes[1].any() and codes[2].all()
    torch.manual_seed(0)
    enc = CharCNNRNN(32, 8, 8, 6)
    out = enc(tokenize(["never seen before", "a tiny violet wedge"], 32))
    assert out.shape == (2, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("texts", [["a red circle", "a b"], ["x" * 20, "a small red circle on a black background"],
                                   ["z" * 90, "z" * 200, "ab é cd"]])
def test_char_cnn_rnn_equals_one_hot_convolution_over_the_full_length(texts):
    """The lookup first layer and the cut after the batch's last valid step change no output or
    gradient: forward equals the encoder computed as drawn, one-hot through conv1 over every character."""
    torch.manual_seed(0)
    enc = CharCNNRNN(128, 8, 6, 5)
    codes = tokenize(texts, 128)
    got, want = enc(codes), enc.one_hot_forward(codes)
    assert torch.allclose(got, want, atol=1e-6)
    g_got = torch.autograd.grad(got.square().sum(), list(enc.parameters()))
    g_want = torch.autograd.grad(want.square().sum(), list(enc.parameters()))
    for a, b in zip(g_got, g_want):
        assert torch.allclose(a, b, atol=1e-5)


def test_sampler_aligned_tensors_keep_the_plain_draws():
    x = torch.arange(20, dtype=torch.float32)[:, None].expand(20, 2).contiguous()
    plain, paired = BatchSampler(x, 4, seed=1), BatchSampler(x, 4, seed=1, aligned={"id": torch.arange(20)})
    for _ in range(12):  # across epochs
        a, b = plain.next(), paired.next()
        assert torch.equal(a, b["x"]) and torch.equal(b["id"].float(), b["x"][:, 0])


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["cub", "oxford", "paired"])
def test_text2image_trains_on_each_caption_layout(tmp_path, layout):
    data = {"cub": make_cub, "oxford": make_oxford, "paired": make_paired}[layout](tmp_path / layout)
    res = train("text2image", data=str(data), out=tmp_path / "run", steps=2, batch=4, size=16, overrides=TINY_T2I)
    assert res.step == 2
    cfg = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert set(cfg["modules"]) == {"G", "T", "P"} and cfg["data"]["info"]["text_encoder"]["arch"]["emb_dim"] == 8
    assert cfg["data"]["info"]["retrieval"]["images"] == len(load_dataset(str(data)).x)


def test_txt2img_cli_end_to_end_and_errors(tmp_path, capsys):
    run = tmp_path / "t2i"
    assert main(["-q", "train", "text2image", "--data", "shapes", "--size", "16", "--steps", "2", "--batch", "8",
                 "--out", str(run), *sum((["--set", s] for s in TINY_T2I), [])]) == 0
    capsys.readouterr()
    assert (run / "samples" / "latest.png").is_file()
    assert main(["txt2img", str(run), "a small red circle on a black background", "--n-per-caption", "3",
                 "--out", str(tmp_path / "one.npz")]) == 0
    arr = np.load(tmp_path / "one.npz")["arr_0"]
    assert arr.shape == (3, 16, 16, 3) and arr.dtype == np.uint8
    (tmp_path / "caps.txt").write_text("a red circle\n\nthe square is blue and large; background white\n")
    assert main(["txt2img", str(run), "--captions", str(tmp_path / "caps.txt"), "--n-per-caption", "2", "--seed", "5",
                 "--out", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 0
    assert main(["txt2img", str(run), "--interpolate", "a red circle", "a blue square", "--steps", "5",
                 "--n-per-caption", "2", "--out", str(tmp_path / "interp.npz")]) == 0
    assert np.load(tmp_path / "interp.npz")["arr_0"].shape == (20, 16, 16, 3)
    # the same seed gives the same images
    main(["txt2img", str(run), "a small red circle on a black background", "--n-per-caption", "3", "--out",
          str(tmp_path / "two.npz")])
    assert np.array_equal(arr, np.load(tmp_path / "two.npz")["arr_0"])
    capsys.readouterr()
    (tmp_path / "empty.txt").write_text("\n\n")
    cases = [
        (["txt2img", str(run), "", "--out", str(tmp_path / "x.png")], "empty caption"),
        (["txt2img", str(run), "   ", "--out", str(tmp_path / "x.png")], "empty caption"),
        (["txt2img", str(run), "--interpolate", "a red circle", "", "--out", str(tmp_path / "x.png")], "empty caption"),
        (["txt2img", str(run), "--captions", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x.png")],
         "no such captions file"),
        (["txt2img", str(run), "--captions", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "x.png")],
         "holds no caption"),
        (["txt2img", str(tmp_path / "nowhere"), "a red circle", "--out", str(tmp_path / "x.png")], "no such run"),
        (["txt2img", str(run), "a red circle", "--out", str(tmp_path / "x.gif")], ".png or .npz"),
        (["txt2img", str(run), "--out", str(tmp_path / "x.png")], "exactly one of"),
        (["txt2img", str(run), "日本語", "--out", str(tmp_path / "x.png")], "nothing the text encoder reads"),
        (["train", "text2image", "--data", "digits", "--steps", "1"], "needs captioned data"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "variant=both"], "expected one of"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "ms_pairs=0"], "ms_pairs must be >= 1"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "imle_m=0"], "imle_n, imle_m >= 1"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "encoder_post=whiten"],
         "needs encoder=minilm"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "cond=image", "--set", "encoder=minilm"],
         "encoder=minilm has none"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", "prior_tau=0"], "prior_tau must be > 0"),
        (["train", "text-encoder", "--data", "shapes", "--steps", "1", "--set", "negatives=all"],
         "bad value for negatives: 'all' (expected one of stated, class)"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--set", f"encoder={tmp_path / 'nope'}"],
         "no such run"),
        (["train", "text2image", "--data", "shapes", "--steps", "1", "--size", "16", "--set", f"encoder={run}"],
         "not a text-encoder run"),
    ]
    for argv, fragment in cases:
        code = main(["-q", *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert err.startswith("gankit: error:") and "\n" not in err and fragment in err, (argv, err)
    assert not (tmp_path / "x.png").exists()


def test_shuffled_caption_copies_keep_the_words():
    from gankit.recipes.text_encoder import with_shuffled_words

    caps = [["a small red circle on a black background", "a red disc"], ["a big blue box"]]
    out = with_shuffled_words(caps, 2, seed=0)
    assert [len(c) for c in out] == [6, 3] and out[0][:2] == caps[0] and out[1][:1] == caps[1]
    for orig, items in zip(caps, out):
        for j, s in enumerate(items[len(orig):]):
            assert sorted(s.split()) == sorted(orig[j % len(orig)].split())
    assert out == with_shuffled_words(caps, 2, seed=0) and with_shuffled_words(caps, 0, seed=0) == caps
    assert any(s not in orig for orig, items in zip(caps, out) for s in items[len(orig):])  # order changed
    # invented words: 1 to `fillers` of them, 2-6 letters each, the caption's own words all kept
    filled = with_shuffled_words(caps, 2, seed=0, fillers=3)
    counts = set()
    for orig, items in zip(caps, filled):
        assert items[: len(orig)] == orig
        for j, s in enumerate(items[len(orig):]):
            words, own = s.split(), orig[j % len(orig)].split()
            for w in own:
                words.remove(w)
            assert all(w.isalpha() and w.islower() and 2 <= len(w) <= 6 for w in words), s
            counts.add(len(words))
    assert counts <= {1, 2, 3} and len(counts) > 1  # how many varies
    assert with_shuffled_words(caps, 2, seed=0, fillers=0) == out  # no fillers: the same draws as before
