"""Smooth, differentiable encodings of interatomic distances, as ``torch.nn.Module`` s.

Every module takes distances ``d`` in Å, shape ``[E]`` (any shape works), and returns ``[E, num]`` (radial
bases) or ``[E]`` (cutoff functions). All are smooth in ``d`` on ``[0, cutoff]`` and have finite first and
second derivatives everywhere (including ``d = 0``), so they can be used inside force models that
differentiate the energy with respect to positions.

* :class:`GaussianRBF`: Gaussians on a grid (CGCNN, SchNet).
* :class:`BesselRBF`: the zeroth-order spherical Bessel basis of DimeNet.
* :class:`CosineCutoff`: Behler's cosine cutoff (value and first derivative vanish at the cutoff).
* :class:`PolynomialEnvelope`: DimeNet's polynomial envelope (value, first and second derivative vanish).

:func:`distance_bins` is the exception: Gilmer et al.'s 10 discrete distance bins (not differentiable,
for edge types and one-hot edge features of property models).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "GAUSSIAN_PRESETS",
    "GILMER_BIN_EDGES",
    "BesselRBF",
    "CosineCutoff",
    "GaussianRBF",
    "PolynomialEnvelope",
    "distance_bins",
    "gaussian_preset",
]

GILMER_BIN_EDGES: tuple[float, ...] = tuple(2.0 + 0.5 * k for k in range(9))
"""Å: the inner edges of Gilmer et al.'s bins -- [0, 2), eight of width 0.5 over [2, 6), [6, inf)."""


def distance_bins(d: torch.Tensor) -> torch.Tensor:
    """Bin index (int64, 0..9) of each distance in Å, ``[E] -> [E]``: 0 below 2 Å, 1-8 for the eight
    0.5 Å bins of [2, 6) Å, 9 from 6 Å (Gilmer et al. 2017, "distance bins")."""
    edges = torch.tensor(GILMER_BIN_EDGES, dtype=d.dtype, device=d.device)
    return torch.bucketize(d.detach(), edges, right=True)


def _check_cutoff(cutoff: float) -> float:
    cutoff = float(cutoff)
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    return cutoff


