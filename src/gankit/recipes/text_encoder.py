"""Text encoder for text-to-image: a character-level CNN-RNN learned jointly with an image encoder
(Reed, Akata, Lee & Schiele 2016, "Learning Deep Representations of Fine-Grained Visual
Descriptions", arXiv:1605.05395).

Objective (eq. 3-5): the symmetric structured joint embedding loss with compatibility
F(v, t) = θ(v)ᵀφ(t): each image must score the captions that describe it above those that do not
by a margin, and each caption the images it describes above the others
(``gankit.losses.sje_loss``). Each step draws a minibatch of images and one of each image's
captions at random.

Which captions describe an image (``negatives``). The paper: those of its class
(``negatives=class``): the dataset's labels where it has them (CUB species, Oxford-102 flower
classes); ``shapes`` would use (colour, shape, size, background), 108 classes; a generic captioned
folder makes every image its own class (instance-level matching). Position is not in the
``shapes`` class, because most captions leave it open; and a caption that leaves the size open is
pushed away from the images of the other size, which it describes too. So on ``shapes`` gankit
defaults to ``negatives=stated`` (elsewhere it falls back to classes): it reads which attribute
values each caption states (``gankit.data.shapes.parse_caption``) and makes caption j a negative
of image i exactly when it states a value image i lacks (``gankit.losses.misdescribes``): "a red
circle near the top on black" is a negative of the red circle at the bottom, "a red circle on
black" (size open) of neither size. Measured below, with ``fillers``.

Deviations: θ(v) is a small CNN learned from scratch (the paper uses fixed GoogLeNet features,
which are not available offline); the char-CNN has two conv+pool stages and a GRU (the paper:
three, and an RNN/LSTM), widths sized for a CPU; embeddings are 128-d (the paper: 1024; the GAN
compresses them to 128 anyway); Adam lr 2e-3 (the paper: RMSprop 2e-4, 300 epochs); the hinges
are averaged over the minibatch's negatives (see ``sje_loss``); ``negatives=stated`` (above).

Word-shuffle augmentation (not in the paper): each training caption also appears with its words in
a random order (``shuffled_copies`` = 1: half the drawn captions are shuffled). Trained on the
plain captions only, 3,000 steps on ``shapes`` gave an encoder whose colour was linearly readable
from 100% of training captions but only 80% of captions in the held-out templates (63-70% for
templates that put the colour after the shape or late in the sentence), so G could not follow
new wordings. Shuffling makes the encoder read which words a caption holds more than where they
stand; the order it still sees in half the draws keeps multi-word phrases ("snow white").

Invented words (``fillers`` = 2, not in the paper; 0: none): each shuffled copy also gets 1 to
``fillers`` words of 2-6 random letters at random places. Held-out templates bring words the
encoder never saw ("sits", "picture", "over"), and its reading of squares among them swung with
the seed (below: 19-98%). With ``fillers=2`` (4,000 steps, class negatives; ``text_encoder_probe``):
squares 100% for seeds 0 and 1 (without: 86.1% and 85.7%), shape 100% / 100%, colour 99.7% /
98.7%; but position fell to 56.5% / 46.0% (without: 88.4% / 82.3%), and 4,000 steps took 284 s
against 242-251 s (longer captions). With class negatives position is learned only by accident
(below), so fillers are meant with ``negatives=stated``.

How long: ``text2image`` and ``stackgan`` train theirs for ``encoder_steps`` = 4,000 at lr 2e-3
(two thirds of the time of the earlier 6,000 at 1e-3, which took 3.3 minutes on 2 cores).
``benchmarks/text_encoder_probe.py`` (nearest-centroid probe on held-out templates) read the shape
of captions about squares, at lr 1e-3, at 39% after 3,000 steps, 74% after 4,000 and 100% after
6,000 (circles and triangles 99.9-100% throughout); the 15-minute text2image check's shape accuracy
went from 64.9% to 76.9% with the 6,000-step encoder. The same probe on three encoders trained
with the current code (``gankit train text-encoder --data shapes --size 32 --steps N --set lr=...``):

    steps, lr        colour  shape  squares  median cosine: same attributes / shape differs
    6,000, 1e-3      92.4%   99.7%  99.0%    0.90 / 0.64
    4,000, 1e-3      96.5%   89.1%  67.2%    0.94 / 0.62
    4,000, 2e-3      96.8%   98.8%  96.9%    0.86 / 0.54   (the default then)

so twice the learning rate gives in 4,000 steps nearly what 1e-3 needs 6,000 for, and pulls
captions of different shapes further apart. The thresholds text2image tuned on the 6,000-step
encoder hold: ``text_encoder_probe.py --pairs`` finds 5.2% / 5.0% of wrong captions fitting small /
large images (6,000 steps: 5.0% / 3.8%) and 4.1% of fitting pairs left as contrastive negatives
(3.2%). On a machine at 0.58x the speed of the one above, 4,000 steps took 3.7-4.7 minutes over
four runs, and ``stackgan``'s 20-minute check with this (class-negative, filler-free) encoder
passed there (19.8 minutes, Stage-II colour 94.0%, shape 90.6%; see the README). The
char-CNN-RNN's first layer has since been computed as a lookup (``gankit.models.text_encoder``;
same maths): ``python benchmarks/throughput.py --text-encoder``
times the step 1.20x faster. 4,000 steps took 251 s with data (``gankit train text-encoder
--data shapes --size 32 --steps 4000``); inside the 15-minute text2image check, on the same day,
preparing the data (shapes, this encoder, the captions' embeddings) took 4.6 minutes. Since
``--minutes`` counts data preparation, the time the encoder saves goes to the GAN.

``image_width`` 32, not 16. Half as wide, the image encoder made the encoder's training faster
(4,000 steps in 175 s against 251 s with data, one after the other) and the probe read shape
better (99.7% against 95.4%, squares 99.0% against 86.1%, seed 0). In the 15-minute text2image
check (two seeds, one day) it left the GAN more time and raised shape from 80.2% / 80.3% to
88.6% / 89.2%, but G then followed stated positions for 20% / 39% of captions (chance: 20%)
against 73% / 71%: with class negatives the text side learns position words only through what
the image side happens to carry, and the narrower one stops carrying it (the probe: position
20.9% against 88.4%).

``negatives=stated`` with ``fillers=2`` (the defaults since 2026-12-02). ``stated`` alone trains
the better encoder: probe, seed 0, 4,000 steps, no fillers, 242 s: colour 99.9% against 95.9%,
shape 96.9% against 95.4%, position 97.7% against 88.4%; with ``image_width=16`` position stays at
98-100% (seeds 0 and 1), which was the point. But alone it did not lift shape, the attribute the
15-minute text2image check lacks (``python benchmarks/text2image_shapes.py [--seed 1]`` from
snapshots whose defaults were the row's, one day, one run after another; rows without
``fillers`` had none):

    encoder                      seed  GAN steps  colour  shape  position  probe: squares
    class (previous default)     1     2,120      98.6%   79.6%  71.2%     85.7%
    stated                       0     2,062      97.9%   80.5%  77.4%     90.6%
    stated                       1     1,974      98.8%   72.9%  79.3%     37.6%
    stated, image_width=16       0     2,101      98.6%   76.4%  76.9%     19.0%
    stated, image_width=16       1     2,242      98.4%   84.4%  71.2%     98.2%
    stated, fillers=2 (default)  0     1,843      99.0%   83.0%  78.4%
    stated, fillers=2 (default)  1     2,076      98.5%   88.1%  67.8%

(the day before, class: 80.2% / 80.3% shape with seeds 0 / 1). The check's shape roughly
follows one number more than the negatives rule: how well the encoder reads *squares* in
held-out templates (the probe's nearest-centroid accuracy, as low for "square" as for "box" or
"block"; circles and triangles are read 99.7-100% by every encoder here). It swings from 19% to
98% with the seed and setting (the 19% encoder put 69% of held-out square captions nearest the
triangles'). Shape in the check will not be reliable until the encoder reads squares in unseen
wordings reliably. That is what ``fillers`` is for (its paragraph above: squares 100% on both
seeds); with ``stated`` it gave the two best shapes of the day that were not position-blind, 83.0% and 88.1% (position
78.4% / 67.8%; class 71.2%), with fewer GAN steps since the encoder took longer.

``gankit train text-encoder --data shapes|PATH`` trains one; ``text2image`` trains one itself
when none is given. Its export holds ``T`` (text) and ``V`` (image); ``text2image`` uses ``T``
frozen.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from gankit.errors import UsageError
from gankit.losses import different_class, misdescribes, sje_loss
from gankit.models.text_encoder import CharCNNRNN, ImageEncoder, tokenize
from gankit.recipes.base import Recipe, StepContext

VERSION = "char-cnn-rnn-v3"  # v2: word-shuffled captions; v3: negatives=stated, fillers=2


@dataclass
class TextEncoderConfig:
    max_chars: int = 128  # characters read per caption (Reed: 201)
    text_width: int = 64  # channels of the first temporal convolution (the second has twice)
    text_hidden: int = 128  # GRU units
    emb_dim: int = 128  # joint embedding size (Reed: 1024)
    image_width: int = 32  # channels of the image encoder's first convolution
    margin: float = 1.0
    negatives: Literal["stated", "class"] = "stated"  # an image's negative texts (see the docstring)
    shuffled_copies: int = 1  # word-shuffled copies per caption drawn in training (0: Reed's; see docstring)
    fillers: int = 2  # each shuffled copy gets 1..fillers invented words (0: none; see docstring)
    lr: float = 2e-3  # see the docstring: 4,000 steps at 2e-3 read shape as 6,000 at 1e-3 did
    batch: int = 64
    size: int | None = None  # image side (the image encoder works at 32x32 whatever the side)

    def validate(self) -> None:
        for key in ("max_chars", "text_width", "text_hidden", "emb_dim", "image_width", "batch"):
            if getattr(self, key) <= 0:
                raise UsageError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("shuffled_copies", "fillers"):
            if getattr(self, key) < 0:
                raise UsageError(f"{key} must be 0 or more, got {getattr(self, key)}")
        if self.max_chars < 16:
            raise UsageError(f"max_chars must be at least 16, got {self.max_chars}")
        if not self.lr > 0 or not self.margin > 0:
            raise UsageError("lr and margin must be positive")

    def text_arch(self) -> dict[str, int]:
        """What rebuilds ``T`` (saved with a text2image run)."""
        return {"max_chars": self.max_chars, "width": self.text_width, "hidden": self.text_hidden,
                "emb_dim": self.emb_dim}


def caption_classes(ds: Any) -> Tensor:
    """The joint-embedding class of every item (see the module docstring)."""
    if ds.attributes is not None:
        from gankit.data.shapes import class_of

        return class_of(ds.attributes)
    if ds.labels is not None:
        return ds.labels
    return torch.arange(ds.x.shape[0])


def stated_attributes(captions: list[list[str]], copies: int) -> Tensor:
    """int8 (N, K, A): the ``shapes`` attribute value each caption states (-1: left open), for the
    captions of :func:`with_shuffled_words` (``copies`` shuffled copies inherit their original's
    row: a shuffled "near the top" no longer parses, but it still says so). K as in
    :func:`caption_tokens`; padding rows are -1."""
    from gankit.data import shapes

    names = list(shapes.ATTRIBUTES)
    k = max(len(c) for c in captions) * (copies + 1)
    out = torch.full((len(captions), k, len(names)), -1, dtype=torch.int8)
    for i, caps in enumerate(captions):
        for j, c in enumerate(caps):
            for a, v in shapes.parse_caption(c).items():
                out[i, j :: len(caps), names.index(a)][: copies + 1] = shapes.ATTRIBUTES[a].index(v)
    return out


def caption_tokens(captions: list[list[str]], max_chars: int) -> tuple[Tensor, Tensor]:
    """(uint8 codes (N, K, max_chars), int64 caption counts (N,)) with K the most captions of an item."""
    k = max(len(c) for c in captions)
    flat = [c[i] if i < len(c) else "" for c in captions for i in range(k)]
    codes = tokenize(flat, max_chars).view(len(captions), k, max_chars)
    return codes, torch.tensor([len(c) for c in captions], dtype=torch.int64)


def with_shuffled_words(captions: list[list[str]], copies: int, seed: int, fillers: int = 0) -> list[list[str]]:
    """Each item's captions followed by ``copies`` word-order permutations of each (seeded); with
    ``fillers`` > 0 each permutation also gets 1 to ``fillers`` invented words (2-6 random letters)
    at random places. An invented word may happen to be a real one: on ``shapes`` about 1 in 800
    is ("in", "on", "is", "at"; 5 in 72,885 an attribute word such as "red")."""
    if copies == 0:
        return captions
    rng = random.Random(seed)
    out = []
    for caps in captions:
        extra = []
        for _ in range(copies):
            for c in caps:
                words = c.split()
                rng.shuffle(words)
                for _ in range(rng.randint(1, fillers) if fillers else 0):
                    invented = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 6)))
                    words.insert(rng.randrange(len(words) + 1), invented)
                extra.append(" ".join(words))
        out.append(caps + extra)
    return out


def pick_caption(ctx: StepContext, n_caps: Tensor) -> Tensor:
    """One random caption index per item (B,), drawn from the training noise stream."""
    return caption_index(ctx.rand(n_caps.shape[0]), n_caps)


def caption_index(u: Tensor, n_caps: Tensor) -> Tensor:
    """Uniform draws ``u`` in [0, 1) (B,) -> caption indices (B,) below each item's ``n_caps``."""
    return (u.to(n_caps.device) * n_caps).long().clamp_(max=n_caps - 1)


