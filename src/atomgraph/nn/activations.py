"""Activation functions by name, including SchNet's shifted softplus."""

from __future__ import annotations

import math

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """ssp(x) = ln(0.5 e^x + 0.5) = softplus(x) - ln 2, so ssp(0) = 0 (SchNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


_ACTIVATIONS = {
    "ssp": ShiftedSoftplus,
    "shifted_softplus": ShiftedSoftplus,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """A new activation module from its name (ssp, silu, relu, gelu, tanh, softplus, elu, leaky_relu)."""
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None