class GaussianRBF(nn.Module):
    r"""Gaussian radial basis :math:`\exp(-(d - \mu_k)^2 / (2 \sigma_k^2))`, ``[E] -> [E, num]``.

    Args:
        start: first centre :math:`\mu_0` (Å).
        stop: last centre (Å); centres are ``torch.linspace(start, stop, num)``.
        num: number of centres.
        width: :math:`\sigma` (Å), the same for all centres; default the centre spacing
            ``(stop - start) / (num - 1)``.
        trainable: make centres and widths ``nn.Parameter`` s (otherwise buffers).

    Presets: :meth:`cgcnn` and :meth:`schnet`. Note the convention: ``width`` is the standard deviation
    :math:`\sigma`; a code written as ``exp(-gamma (d - mu)^2)`` has ``gamma = 1 / (2 width^2)``.
    """

    def __init__(
        self,
        start: float = 0.0,
        stop: float = 5.0,
        num: int = 50,
        width: float | None = None,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"num must be at least 1, got {num}")
        if stop < start:
            raise ValueError(f"stop ({stop}) must not be below start ({start})")
        if width is None:
            if num < 2 or stop == start:
                raise ValueError("width must be given when there is a single centre")
            width = (stop - start) / (num - 1)
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        dtype = torch.get_default_dtype()
        centers = torch.linspace(start, stop, num, dtype=dtype)
        widths = torch.full((num,), float(width), dtype=dtype)
        if trainable:
            self.centers = nn.Parameter(centers)
            self.widths = nn.Parameter(widths)
        else:
            self.register_buffer("centers", centers)
            self.register_buffer("widths", widths)
        self.num = num

    @classmethod
    def cgcnn(cls, trainable: bool = False) -> GaussianRBF:
        r"""CGCNN's expansion (Xie & Grossman 2018): centres 0, 0.2, ..., 8 Å (41), ``var = 0.2``.

        CGCNN's code (``GaussianDistance(dmin=0, dmax=8, step=0.2)``) computes
        :math:`\exp(-(d - \mu)^2 / \mathrm{var}^2)` with ``var = 0.2`` Å, which this reproduces
        exactly: ``width`` = :math:`\sigma` = ``0.2 / sqrt(2)`` ≈ 0.141 Å.
        """
        return cls(0.0, 8.0, 41, width=0.2 / math.sqrt(2.0), trainable=trainable)

    @classmethod
    def schnet(cls, cutoff: float = 5.0, num: int = 50, trainable: bool = False) -> GaussianRBF:
        r"""SchNet's expansion as in schnetpack and PyG: ``num`` centres on ``[0, cutoff]``, width = spacing.

        schnetpack's ``GaussianRBF`` and PyG's ``GaussianSmearing`` use the coefficient
        ``-0.5 / spacing^2``, i.e. :math:`\sigma` = spacing = 5/49 ≈ 0.102 Å for the defaults; this
        reproduces that. (The SchNet paper's :math:`\gamma = 10\,Å^{-2}` on a 0.1 Å grid corresponds to
        :math:`\sigma` ≈ 0.224 Å instead.)
        """
        return cls(0.0, cutoff, num, width=None, trainable=trainable)

    @classmethod
    def materials_lecture(cls, trainable: bool = False) -> GaussianRBF:
        r"""Seed 004's grid for crystal edges: centres 0, 0.1, ..., 5 Å (51), :math:`\sigma` = 0.2 Å."""
        return cls(0.0, 5.0, 51, width=0.2, trainable=trainable)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """``d``: distances ``[E]`` (Å) -> ``[E, num]``."""
        diff = d.unsqueeze(-1) - self.centers
        return torch.exp(-0.5 * (diff / self.widths) ** 2)

    def extra_repr(self) -> str:
        c, w = self.centers.detach(), self.widths.detach()
        trainable = isinstance(self.centers, nn.Parameter)
        return (
            f"num={self.num}, start={float(c[0]):.3g}, stop={float(c[-1]):.3g}, "
            f"width={float(w[0]):.3g}, trainable={trainable}"
        )


#: named Gaussian grids that crystal models take as ``model.rbf`` (their own grid when not named)
GAUSSIAN_PRESETS: dict[str, Callable[[], GaussianRBF]] = {
    "cgcnn": GaussianRBF.cgcnn,
    "materials_lecture": GaussianRBF.materials_lecture,
}


def gaussian_preset(name: str, cutoff: float) -> GaussianRBF:
    """The Gaussian grid named ``name`` (:data:`GAUSSIAN_PRESETS`) for a model whose edges end at
    ``cutoff`` Å; an error for an unknown name or a grid whose centres lie beyond the cutoff (no edge
    would ever reach them)."""
    if name not in GAUSSIAN_PRESETS:
        raise ValueError(f"model.rbf: unknown Gaussian grid {name!r}; known: {sorted(GAUSSIAN_PRESETS)}")
    rbf = GAUSSIAN_PRESETS[name]()
    last = float(rbf.centers[-1])
    if last > cutoff + 1e-9:
        raise ValueError(
            f"model.rbf: the grid {name!r} has centres up to {last:g} Å, beyond the model's interaction "
            f"cutoff of {cutoff:g} Å (no edge reaches them): raise data.graph.cutoff or pick another grid"
        )
    return rbf


