"""Dense layers on AMD CPUs through oneDNN, which is faster there than PyTorch's default matrix product.

PyTorch's CPU builds multiply float32 matrices with MKL. On AMD processors MKL runs its AVX2 code even
where the processor has AVX-512 (Zen 4 and 5): ~50 GMAC/s on one core of the benchmark machine, while
oneDNN's inner product -- also in every x86 build of PyTorch, used by its inference paths -- runs the same
[4,470 x 64] x [64 x 64] product ~2x faster. :func:`dense` (and :class:`Dense`, an ``nn.Linear`` whose
parameters and ``state_dict`` are the same) sends a float32 CPU product there, the product of its input
gradient too; the weight gradient, a product over the rows, stays with MKL (oneDNN's inner product is
slower there).

oneDNN builds and caches a kernel for every row count it sees, and building one costs more than the
product: rows that vary from batch to batch would rebuild all the time. So oneDNN gets only row counts
that are multiples of :data:`ROWS`; other products go to MKL as before. A model that wants the fast path
pads its rows (pairs, atoms) by :func:`row_padding` with rows that contribute nothing (SchNet does), so a
training run sees a few dozen row counts and builds their kernels once.

Where: AMD processors with AVX-512 (``torch.backends.cpu.get_cpu_capability()``; on Intel's MKL runs
AVX-512 itself, and this was not measured there), float32, tensors on the CPU, not in TorchScript (an
exported model keeps plain products, so engines without atomgraph load it). ``ATOMGRAPH_ONEDNN=0``
switches it off (read at import). Batches of very different sizes (crystals of a few to thousands of
atoms) see more row counts; oneDNN keeps 1,024 kernels (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``). The
operator ``atomgraph::onednn_dense`` is opaque to ``torch.compile`` (a fake implementation gives its
shapes); its gradients are differentiable again (forces, then their parameter gradients).

Measured: ``benchmarks/qm9_schnet_vs_pyg.py`` (README).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

#: oneDNN takes products whose row count is a multiple of this (its kernels are cached per row count)
ROWS = 128

#: ``ATOMGRAPH_ONEDNN=0`` keeps every product with MKL
OPT_OUT = ("ATOMGRAPH_ONEDNN", "0")


def cpuinfo_field(name: str) -> str:
    """A field of the first processor in ``/proc/cpuinfo`` (``vendor_id``: ``AuthenticAMD``,
    ``GenuineIntel``; ``model name``); empty where the file or the field is not."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN's inner product for dense tensors."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn_usable() -> bool:
    if os.environ.get(OPT_OUT[0]) == OPT_OUT[1] or not onednn_available():
        return False
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    amd = cpuinfo_field("vendor_id") == "AuthenticAMD"  # (where MKL runs AVX2; measured there only)
    return avx512 and amd


#: whether float32 CPU products may go to oneDNN on this machine (fixed at import)
ONEDNN = _onednn_usable()


#: the operator's home: a low-level definition, as the calls of a compiled graph pay ~1 us to reach its
#: Python kernel through it (``torch.library.custom_op``'s wrappers cost ~9 us a call)
_LIBRARY = torch.library.Library("atomgraph", "FRAGMENT")
_LIBRARY.define("onednn_dense(Tensor x, Tensor weight, Tensor? bias) -> Tensor")


def _onednn_dense_cpu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` for float32 CPU tensors: ``x`` [M, K], ``weight`` [N, K], ``bias`` [N] or
    None -> [M, N]; through oneDNN when M is a positive multiple of :data:`ROWS`, MKL otherwise."""
    rows = x.shape[0]
    if rows == 0 or rows % ROWS:
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias, "none", [], "")


_LIBRARY.impl("onednn_dense", _onednn_dense_cpu, "CPU")


def _onednn_dense_shape(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The operator's output, uncomputed: its Meta kernel, which fake tensors (torch.compile's tracing)
    run too. (``torch.library.register_fake`` would read this file's source at import: ~0.1 s of every
    start-up once torch and PyG are loaded.)"""
    return x.new_empty(x.shape[0], weight.shape[0])


_LIBRARY.impl("onednn_dense", _onednn_dense_shape, "Meta")


class _OneDNNDense(torch.autograd.Function):
    """The operator with its gradients: the input's again through it (so a second derivative works, as
    force training needs), the weight's (a product over the rows) through MKL."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.atomgraph.onednn_dense(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        grad_x = _OneDNNDense.apply(grad, weight.t().contiguous(), None) if ctx.needs_input_grad[0] else None
        grad_weight = grad.t() @ x if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def onednn_applies(x: torch.Tensor) -> bool:
    """Whether :func:`dense` may send products of tensors like ``x`` (float32, on the CPU) to oneDNN."""
    return ONEDNN and x.dtype == torch.float32 and x.device.type == "cpu"


def row_padding(rows: int) -> int:
    """How many rows to add to ``rows`` to reach the next multiple of :data:`ROWS` (a model padding its
    rows so that :func:`dense` sends them to oneDNN, where :func:`onednn_applies`)."""
    return (-rows) % ROWS


def dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; for a float32 CPU ``x`` [M, K] through oneDNN where its rows allow."""
    if torch.jit.is_scripting():
        return F.linear(x, weight, bias)
    if x.dim() == 2 and onednn_applies(x):
        return _OneDNNDense.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class Dense(nn.Linear):
    """``nn.Linear`` computed by :func:`dense` (same parameters, initialisation and ``state_dict``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense(x, self.weight, self.bias)
