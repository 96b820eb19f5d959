"""Recipe registry: one module per paper, imported only when asked for (keeps the CLI fast)."""

from __future__ import annotations

import difflib
import importlib

from gankit.errors import UsageError

# name -> (module, class, one-line summary); the summary is shown by `gankit train --help`.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "gan": ("gankit.recipes.gan", "GANRecipe", "original GAN (Goodfellow et al. 2014): MLP G and D; 2-D toys or flattened images"),
    "dcgan": ("gankit.recipes.dcgan", "DCGANRecipe", "DCGAN (Radford et al. 2015): convolutional G and D, power-of-two sides >= 16 px"),
    "cyclegan": ("gankit.recipes.cyclegan", "CycleGANRecipe", "CycleGAN (Zhu et al. 2017): unpaired translation A <-> B, ResNet G, PatchGAN D"),
    "text2image": ("gankit.recipes.text2image", "Text2ImageRecipe", "GAN-INT-CLS (Reed et al. 2016): images from captions, matching-aware D"),
    "stackgan": ("gankit.recipes.stackgan", "StackGANRecipe", "StackGAN (Zhang et al. 2017): Stage-I sketch, Stage-II at 4x the side, conditioning augmentation"),
    "text-encoder": ("gankit.recipes.text_encoder", "TextEncoderRecipe", "char-CNN-RNN text encoder (Reed et al. 2016) for text2image"),
}


def get_recipe(name: str) -> type:
    """The recipe class registered as ``name``; unknown names list the valid ones."""
    if name not in REGISTRY:
        hint = difflib.get_close_matches(name, REGISTRY, n=1)
        more = f"; did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"unknown recipe {name!r} (valid: {', '.join(REGISTRY)}{more})")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)
