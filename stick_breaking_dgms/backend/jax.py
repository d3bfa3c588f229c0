r"""JAX twins of the package's custom ops, registered with PyTensor's JAX dispatch.

Each custom op (:mod:`..kernels`: the Kumaraswamy-Beta KL, the Bernoulli likelihood,
Adam's update; the backend's ``softplus``) has a reference graph, a C implementation and
a NumPy ``perform``; here each gets the function ``jax_funcify`` returns for it: the same
formulas in ``jax.numpy``, rounded once to the graph's dtype. They compute in double
precision, as the C kernels do, when JAX's 64-bit types are on, which :func:`configure`
ties to the float type: on for float64 graphs, off for float32 ones (with them on,
PyTensor's JAX reductions return float64 from float32 graphs), so a float32 graph is
computed in single precision under JAX. ``tests/test_linkers.py`` checks every op against
its reference graph under each linker.

Imported by :func:`~stick_breaking_dgms.backend.set_mode` (``--mode JAX``), PyTensor only.
"""
import numpy as np
from scipy import special

import jax
import jax.numpy as jnp
from jax.scipy import special as jspecial
from pytensor.link.jax.dispatch import jax_funcify

from .. import kernels
from . import _Softplus



def configure(floatX):
    """JAX's 64-bit types on for float64 graphs, off for float32 ones."""
    jax.config.update("jax_enable_x64", floatX == "float64")


def _wide():
    """The dtype of the twins' inner math: float64 when JAX has it."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def devices():
    """The devices JAX computes on (a GPU when JAX sees one, else the CPU)."""
    return jax.devices()


@jax_funcify.register(_Softplus)
def _softplus(op, node=None, **kwargs):
    def softplus(x):
        return jax.nn.softplus(x)
    return softplus


@jax_funcify.register(kernels.KumaraswamyBetaKL)
def _kumaraswamy_beta_kl(op, node=None, **kwargs):
    alpha, beta = op.prior_alpha, op.prior_beta
    log_beta_fn = float(special.betaln(alpha, beta))
    terms = np.arange(1, op.taylor_terms + 1, dtype=np.float64)
    series = op.digamma == "series"
    euler = kernels.EULER_GAMMA_ORIGINAL if series else float(np.euler_gamma)

    def kumaraswamy_beta_kl(a_in, b_in):
        dtype = a_in.dtype
        a, b = a_in.astype(_wide()), b_in.astype(_wide())
        if beta != 1.0:
            m = jnp.asarray(terms, _wide())
            x = m / a[..., None]
            bb = b[..., None]
            d = 1.0 / (m + a[..., None] * bb)
            t = jnp.exp(jspecial.gammaln(x) + jspecial.gammaln(bb)
                        - jspecial.gammaln(x + bb)) * d
            psi_z = jspecial.digamma(x + bb)
            s = t.sum(-1)
            sa = (t * ((jspecial.digamma(x) - psi_z) * (-m / a[..., None] ** 2)
                       - bb * d)).sum(-1)
            sb = (t * ((jspecial.digamma(bb) - psi_z) - a[..., None] * d)).sum(-1)
        else:
            s = sa = sb = jnp.zeros_like(a)
        if series:
            psi_t = jnp.log(b) - 0.5 / b - 1.0 / (12.0 * b * b)
            dpsi_t = 1.0 / b + 0.5 / b ** 2 + 1.0 / (6.0 * b ** 3)
        else:
            psi_t, dpsi_t = jspecial.digamma(b), jspecial.polygamma(1, b)
        e = -euler - psi_t - 1.0 / b
        kl = ((a - alpha) / a * e + jnp.log(a * b) + log_beta_fn - (b - 1.0) / b
              + (beta - 1.0) * b * s)
        da = alpha / a ** 2 * e + 1.0 / a + (beta - 1.0) * b * sa
        db = ((a - alpha) / a * (1.0 / b ** 2 - dpsi_t) + 1.0 / b - 1.0 / b ** 2
              + (beta - 1.0) * (s + b * sb))
        return kl.astype(dtype), da.astype(dtype), db.astype(dtype)
    return kumaraswamy_beta_kl


@jax_funcify.register(kernels.BernoulliNLL)
def _bernoulli_nll(op, node=None, **kwargs):
    dtype = node.outputs[0].dtype if node is not None else "float32"
    flush = kernels.DLOGITS_FLUSH * float(np.finfo(dtype).tiny)

    def bernoulli_nll(x, logits):
        reps = logits.shape[0] // max(x.shape[0], 1)
        l64 = logits.astype(_wide())
        xx = jnp.repeat(x.astype(_wide()), reps, axis=0)
        nll = (jnp.logaddexp(0.0, l64) - xx * l64).sum(axis=1)
        dl = jax.nn.sigmoid(l64) - xx
        dl = jnp.where(jnp.abs(dl) < flush, 0.0, dl)
        return nll.astype(logits.dtype), dl.astype(logits.dtype)
    return bernoulli_nll


@jax_funcify.register(kernels.AdamUpdate)
def _adam_update(op, node=None, **kwargs):
    beta1, beta2 = op.beta1, op.beta2

    def adam_update(p, m, v, g, step, eps):
        dtype = p.dtype
        tiny = jnp.finfo(dtype).tiny
        m_new = m + jnp.asarray(1.0 - beta1, dtype) * (g - m)
        v_new = jnp.asarray(beta2, dtype) * v + jnp.asarray(1.0 - beta2, dtype) * g * g
        m_new = jnp.where(jnp.abs(m_new) < tiny, jnp.zeros((), dtype), m_new)
        v_new = jnp.where(v_new < tiny, jnp.zeros((), dtype), v_new)
        p_new = p - jnp.asarray(step, dtype) * m_new / (jnp.sqrt(v_new) + jnp.asarray(eps, dtype))
        return p_new.astype(dtype), m_new.astype(dtype), v_new.astype(dtype)
    return adam_update
