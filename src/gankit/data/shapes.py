"""``shapes``: a captioned toy dataset generated from a seed, for text-to-image models.

One object on a flat background, with the exact values below so results are comparable:

- backgrounds: black (0,0,0), gray (128,128,128), white (255,255,255)
- colours: red (230,40,40), yellow (235,215,40), green (40,190,60), cyan (40,200,220),
  blue (40,70,230), purple (160,60,210)
- shapes: circle, square (axis-aligned), triangle (upright, equilateral)
- sizes: small (object 30% of the image width) and large (55%)
- positions: centre, left, right, top, bottom (offset from the centre), jitter ±3% of the side

Every combination (3 x 6 x 3 x 2 x 5 = 540) appears ``REPEATS`` = 18 times with fresh jitter:
9,720 images. Objects are drawn at 4x and downsampled (antialiased edges).

Captions: each image has ``CAPTIONS_PER_IMAGE`` = 5, always the plain template
``"a {size} {colour} {shape} on a {background} background"`` (canonical words, parsed back by
:func:`parse_caption`) plus 4 distinct *training* templates with random synonyms. Some templates
leave size or background open or add the position. ``HELD_OUT_TEMPLATES`` are never used for
training captions; evaluation writes captions with them (:func:`held_out_captions`) to test that
a model understands sentences it has not seen.
"""

from __future__ import annotations

import functools
import math
import random
import re

import numpy as np
import torch
from PIL import Image, ImageDraw

BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
COLOURS = {"red": (230, 40, 40), "yellow": (235, 215, 40), "green": (40, 190, 60), "cyan": (40, 200, 220),
           "blue": (40, 70, 230), "purple": (160, 60, 210)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.30, "large": 0.55}
POSITIONS = ("centre", "left", "right", "top", "bottom")
#: attribute name -> its values, in the column order of ``Dataset.attributes``
ATTRIBUTES = {"colour": tuple(COLOURS), "shape": SHAPES, "size": tuple(SIZES), "background": tuple(BACKGROUNDS),
              "position": POSITIONS}
REPEATS = 18
CAPTIONS_PER_IMAGE = 5
DEFAULT_SIZE = 64
JITTER = 0.03
SUPERSAMPLE = 4

SYNONYMS = {
    "small": ("small", "little", "tiny"), "large": ("large", "big", "huge"),
    "red": ("red", "scarlet"), "yellow": ("yellow", "golden"), "green": ("green", "emerald"),
    "cyan": ("cyan", "turquoise"), "blue": ("blue", "cobalt"), "purple": ("purple", "violet"),
    "circle": ("circle", "disc", "round dot"), "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"),
    "black": ("black", "dark"), "gray": ("gray", "grey"), "white": ("white", "snow white"),
    "centre": ("in the centre", "in the middle"), "left": ("on the left", "near the left edge"),
    "right": ("on the right", "near the right edge"), "top": ("near the top", "at the top"),
    "bottom": ("near the bottom", "at the bottom"),
}
PLAIN_TEMPLATE = "a {size} {colour} {shape} on a {background} background"
TRAIN_TEMPLATES = (
    PLAIN_TEMPLATE,
    "there is a {size} {colour} {shape} {position} on {background}",
    "a {colour} {shape}, {size}, {background} background",
    "{background} background with a {colour} {shape} {position}",  # size left open
    "a {size} {shape} coloured {colour} on {background}",
    "this image shows a {colour} {shape} on a {background} backdrop",  # size and position open
    "{size} {colour} {shape} {position}, the background is {background}",
    "a {colour} {size} {shape} against {background}",
    "a {colour} {shape}",  # only colour and shape
)
HELD_OUT_TEMPLATES = (
    "on a {background} background sits a {size} {colour} {shape}",
    "a picture of a {shape} that is {colour} and {size}, on {background}",
    "the {shape} is {colour} and {size}; background {background}",
    "{colour} {shape} {position} over a {background} background, {size}",
    "i see a {colour} {shape} against a {background} background",  # size and position open
)
#: the held-out caption whose open attributes (size, position) show sample diversity
DIVERSITY_TEMPLATE = HELD_OUT_TEMPLATES[-1]


