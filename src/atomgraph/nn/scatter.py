"""Segment sums and means with ``index_add_`` (no torch_scatter needed)."""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` [E, ...] into ``dim_size`` groups given by ``index`` [E]."""
    out = src.new_zeros([dim_size] + list(src.shape[1:]))  # noqa: RUF005 (TorchScript takes no * in a list)
    return out.index_add_(0, index, src)


def segment_counts(index: torch.Tensor, dim_size: int, dtype: torch.dtype) -> torch.Tensor:
    """How many entries of ``index`` [E] fall in each of ``dim_size`` groups: [dim_size] in ``dtype``.
    A sum of ones rather than ``torch.bincount``, whose output size depends on the data and so splits a
    compiled graph."""
    ones = torch.ones(index.shape, dtype=torch.long, device=index.device)  # (exact at any count)
    return torch.zeros(dim_size, dtype=torch.long, device=index.device).index_add_(0, index, ones).to(dtype)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Mean of rows of ``src`` per group (empty groups give 0)."""
    total = scatter_sum(src, index, dim_size)
    count = segment_counts(index, dim_size, src.dtype).clamp(min=1)
    return total / count.view(-1, *([1] * (src.dim() - 1)))
