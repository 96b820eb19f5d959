"""Multilayer-perceptron G and D of the original GAN (Goodfellow et al. 2014, arXiv:1406.2661).

G maps z ~ N(0, I) to a point (2-D toys) or a flattened image; D maps a sample to one logit.

Deviations from the paper: ReLU/LeakyReLU instead of the paper's maxout units and no dropout in D
(maxout + dropout were tuned for 2014-era MNIST; the toy mixtures train faster and more stably
without them); z is Gaussian, not uniform.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _mlp(sizes: list[int], act: nn.Module) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(i, o), act]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return layers


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> x (B, *out_shape); tanh output for images, linear for points."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: int, depth: int, tanh: bool) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        out = 1
        for d in out_shape:
            out *= d
        layers = _mlp([z_dim] + [hidden] * depth + [out], nn.ReLU(inplace=True))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, *out_shape)


class MLPDiscriminator(nn.Module):
    """x (B, *in_shape) -> logit (B,)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int, depth: int) -> None:
        super().__init__()
        inp = 1
        for d in in_shape:
            inp *= d
        self.net = nn.Sequential(*_mlp([inp] + [hidden] * depth + [1], nn.LeakyReLU(0.2, inplace=True)))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.flatten(x, 1)).squeeze(1)  # (B,)