def mentioned(template: str) -> tuple[str, ...]:
    """The attributes a template states (the others are left open)."""
    return tuple(a for a in ATTRIBUTES if "{" + a + "}" in template)


def _fill(template: str, attrs: dict[str, str], rng: random.Random | None) -> str:
    words = {a: (rng.choice(SYNONYMS[v]) if rng else v) for a, v in attrs.items()}
    return template.format(**words)


def caption(attrs: dict[str, str], template: str = PLAIN_TEMPLATE, rng: random.Random | None = None) -> str:
    """A caption for ``attrs`` (attribute -> value name); canonical words unless ``rng`` picks synonyms."""
    return _fill(template, attrs, rng)


def parse_caption(text: str) -> dict[str, str]:
    """Attributes named in a caption (any template, synonyms included); unknown words are ignored.

    Object colours and background colours use disjoint words, so each word names one attribute.
    """
    t = " " + " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split()) + " "
    found: dict[str, str] = {}
    # longest phrases first, each consumed once found: "snow white" is not also read as "white"
    phrases = sorted(((syn, attr, value) for attr, values in ATTRIBUTES.items() for value in values
                      for syn in SYNONYMS[value]), key=lambda p: -len(p[0]))
    for syn, attr, value in phrases:
        key = f" {syn} "
        if key in t and attr not in found:
            found[attr] = value
            t = t.replace(key, " # ", 1)
    return found


def _draw(shape: str, colour: tuple[int, int, int], bg: tuple[int, int, int], rel: float, cx: float, cy: float,
          size: int) -> np.ndarray:
    big = size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), bg)
    d = ImageDraw.Draw(img)
    w = rel * big  # object width
    x, y = cx * big, cy * big
    if shape == "circle":
        d.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=colour)
    elif shape == "square":
        s = w * 0.886  # same area as the circle of width w, so size reads by area, not by width alone
        d.rectangle([x - s / 2, y - s / 2, x + s / 2, y + s / 2], fill=colour)
    else:  # equilateral, upright, centred on its bounding box
        h = w * math.sqrt(3) / 2
        d.polygon([(x - w / 2, y + h / 2), (x + w / 2, y + h / 2), (x, y - h / 2)], fill=colour)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


def _centre(position: str, rel: float, jx: float, jy: float) -> tuple[float, float]:
    off = 0.8 * (1 - rel) / 2  # offset that keeps the object inside the frame
    dx, dy = {"centre": (0, 0), "left": (-off, 0), "right": (off, 0), "top": (0, -off), "bottom": (0, off)}[position]
    return 0.5 + dx + jx, 0.5 + dy + jy


def draw_attributes(attrs: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """uint8 images (N, 3, size, size) for int attribute rows (N, 5) (column order of ``ATTRIBUTES``)."""
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-JITTER, JITTER, (len(attrs), 2))
    out = np.empty((len(attrs), size, size, 3), dtype=np.uint8)
    cols, shapes, sizes, bgs = list(COLOURS.values()), SHAPES, list(SIZES.values()), list(BACKGROUNDS.values())
    for i, (c, s, z, b, p) in enumerate(attrs.tolist()):
        cx, cy = _centre(POSITIONS[p], sizes[z], *jitter[i])
        out[i] = _draw(shapes[s], cols[c], bgs[b], sizes[z], cx, cy, size)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def all_combinations(repeats: int = 1) -> torch.Tensor:
    """int64 (540 * repeats, 5): every attribute combination ``repeats`` times."""
    grids = torch.cartesian_prod(*[torch.arange(len(v)) for v in ATTRIBUTES.values()])
    return grids.repeat(repeats, 1)


def names(row: list[int] | torch.Tensor) -> dict[str, str]:
    """An attribute row -> {attribute: value name}."""
    return {a: ATTRIBUTES[a][int(i)] for a, i in zip(ATTRIBUTES, row)}