class BesselRBF(nn.Module):
    r"""DimeNet's radial Bessel basis :math:`\sqrt{2/c}\,\sin(n \pi d / c) / d`, ``n = 1..num``.

    ``[E] -> [E, num]``. At ``d = 0`` the basis takes its limit :math:`\sqrt{2/c}\, n\pi/c`: below
    ``d = 1e-3`` Å a Taylor expansion :math:`f (1 - (fd)^2/6 + (fd)^4/120)` (``f = n pi / c``) replaces
    ``sin(f d) / d``, so value, gradient and second derivative are finite at 0 (the gradient is 0 there).
    The basis is not cut off by itself: multiply by an envelope (:class:`PolynomialEnvelope`).

    Args:
        cutoff: :math:`c` (Å).
        num: number of basis functions.
        trainable: make the frequencies :math:`n \pi / c` an ``nn.Parameter`` (as in DimeNet).
    """

    freqs: torch.Tensor
    small: float = 1e-3

    def __init__(self, cutoff: float = 5.0, num: int = 8, trainable: bool = False) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"num must be at least 1, got {num}")
        self.cutoff = _check_cutoff(cutoff)
        self.num = num
        self.prefactor = math.sqrt(2.0 / self.cutoff)
        freqs = torch.arange(1, num + 1, dtype=torch.get_default_dtype()) * (math.pi / self.cutoff)
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """``d``: distances ``[E]`` (Å) -> ``[E, num]``."""
        d = d.unsqueeze(-1)
        is_small = d.abs() < self.small
        d_safe = torch.where(is_small, torch.ones_like(d), d)
        exact = torch.sin(self.freqs * d_safe) / d_safe
        x2 = (self.freqs * d) ** 2
        series = self.freqs * (1.0 - x2 / 6.0 + x2 * x2 / 120.0)
        return self.prefactor * torch.where(is_small, series, exact)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num={self.num}, trainable={isinstance(self.freqs, nn.Parameter)}"


class CosineCutoff(nn.Module):
    r"""Cosine cutoff :math:`0.5 (\cos(\pi d / c) + 1)` for ``d < c``, 0 beyond; ``[E] -> [E]``.

    1 at ``d = 0``; value and first derivative vanish at ``d = c`` (the second derivative jumps there).

    Args:
        cutoff: :math:`c` (Å).
    """

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = _check_cutoff(cutoff)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """``d``: distances ``[E]`` (Å) -> ``[E]`` in ``[0, 1]``."""
        inside = d < self.cutoff
        d_safe = torch.where(inside, d, torch.zeros_like(d))
        value = 0.5 * (torch.cos(d_safe * (math.pi / self.cutoff)) + 1.0)
        return torch.where(inside, value, torch.zeros_like(value))

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}"


class PolynomialEnvelope(nn.Module):
    r"""DimeNet's polynomial envelope, ``[E] -> [E]``.

    .. math::

        u(x) = 1 - \frac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1} - \frac{p(p+1)}{2} x^{p+2},
        \qquad x = d / c,

    for ``d < c`` and 0 beyond. ``u(0) = 1`` and value, first and second derivative vanish at ``d = c``,
    so the envelope is twice continuously differentiable everywhere (for ``p >= 1``).

    Args:
        cutoff: :math:`c` (Å).
        exponent: :math:`p` (DimeNet uses ``p = 6``, i.e. its ``envelope_exponent = 5`` plus one; the
            default 5 here is the polynomial's own exponent).
    """

    def __init__(self, cutoff: float, exponent: int = 5) -> None:
        super().__init__()
        if exponent < 1:
            raise ValueError(f"exponent must be at least 1, got {exponent}")
        self.cutoff = _check_cutoff(cutoff)
        self.exponent = int(exponent)
        p = self.exponent
        self.a = -(p + 1) * (p + 2) / 2.0
        self.b = float(p * (p + 2))
        self.c = -p * (p + 1) / 2.0

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """``d``: distances ``[E]`` (Å) -> ``[E]`` in ``[0, 1]``."""
        inside = d < self.cutoff
        x = torch.where(inside, d, torch.zeros_like(d)) / self.cutoff
        xp = x**self.exponent
        value = 1.0 + xp * (self.a + x * (self.b + self.c * x))
        return torch.where(inside, value, torch.zeros_like(value))

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, exponent={self.exponent}"
