"""Multilayer perceptron."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from atomgraph.nn.activations import activation


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last).

    sizes: [in, hidden..., out]; e.g. ``MLP([64, 32, 1], "ssp")`` maps [*, 64] to [*, 1].
    """

    def __init__(self, sizes: Sequence[int], act: str = "silu", dropout: float = 0.0, bias_last: bool = True):
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        layers: list[nn.Module] = []
        for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            last = k == len(sizes) - 2
            layers.append(nn.Linear(n_in, n_out, bias=bias_last or not last))
            if not last:
                layers.append(activation(act))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:  # Sequential's loop, written out: TorchScript compiles no super() call
            x = layer(x)
        return x