class TextEncoderRecipe(Recipe):
    name = "text-encoder"
    Config = TextEncoderConfig
    kinds = ("image",)
    default_data = "shapes"
    sample_shape = None  # generates embeddings, not images: (n, emb_dim); set per instance

    @classmethod
    def prepare_data(cls, ds: Any, cfg: TextEncoderConfig, tcfg: Any) -> Any:
        if not ds.captions:
            raise UsageError(f"{cls.name} needs captioned data (shapes, CUB, Oxford-102 or a folder with a .txt "
                             f"per image); {ds.name} has no captions")
        if tcfg.eval_every:
            raise UsageError("--eval-every scores generated images; a text encoder generates none (its log has "
                             "retrieval_top1; evaluate the text2image run trained with it)")
        training = with_shuffled_words(ds.captions, cfg.shuffled_copies, tcfg.seed, cfg.fillers)
        codes, n = caption_tokens(training, cfg.max_chars)
        ds.aligned = {"tokens": codes, "n_caps": n}
        if cfg.negatives == "stated" and ds.attributes is not None:
            stated = stated_attributes(ds.captions, cfg.shuffled_copies)  # (N, K, A)
            ds.aligned |= {"stated": stated[:, : codes.shape[1]], "attrs": ds.attributes}
        else:
            ds.aligned["cls"] = caption_classes(ds)
        return ds

    def __init__(self, cfg: TextEncoderConfig, spec: Any) -> None:
        super().__init__(cfg, spec)
        self.sample_shape = (cfg.emb_dim,)
        self.examples = list(spec.info.get("example_captions") or ["a caption"])

    def build(self, device: torch.device) -> None:
        c = self.cfg
        T = CharCNNRNN(**c.text_arch())
        V = ImageEncoder(self.spec.shape[0], c.image_width, c.emb_dim)
        self.modules = {"T": T.to(device), "V": V.to(device)}
        self.optimizers = {"joint": torch.optim.Adam([*T.parameters(), *V.parameters()], lr=c.lr)}

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        T, V = self.modules["T"], self.modules["V"]
        k = pick_caption(ctx, batch["n_caps"])
        rows = torch.arange(len(k), device=k.device)
        codes = batch["tokens"][rows, k]  # (B, L)
        if "stated" in batch:
            negative = misdescribes(batch["stated"][rows, k].long(), batch["attrs"])  # (B, B)
        else:
            negative = different_class(batch["cls"])
        img, txt = V(batch["x"]), T(codes)  # (B, E) each
        loss = sje_loss(img, txt, negative, self.cfg.margin)
        ctx.optimize("joint", loss)
        with torch.no_grad():  # caption -> image retrieval in the batch (any image it describes counts)
            best = (txt.detach() @ img.detach().T).argmax(1)  # (B,): caption j's image
            hit = (~negative[best, rows]).float().mean()
        return {"loss_sje": loss.detach(), "retrieval_top1": hit}

    def sample_inputs(self, n: int, generator: torch.Generator) -> Tensor:
        return tokenize([self.examples[i % len(self.examples)] for i in range(n)], self.cfg.max_chars)

    @torch.no_grad()
    def generate(self, modules: dict[str, Any], inputs: Tensor) -> Tensor:
        T = modules["T"]
        return T(inputs.to(next(T.parameters()).device))  # (n, emb_dim)
