r"""Adam (Kingma & Ba, 2015) as a function from a loss to an ordered update dictionary.

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,

    \theta_t = \theta_{t-1} - \eta\, \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

The defaults are the original code's: :math:`\eta = 3\cdot10^{-4}`,
:math:`\beta_1 = 0.95`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`.
"""
from collections import OrderedDict

import numpy as np

from .backend import at, grad, parameter, shared
from .kernels import adam_update


def total_norm_constraint(grads, max_norm, epsilon=1e-7):
    """Rescale gradients so that their joint L2 norm is at most ``max_norm``."""
    norm = at.sqrt(sum(at.sum(g ** 2) for g in grads))
    scale = at.minimum(1.0, max_norm / (norm + epsilon))
    return [g * at.cast(scale, g.dtype) for g in grads], norm


def adam(loss_or_grads, params, learning_rate=3e-4, beta1=0.95, beta2=0.999, epsilon=1e-8):
    """Adam updates.

    Parameters
    ----------
    loss_or_grads : scalar tensor or list of tensors
        The loss to minimise, or the gradients of ``params``.
    params : list of shared variables
    learning_rate, beta1, beta2, epsilon : float

    Returns
    -------
    OrderedDict
        shared variable -> new value, for ``params`` and Adam's state (the moments
        ``m``, ``v`` of each parameter, named ``adam/m/<param>``, ``adam/v/<param>``,
        and the step counter ``adam/t``).
    """
    params = list(params)
    if isinstance(loss_or_grads, (list, tuple)):
        grads = list(loss_or_grads)
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} parameters")
    else:
        grads = grad(loss_or_grads, params)
    # The step counter lives in the parameters' dtype (float32 graphs stay float32).
    t_dtype = params[0].dtype
    t_prev = shared(np.asarray(0.0, dtype=t_dtype), name="adam/t")
    t = t_prev + np.asarray(1.0, dtype=t_dtype)
    corr1 = 1.0 - at.constant(np.asarray(beta1, dtype=t_dtype)) ** t
    corr2 = 1.0 - at.constant(np.asarray(beta2, dtype=t_dtype)) ** t
    # lr (m / corr1) / (sqrt(v / corr2) + eps) with the corrections moved into two
    # scalars (Kingma & Ba, section 2): the same step, two divisions fewer per weight.
    step_size = at.constant(np.asarray(learning_rate, dtype=t_dtype)) * at.sqrt(corr2) / corr1
    eps_hat = at.constant(np.asarray(epsilon, dtype=t_dtype)) * at.sqrt(corr2)
    updates = OrderedDict()
    for p, g in zip(params, grads):
        value = p.get_value(borrow=True)
        dtype = value.dtype
        m_prev = parameter(np.zeros(value.shape, dtype=dtype), name=f"adam/m/{p.name}")
        v_prev = parameter(np.zeros(value.shape, dtype=dtype), name=f"adam/v/{p.name}")
        # m + (1 - b1)(g - m), b2 v + (1 - b2) g^2 and the step, in one pass in place
        # (the kernel; three elementwise passes otherwise).
        p_new, m_new, v_new = adam_update(p, m_prev, v_prev, at.cast(g, dtype),
                                          at.cast(step_size, dtype), at.cast(eps_hat, dtype),
                                          beta1, beta2)
        updates[m_prev] = m_new
        updates[v_prev] = v_new
        updates[p] = p_new
    updates[t_prev] = t
    return updates


def finite_step_expr(cost, gradient_norm):
    """True when the cost and the gradient norm are both finite (the step can be applied)."""
    return ~(at.isnan(cost) | at.isinf(cost) | at.isnan(gradient_norm) | at.isinf(gradient_norm))


def training_updates(cost, params, learning_rate, clip_gradient_norm=None, skip_nonfinite=False,
                     **adam_options):
    """Adam updates for ``cost``, with optional gradient-norm clipping and NaN guard.

    With ``skip_nonfinite``, every update (parameters and Adam state) keeps its old
    value when the cost or the gradient norm is not finite, so a bad batch changes
    nothing. Returns (updates, gradient_norm).
    """
    params = list(params)
    grads = grad(cost, params)
    norm = at.sqrt(sum(at.sum(g ** 2) for g in grads))
    if clip_gradient_norm is not None:
        grads, norm = total_norm_constraint(grads, clip_gradient_norm)
    updates = adam(grads, params, learning_rate, **adam_options)
    if skip_nonfinite:
        ok = finite_step_expr(cost, norm)
        updates = OrderedDict((var, at.switch(ok, new, var)) for var, new in updates.items())
    return updates, norm