def training_captions(attrs: torch.Tensor, seed: int) -> list[list[str]]:
    """``CAPTIONS_PER_IMAGE`` captions per row: the plain one plus distinct training templates."""
    rng = random.Random(seed)
    out = []
    for row in attrs.tolist():
        a = names(row)
        others = rng.sample(TRAIN_TEMPLATES[1:], CAPTIONS_PER_IMAGE - 1)
        out.append([caption(a)] + [caption(a, t, rng) for t in others])
    return out


def held_out_captions(attrs: torch.Tensor, seed: int) -> tuple[list[str], list[tuple[str, ...]]]:
    """One held-out-template caption per attribute row, and the attributes each caption states."""
    rng = random.Random(seed)
    caps, ment = [], []
    for row in attrs.tolist():
        t = HELD_OUT_TEMPLATES[rng.randrange(len(HELD_OUT_TEMPLATES))]
        caps.append(caption(names(row), t, rng))
        ment.append(mentioned(t))
    return caps, ment


def generate(size: int = DEFAULT_SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    """(images uint8 (9720, 3, size, size), attributes int64 (9720, 5), captions) for ``seed``."""
    x, attrs, caps = _generate(size, seed)  # drawn once per process: callers get copies
    return x.clone(), attrs.clone(), [list(c) for c in caps]


@functools.lru_cache(maxsize=4)
def _generate(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    gen = torch.Generator().manual_seed(seed)
    attrs = all_combinations(REPEATS)
    attrs = attrs[torch.randperm(len(attrs), generator=gen)]
    x = draw_attributes(attrs, size, seed)
    return x, attrs, training_captions(attrs, seed)


#: a pixel belongs to the object when it differs from the background colour by more than this in some channel
AREA_THRESHOLD = 60


def object_area(images: torch.Tensor, backgrounds: list[str]) -> torch.Tensor:
    """(N,) the share of each image's pixels off its background colour (by more than
    ``AREA_THRESHOLD`` in some channel): the object's area, read from the pixels, with no classifier.
    ``images`` (N, 3, H, W) uint8, or float in [-1, 1]; ``backgrounds`` (N,) names."""
    x = images.float() if images.dtype == torch.uint8 else images.clamp(-1, 1).add(1).mul(127.5).round()  # as saved
    bg = torch.tensor([BACKGROUNDS[b] for b in backgrounds], dtype=torch.float, device=x.device)[:, :, None, None]
    return ((x - bg).abs().amax(1) > AREA_THRESHOLD).float().mean((1, 2))


@functools.lru_cache(maxsize=4)
def size_reference(side: int) -> dict[str, tuple[float, float]]:
    """Per shape, the median ``object_area`` of the data's (seed 0) small and large images at ``side`` px."""
    x, attrs, _ = _generate(side, 0)
    a = object_area(x, [ATTRIBUTES["background"][int(b)] for b in attrs[:, 3]])
    return {s: tuple(float(a[(attrs[:, 1] == i) & (attrs[:, 2] == j)].median()) for j in range(len(SIZES)))
            for i, s in enumerate(SHAPES)}


def class_of(attrs: torch.Tensor) -> torch.Tensor:
    """The text encoder's class for ``negatives=class``: (colour, shape, size, background) -> 0..107."""
    c, s, z, b = attrs[:, 0], attrs[:, 1], attrs[:, 2], attrs[:, 3]
    return ((c * len(SHAPES) + s) * len(SIZES) + z) * len(BACKGROUNDS) + b


def example_captions() -> list[str]:
    """Eight fixed held-out-template captions (sample grids show one per row)."""
    rows = [[0, 0, 1, 0, 0], [1, 2, 0, 1, 1], [2, 1, 1, 2, 0], [3, 0, 0, 0, 3],
            [4, 1, 0, 2, 4], [5, 2, 1, 1, 0], [0, 1, 0, 2, 2], [4, 0, 1, 1, 0]]
    return [caption(names(r), HELD_OUT_TEMPLATES[i % 3]) for i, r in enumerate(rows)]
