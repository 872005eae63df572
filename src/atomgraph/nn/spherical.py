"""DimeNet's spherical basis in plain torch: spherical Bessel functions, their zeros, Legendre polynomials.

The 2D basis of an angle alpha (at atom j, between the bonds j -> i and j -> k) and the distance d of
the bond k -> j is (Gasteiger et al. 2020, eq. 7)

.. math::

    a_{ln}(d, \\alpha) = \\sqrt{\\frac{2}{j_{l+1}^2(z_{ln})}}\\; j_l\\!\\left(z_{ln} \\frac{d}{c}\\right)\\,
    u(d)\\; Y_l^0(\\alpha), \\qquad l < L, \\; n < N,

with :math:`z_{ln}` the n-th positive zero of the spherical Bessel function :math:`j_l`, :math:`u` the
polynomial envelope and :math:`Y_l^0(\\alpha) = \\sqrt{(2l+1)/(4\\pi)}\\,P_l(\\cos\\alpha)` the real
spherical harmonics of order 0. The zeros come from scipy at construction (bracketed root finding with
the interlacing of the zeros of :math:`j_l` and :math:`j_{l+1}`); everything evaluated in the forward
pass is torch code (no sympy), differentiable and stable for small arguments, in float32 and float64.

Difference from DimeNet's reference code: there the envelope carries the ``1/x`` of the radial sine
basis, so the spherical basis is also divided by ``d / c``; we follow the paper's formula, which stays
bounded as ``d -> 0``. The paper's constant ``c^{-3/2}`` is dropped (a fixed scale, absorbed by the
following linear layer).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from atomgraph.features.radial import PolynomialEnvelope

__all__ = ["SphericalBasis", "legendre", "spherical_bessel_zeros", "spherical_jn", "spherical_y_l0"]

_SERIES_TERMS = 30


def spherical_bessel_zeros(num_orders: int, num_zeros: int) -> np.ndarray:
    """The first ``num_zeros`` positive zeros of :math:`j_l` for ``l = 0 .. num_orders - 1``: ``[L, N]``.

    The zeros of :math:`j_0` are :math:`k\\pi`; the zeros of :math:`j_{l+1}` interlace those of
    :math:`j_l`, so each lies in a bracket found at the previous order (Brent's method, scipy).
    """
    from scipy.optimize import brentq
    from scipy.special import spherical_jn as scipy_jn

    if num_orders < 1 or num_zeros < 1:
        raise ValueError(f"need at least one order and one zero, got {num_orders} and {num_zeros}")
    zeros = np.zeros((num_orders, num_zeros))
    points = np.arange(1, num_zeros + num_orders) * np.pi
    zeros[0] = points[:num_zeros]
    for order in range(1, num_orders):
        points = np.array(
            [
                brentq(lambda x, n=order: scipy_jn(n, x), points[k], points[k + 1], xtol=1e-14)
                for k in range(len(points) - 1)
            ]
        )
        zeros[order] = points[:num_zeros]
    return zeros


def _jn_series(order: int, x: torch.Tensor) -> torch.Tensor:
    """Power series of :math:`j_l` (accurate for ``|x| <~ l + 2``):

    :math:`j_l(x) = \\frac{x^l}{(2l+1)!!}\\sum_k \\frac{(-x^2/2)^k}{k!\\,(2l+3)\\cdots(2l+2k+1)}`.
    """
    double_factorial = math.prod(range(1, 2 * order + 2, 2))
    half_square = -0.5 * x * x
    term = torch.ones_like(x)
    total = torch.ones_like(x)
    for k in range(1, _SERIES_TERMS):
        term = term * half_square / (k * (2 * order + 2 * k + 1))
        total = total + term
    return x**order / double_factorial * total


def _jn_upward(order: int, x: torch.Tensor) -> torch.Tensor:
    """Upward recurrence :math:`j_{m+1} = \\frac{2m+1}{x} j_m - j_{m-1}` from :math:`j_0, j_1`
    (stable for ``x > order``)."""
    sin, cos = torch.sin(x), torch.cos(x)
    previous = sin / x
    if order == 0:
        return previous
    current = sin / (x * x) - cos / x
    for m in range(1, order):
        previous, current = current, (2 * m + 1) / x * current - previous
    return current


def spherical_jn(order: int, x: torch.Tensor) -> torch.Tensor:
    """Spherical Bessel function of the first kind :math:`j_l(x)` for ``x >= 0`` (any shape).

    A power series below ``x = l + 1`` (where the closed forms cancel catastrophically) and the upward
    recurrence above it; both branches get safe inputs, so values and gradients are finite everywhere,
    including ``x = 0``. Matches ``scipy.special.spherical_jn`` to ~1e-14 relative in float64.
    """
    if order < 0:
        raise ValueError(f"order must be non-negative, got {order}")
    threshold = order + 1.0
    small = x < threshold
    x_small = torch.where(small, x, torch.zeros_like(x))
    x_large = torch.where(small, torch.full_like(x, threshold), x)
    return torch.where(small, _jn_series(order, x_small), _jn_upward(order, x_large))


def legendre(max_degree: int, x: torch.Tensor) -> torch.Tensor:
    """Legendre polynomials :math:`P_0 .. P_{L}` of ``x`` [...]: ``[..., L + 1]`` (Bonnet's recurrence)."""
    values = [torch.ones_like(x)]
    if max_degree >= 1:
        values.append(x)
    for n in range(1, max_degree):
        values.append(((2 * n + 1) * x * values[n] - n * values[n - 1]) / (n + 1))
    return torch.stack(values, dim=-1)


def spherical_y_l0(max_degree: int, cos_angle: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics of order 0, :math:`Y_l^0 = \\sqrt{(2l+1)/4\\pi}\\,P_l(\\cos\\alpha)`,
    for ``l = 0 .. max_degree``: ``[..., L + 1]``."""
    norms = torch.tensor(
        [math.sqrt((2 * n + 1) / (4 * math.pi)) for n in range(max_degree + 1)],
        dtype=cos_angle.dtype,
        device=cos_angle.device,
    )
    return legendre(max_degree, cos_angle) * norms


class SphericalBasis(nn.Module):
    """DimeNet's spherical basis of (bond length d_kj, angle kji): ``[T] -> [T, num_spherical * num_radial]``.

    Args:
        num_spherical: number of degrees L (``l = 0 .. L - 1``; DimeNet: 7).
        num_radial: number of radial functions N per degree (DimeNet: 6).
        cutoff: c (Å).
        envelope_exponent: exponent p of :class:`PolynomialEnvelope` (DimeNet: 6).

    :meth:`forward` takes the edge lengths ``[E]`` (Å), the cosine of each triplet's angle ``[T]`` and
    the index ``[T]`` of each triplet's edge k -> j; the radial part is evaluated once per edge and
    gathered. Columns are ordered degree-major: column ``l * N + n``.
    """

    zeros: torch.Tensor
    norms: torch.Tensor

    def __init__(self, num_spherical: int, num_radial: int, cutoff: float, envelope_exponent: int = 6):
        super().__init__()
        self.num_spherical = num_spherical
        self.num_radial = num_radial
        self.cutoff = float(cutoff)
        zeros = spherical_bessel_zeros(num_spherical, num_radial)
        from scipy.special import spherical_jn as scipy_jn

        norms = np.stack([np.sqrt(2.0) / np.abs(scipy_jn(n + 1, zeros[n])) for n in range(num_spherical)])
        dtype = torch.get_default_dtype()
        self.register_buffer("zeros", torch.tensor(zeros, dtype=dtype))
        self.register_buffer("norms", torch.tensor(norms, dtype=dtype))
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)

    def radial(self, distances: torch.Tensor) -> torch.Tensor:
        """Enveloped, normalised :math:`j_l(z_{ln} d / c)`: ``[E] -> [E, L, N]``."""
        x = (distances / self.cutoff).unsqueeze(-1)
        rows = [spherical_jn(n, self.zeros[n] * x) * self.norms[n] for n in range(self.num_spherical)]
        return torch.stack(rows, dim=-2) * self.envelope(distances).view(-1, 1, 1)

    def forward(self, distances: torch.Tensor, cos_angle: torch.Tensor, idx_kj: torch.Tensor) -> torch.Tensor:
        radial = self.radial(distances).index_select(0, idx_kj)
        angular = spherical_y_l0(self.num_spherical - 1, cos_angle)
        return (radial * angular.unsqueeze(-1)).reshape(-1, self.num_spherical * self.num_radial)

    def extra_repr(self) -> str:
        return f"num_spherical={self.num_spherical}, num_radial={self.num_radial}, cutoff={self.cutoff}"
