r"""The stick-breaking construction: fractions v_1..v_{K-1} -> weights pi_1..pi_K.

.. math::

    \pi_1 = v_1,\qquad \pi_k = v_k \prod_{j<k} (1 - v_j),\qquad
    \pi_K = \prod_{j<K} (1 - v_j)

so the K weights are non-negative and sum to one. The remaining stick
:math:`r_k = \prod_{j<k}(1 - v_j)` is computed with one masked product over a
(N, K, K-1) tensor rather than ``cumprod``: Aesara's gradient of ``cumprod`` divides
by its input and is NaN where a factor is exactly 0 (a draw v = 1, which float32
produces), whereas ``prod``'s gradient treats zeros exactly.
"""
import numpy as np

from .backend import at


def remaining_stick_expr(v):
    """r_k = prod_{j<k} (1 - v_j) for k = 1..K, shape (N, K), from v of shape (N, K-1)."""
    k_minus_1 = v.shape[1]
    # mask[k, j] = 1 where j < k: row k multiplies the first k factors.
    mask = at.tri(k_minus_1 + 1, k_minus_1, k=-1, dtype="int8")
    factors = at.switch(mask[None, :, :], (1.0 - v)[:, None, :], at.ones_like(v[:, None, :]))
    return at.prod(factors, axis=2)


def stick_breaking_expr(v):
    """Stick weights pi (N, K) from fractions v (N, K-1): pi = r * [v, 1]."""
    ones = at.ones_like(v[:, :1])
    return remaining_stick_expr(v) * at.concatenate([v, ones], axis=1)


def stick_breaking_numpy(v):
    """Reference NumPy implementation (float64 products), for tests and evaluation."""
    v = np.asarray(v, dtype=np.float64)
    remaining = np.concatenate([np.ones((v.shape[0], 1)), np.cumprod(1.0 - v, axis=1)], axis=1)
    return remaining * np.concatenate([v, np.ones((v.shape[0], 1))], axis=1)
