r"""Fused C kernels for the three hot spots of a training step.

Aesara compiles elementwise graphs to scalar C loops, one pass over memory per fused
group, calling the C library's ``lgamma``, ``log`` and ``exp`` (which the compiler
cannot vectorise). The profile of an SB-VAE step puts most of the non-matrix time in
three places, each replaced here by one :class:`COp` whose loop GCC vectorises
(straight-line double-precision math from ``csrc/sbdgm_math.h``):

* :func:`kumaraswamy_beta_kl` -- the per-stick KL(Kumaraswamy(a, b) || Beta(alpha,
  beta)) of :mod:`.distributions`, the series' ten Beta functions and the analytic
  gradient with respect to a and b, in one pass (Aesara's graph takes 20 log-gamma
  calls forward and 20 digamma calls backward, over ten intermediate tensors);
* :func:`bernoulli_nll` -- :math:`\sum_d \mathrm{softplus}(\ell_d) - x_d \ell_d` per
  row and its gradient :math:`\sigma(\ell) - x` in the same pass;
* :func:`adam_update` -- Adam's two moments and the parameter in one pass, in place
  (three passes over memory in the elementwise graph), with moments that decay below
  the smallest normal float stored as zero (see :class:`AdamUpdate`).

Each kernel computes in double precision and rounds once to the graph's dtype, so a
float32 graph is at least as accurate as the elementwise one. Each has a NumPy
``perform`` (used when Aesara runs without a C compiler) and is tested against SciPy
and against the plain Aesara graph in ``tests/test_kernels.py``.
"""
import hashlib
import os
import platform

import numpy as np
from scipy import special

from .backend import (Apply, COp, DisconnectedType, as_tensor_variable, at, grad_undefined,
                      register_inplace_rewrite)

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "csrc", "sbdgm_math.h"), encoding="utf-8") as _f:
    MATH_HEADER = _f.read()

EULER_GAMMA_ORIGINAL = 0.57721  # as the original code writes it
_C_TYPES = {"float32": ("npy_float32", "NPY_FLOAT32"), "float64": ("npy_float64", "NPY_FLOAT64")}
with open(os.path.abspath(__file__), encoding="utf-8") as _f:
    # Aesara caches compiled modules by this version: any change of the C code (here or
    # in the header) must give a new one.
    _VERSION = int(hashlib.sha256((MATH_HEADER + _f.read()).encode()).hexdigest()[:12], 16)


# -fopenmp-simd lets "#pragma omp simd" vectorise the loops; on x86-64, 512-bit vectors
# where the CPU has them (GCC prefers 256-bit ones otherwise): 1.3 times faster here.
VECTOR_FLAGS = ["-fopenmp-simd"] + (["-mprefer-vector-width=512"]
                                    if platform.machine().lower() in ("x86_64", "amd64") else [])


def _c_literal(x):
    return repr(float(x)) if np.isfinite(x) else ("INFINITY" if x > 0 else "-INFINITY")


def _float_input(x, name):
    x = as_tensor_variable(x)
    if x.dtype not in _C_TYPES:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    return x


def _ensure_output(out, like, typenum, fail):
    """C: make ``out`` a C-contiguous array of ``like``'s shape and ``typenum``."""
    return f"""
    if ({out} == NULL || PyArray_NDIM({out}) != PyArray_NDIM({like})
        || !PyArray_CompareLists(PyArray_DIMS({out}), PyArray_DIMS({like}), PyArray_NDIM({like}))
        || !PyArray_IS_C_CONTIGUOUS({out}) || PyArray_TYPE({out}) != {typenum}) {{
        Py_XDECREF({out});
        {out} = (PyArrayObject*)PyArray_EMPTY(PyArray_NDIM({like}), PyArray_DIMS({like}),
                                              {typenum}, 0);
        if ({out} == NULL) {{ {fail} }}
    }}"""


class _Kernel(COp):
    """What the kernels share: the math header, vectorisation flags, the cache version."""

    def c_support_code(self, **kwargs):
        return MATH_HEADER

    def c_compile_args(self, **kwargs):
        return list(VECTOR_FLAGS)

    def c_code_cache_version(self):
        return (_VERSION,)

    def pullback(self, inputs, outputs, cotangents):
        """PyTensor's name for the vector-Jacobian product (Aesara calls ``L_op``)."""
        return self.L_op(inputs, outputs, cotangents)


# -- KL(Kumaraswamy || Beta) --------------------------------------------------------------

class KumaraswamyBetaKL(_Kernel):
    r"""Per-stick KL(Kumaraswamy(a, b) || Beta(alpha, beta)) and its gradient.

    Outputs ``(kl, dkl_da, dkl_db)``, each of ``a``'s shape. With
    :math:`E = -\gamma - \tilde\psi(b) - 1/b` and the series
    :math:`S = \sum_{m=1}^{M} T_m`, :math:`T_m = B(m/a, b) / (m + ab)`:

    .. math::

        \mathrm{KL} &= \frac{a - \alpha}{a} E + \log(ab) + \log B(\alpha, \beta)
            - \frac{b - 1}{b} + (\beta - 1)\, b\, S \\
        \partial_a \mathrm{KL} &= \frac{\alpha}{a^2} E + \frac1a
            + (\beta - 1)\, b \sum_m T_m \Big[\big(\psi(\tfrac ma) - \psi(\tfrac ma + b)\big)
            \big(-\tfrac{m}{a^2}\big) - \frac{b}{m + ab}\Big] \\
        \partial_b \mathrm{KL} &= \frac{a - \alpha}{a}\Big(\frac{1}{b^2} - \tilde\psi'(b)\Big)
            + \frac1b - \frac1{b^2}
            + (\beta - 1)\Big(S + b \sum_m T_m \Big[\psi(b) - \psi(\tfrac ma + b)
            - \frac{a}{m + ab}\Big]\Big)

    :math:`\tilde\psi` is the original's series :math:`\log b - 1/(2b) - 1/(12b^2)` with
    :math:`\gamma = 0.57721` (``digamma="series"``) or the true digamma with Euler's
    constant (``"exact"``); the series' own gradient always uses the true digamma, as
    Aesara's gradient of ``gammaln`` does.
    """

    __props__ = ("prior_alpha", "prior_beta", "taylor_terms", "digamma")

    def __init__(self, prior_alpha, prior_beta, taylor_terms=10, digamma="series"):
        if digamma not in ("series", "exact"):
            raise ValueError(f"digamma must be 'series' or 'exact', got {digamma!r}")
        if int(taylor_terms) < 1:
            raise ValueError(f"taylor_terms must be >= 1, got {taylor_terms!r}")
        if not (float(prior_alpha) > 0 and float(prior_beta) > 0):
            raise ValueError("the Beta prior's parameters must be positive")
        self.prior_alpha, self.prior_beta = float(prior_alpha), float(prior_beta)
        self.taylor_terms, self.digamma = int(taylor_terms), digamma

    def make_node(self, a, b):
        a, b = _float_input(a, "a"), _float_input(b, "b")
        if a.dtype != b.dtype or a.ndim != b.ndim:
            raise TypeError(f"a and b must have the same dtype and rank, got {a.type} and {b.type}")
        return Apply(self, [a, b], [a.type(), a.type(), a.type()])

    def infer_shape(self, *args):  # Aesara: (fgraph, node, shapes); PyTensor: (node, shapes)
        node, shapes = args[-2:]
        return [shapes[0]] * 3

    def L_op(self, inputs, outputs, output_grads):
        g_kl = output_grads[0]
        for g in output_grads[1:]:
            if not isinstance(g.type, DisconnectedType):
                return [grad_undefined(self, i, inputs[i], "no gradient through the KL's "
                                       "derivatives") for i in range(2)]
        if isinstance(g_kl.type, DisconnectedType):
            return [at.zeros_like(inputs[0]), at.zeros_like(inputs[1])]
        return [g_kl * outputs[1], g_kl * outputs[2]]

    def connection_pattern(self, node):
        return [[True, True, True], [True, True, True]]

    # NumPy version: the same formulas, vectorised over the terms.
    def perform(self, node, inputs, output_storage):
        a, b = (np.asarray(x, dtype=np.float64) for x in inputs)
        alpha, beta = self.prior_alpha, self.prior_beta
        with np.errstate(all="ignore"):
            m = np.arange(1, self.taylor_terms + 1, dtype=np.float64)
            x = m / a[..., None]
            bb = b[..., None]
            d = 1.0 / (m + a[..., None] * bb)
            t = np.exp(special.gammaln(x) + special.gammaln(bb) - special.gammaln(x + bb)) * d
            psi_z = special.psi(x + bb)
            s = t.sum(-1)
            sa = (t * ((special.psi(x) - psi_z) * (-m / a[..., None] ** 2) - bb * d)).sum(-1)
            sb = (t * ((special.psi(bb) - psi_z) - a[..., None] * d)).sum(-1)
            if self.digamma == "series":
                psi_t = np.log(b) - 0.5 / b - 1.0 / (12.0 * b * b)
                dpsi_t = 1.0 / b + 0.5 / b ** 2 + 1.0 / (6.0 * b ** 3)
                euler = EULER_GAMMA_ORIGINAL
            else:
                psi_t, dpsi_t, euler = special.psi(b), special.polygamma(1, b), np.euler_gamma
            e = -euler - psi_t - 1.0 / b
            kl = ((a - alpha) / a * e + np.log(a * b) + special.betaln(alpha, beta)
                  - (b - 1.0) / b + (beta - 1.0) * b * s)
            da = alpha / a ** 2 * e + 1.0 / a + (beta - 1.0) * b * sa
            db = ((a - alpha) / a * (1.0 / b ** 2 - dpsi_t) + 1.0 / b - 1.0 / b ** 2
                  + (beta - 1.0) * (s + b * sb))
        dtype = node.outputs[0].dtype
        for storage, value in zip(output_storage, (kl, da, db)):
            storage[0] = np.asarray(value, dtype=dtype)

    def c_support_code_apply(self, node, name):
        ctype = _C_TYPES[node.inputs[0].dtype][0]
        series = self.digamma == "series"
        euler = EULER_GAMMA_ORIGINAL if series else float(np.euler_gamma)
        beta_m1 = self.prior_beta - 1.0
        if series:
            psi_t = "sbdgm_log(b) - 0.5 * binv - binv * binv / 12.0"
            dpsi_t = "binv + 0.5 * binv * binv + binv * binv * binv / 6.0"
        else:
            psi_t, dpsi_t = "W[i]", "sbdgm_trigamma(b)"
        # The series: one vectorised pass over the elements per term m, accumulating
        # S, dS/da, dS/db in a work buffer (the terms' loop outside keeps the element
        # loop innermost, so it vectorises for any number of terms).
        series_code = "" if beta_m1 == 0.0 else f"""
    for (int m = 1; m <= {self.taylor_terms}; m++) {{
        const double md = (double)m;
        #pragma omp simd
        for (npy_intp i = 0; i < n; i++) {{
            double a = (double)A[i], b = (double)B[i];
            double ainv = W[5 * n + i], x = md * ainv, z = x + b;
            double lg_diff, psix, psiz;
            sbdgm_lgamma_diff_psi(x, z, &lg_diff, &psix, &psiz);
            double d = 1.0 / (md + a * b);
            double t = sbdgm_exp(lg_diff + W[n + i]) * d;
            W[2 * n + i] += t;
            W[3 * n + i] += t * ((psix - psiz) * (-md * ainv * ainv) - b * d);
            W[4 * n + i] += t * ((W[i] - psiz) - a * d);
        }}
    }}"""
        return f"""
/* W: 6 n doubles: psi(b), log Gamma(b), S, dS/da, dS/db, 1/a */
static void sbdgm_kl_{name}(npy_intp n, const {ctype} *__restrict__ A, const {ctype} *__restrict__ B,
                           {ctype} *__restrict__ KL, {ctype} *__restrict__ DA, {ctype} *__restrict__ DB,
                           double *__restrict__ W)
{{
    const double alpha = {_c_literal(self.prior_alpha)}, beta_m1 = {_c_literal(beta_m1)};
    const double log_beta_fn = {_c_literal(special.betaln(self.prior_alpha, self.prior_beta))};
    const double euler = {_c_literal(euler)};
    #pragma omp simd
    for (npy_intp i = 0; i < n; i++) {{
        double lgb, psib;
        sbdgm_lgamma_psi((double)B[i], &lgb, &psib);
        W[i] = psib; W[n + i] = lgb;
        W[2 * n + i] = 0.0; W[3 * n + i] = 0.0; W[4 * n + i] = 0.0;
        W[5 * n + i] = 1.0 / (double)A[i];
    }}{series_code}
    #pragma omp simd
    for (npy_intp i = 0; i < n; i++) {{
        double a = (double)A[i], b = (double)B[i];
        double ainv = 1.0 / a, binv = 1.0 / b;
        double s = W[2 * n + i], sa = W[3 * n + i], sb = W[4 * n + i];
        double psi_t = {psi_t}, dpsi_t = {dpsi_t};
        double e = -euler - psi_t - binv;
        double kl = (a - alpha) * ainv * e + sbdgm_log(a * b) + log_beta_fn
                    - (b - 1.0) * binv + beta_m1 * b * s;
        double da = alpha * ainv * ainv * e + ainv + beta_m1 * b * sa;
        double db = (a - alpha) * ainv * (binv * binv - dpsi_t) + binv - binv * binv
                    + beta_m1 * (s + b * sb);
        KL[i] = ({ctype})kl; DA[i] = ({ctype})da; DB[i] = ({ctype})db;
    }}
}}
"""

    def c_code(self, node, name, inputs, outputs, sub):
        a, b = inputs
        kl, da, db = outputs
        ctype, typenum = _C_TYPES[node.inputs[0].dtype]
        fail = sub["fail"]
        return f"""
    {{
    PyArrayObject *a_c = PyArray_GETCONTIGUOUS({a});
    PyArrayObject *b_c = PyArray_GETCONTIGUOUS({b});
    if (a_c == NULL || b_c == NULL) {{ Py_XDECREF(a_c); Py_XDECREF(b_c); {fail} }}
    if (!PyArray_SAMESHAPE(a_c, b_c)) {{
        PyErr_SetString(PyExc_ValueError, "KumaraswamyBetaKL: a and b must have the same shape");
        Py_DECREF(a_c); Py_DECREF(b_c); {fail}
    }}
    {_ensure_output(kl, "a_c", typenum, "Py_DECREF(a_c); Py_DECREF(b_c); " + fail)}
    {_ensure_output(da, "a_c", typenum, "Py_DECREF(a_c); Py_DECREF(b_c); " + fail)}
    {_ensure_output(db, "a_c", typenum, "Py_DECREF(a_c); Py_DECREF(b_c); " + fail)}
    npy_intp n = PyArray_SIZE(a_c);
    double *work = (double*)malloc(sizeof(double) * 6 * (n > 0 ? n : 1));
    if (work == NULL) {{
        PyErr_NoMemory(); Py_DECREF(a_c); Py_DECREF(b_c); {fail}
    }}
    sbdgm_kl_{name}(n, ({ctype}*)PyArray_DATA(a_c), ({ctype}*)PyArray_DATA(b_c),
                    ({ctype}*)PyArray_DATA({kl}), ({ctype}*)PyArray_DATA({da}),
                    ({ctype}*)PyArray_DATA({db}), work);
    free(work);
    Py_DECREF(a_c); Py_DECREF(b_c);
    }}
"""


def kumaraswamy_beta_kl(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series"):
    """The per-stick KL of tensors ``a``, ``b`` (same shape and dtype) through the kernel."""
    return KumaraswamyBetaKL(prior_alpha, prior_beta, taylor_terms, digamma)(a, b)[0]


# -- Bernoulli likelihood -----------------------------------------------------------------

DLOGITS_FLUSH = 2.0 ** 26  # headroom above the smallest normal number, see BernoulliNLL

class BernoulliNLL(_Kernel):
    r"""Per-row Bernoulli NLL from logits and its gradient, in one pass.

    Inputs ``x`` (R, D) and ``logits`` (R * C, D): row r of ``logits`` is scored
    against row ``r // C`` of ``x`` (C = 1 for the VAE; C = 10 labels for the
    semi-supervised model's unlabelled pass). Outputs ``nll`` (R * C,) with
    :math:`\sum_d \mathrm{softplus}(\ell_d) - x_d \ell_d` and ``dlogits`` (R * C, D)
    with :math:`\sigma(\ell) - x`. ``softplus`` is :math:`\max(\ell, 0) + \log(1 +
    e^{-|\ell|})`, with the rounding of :math:`1 + e^{-|\ell|}` corrected to first order.

    Entries of ``dlogits`` smaller in magnitude than :data:`DLOGITS_FLUSH` times the
    dtype's smallest normal number (7.9e-31 in float32) are written as 0. A trained
    decoder gives MNIST's blank pixels logits below -87, whose :math:`\sigma(\ell)` is
    subnormal in float32, and the gradient (``dlogits`` times the incoming gradient:
    1 / batch size, and q(y | x) >= 1e-4 for the semi-supervised model) made the two
    matrix products that read it 20-40 times slower with subnormal operands. The margin
    keeps the scaled entries normal; what is dropped is some 1e-30 of a gradient whose
    other entries are of order 1e-3.
    """

    __props__ = ()

    def make_node(self, x, logits):
        x, logits = _float_input(x, "x"), _float_input(logits, "logits")
        if x.ndim != 2 or logits.ndim != 2:
            raise TypeError("BernoulliNLL takes matrices x (R, D) and logits (R * C, D)")
        x = at.cast(x, logits.dtype) if x.dtype != logits.dtype else x
        nll = at.TensorType(logits.dtype, shape=(logits.type.shape[0],))()
        return Apply(self, [x, logits], [nll, logits.type()])

    def infer_shape(self, *args):  # Aesara: (fgraph, node, shapes); PyTensor: (node, shapes)
        node, shapes = args[-2:]
        return [(shapes[1][0],), shapes[1]]

    def L_op(self, inputs, outputs, output_grads):
        x, logits = inputs
        g_nll, g_d = output_grads
        if not isinstance(g_d.type, DisconnectedType):
            return [grad_undefined(self, i, inputs[i], "no gradient through dlogits")
                    for i in range(2)]
        if isinstance(g_nll.type, DisconnectedType):
            return [at.zeros_like(x), at.zeros_like(logits)]
        g_logits = g_nll[:, None] * outputs[1]
        # d nll / d x = -logits, summed over the C rows that share an x row
        g_rows = -(g_nll[:, None] * logits)
        g_x = g_rows.reshape((x.shape[0], -1, x.shape[1])).sum(axis=1)
        return [at.cast(g_x, x.dtype), g_logits]

    def perform(self, node, inputs, output_storage):
        x, logits = inputs
        reps = logits.shape[0] // max(x.shape[0], 1)
        if x.shape[0] * reps != logits.shape[0] or x.shape[1] != logits.shape[1]:
            raise ValueError(f"BernoulliNLL: logits of shape {logits.shape} do not fit x of "
                             f"shape {x.shape}")
        l64 = logits.astype(np.float64)
        xx = np.repeat(x.astype(np.float64), reps, axis=0)
        nll = (np.logaddexp(0.0, l64) - xx * l64).sum(axis=1)
        dl = special.expit(l64) - xx
        dl[np.abs(dl) < DLOGITS_FLUSH * np.finfo(logits.dtype).tiny] = 0.0
        output_storage[0][0] = nll.astype(logits.dtype)
        output_storage[1][0] = dl.astype(logits.dtype)

    def c_support_code_apply(self, node, name):
        ct = _C_TYPES[node.inputs[1].dtype][0]
        flush = _c_literal(DLOGITS_FLUSH * np.finfo(node.inputs[1].dtype).tiny)
        return f"""
static void sbdgm_bernoulli_{name}(npy_intp rows, npy_intp reps, npy_intp D,
                                  const {ct} *__restrict__ X, const {ct} *__restrict__ L,
                                  {ct} *__restrict__ NLL, {ct} *__restrict__ DL)
{{
    for (npy_intp r = 0; r < rows; r++) {{
        const {ct} *__restrict__ x = X + (r / reps) * D;
        const {ct} *__restrict__ l = L + r * D;
        {ct} *__restrict__ dl = DL + r * D;
        double acc = 0.0;
        #pragma omp simd reduction(+:acc)
        for (npy_intp d = 0; d < D; d++) {{
            double li = (double)l[d], xi = (double)x[d];
            double e = sbdgm_exp(-fabs(li));
            double u = 1.0 + e, inv_u = 1.0 / u;
            /* log(1 + e) = log(u) + log((1 + e) / u), the second term to first order */
            double log1p_e = sbdgm_log(u) + (e - (u - 1.0)) * inv_u;
            double sp = (li > 0.0 ? li : 0.0) + log1p_e;
            acc += sp - xi * li;
            double sig = (li >= 0.0 ? 1.0 : e) * inv_u;
            double g = sig - xi;
            /* no subnormals (see the docstring); a multiply, as a select does not vectorise */
            dl[d] = ({ct})(g * (double)(fabs(g) >= {flush}));
        }}
        NLL[r] = ({ct})acc;
    }}
}}
"""

    def c_code(self, node, name, inputs, outputs, sub):
        x, logits = inputs
        nll, dl = outputs
        ct, typenum = _C_TYPES[node.inputs[1].dtype]
        fail = sub["fail"]
        return f"""
    {{
    PyArrayObject *x_c = PyArray_GETCONTIGUOUS({x});
    PyArrayObject *l_c = PyArray_GETCONTIGUOUS({logits});
    if (x_c == NULL || l_c == NULL) {{ Py_XDECREF(x_c); Py_XDECREF(l_c); {fail} }}
    npy_intp rx = PyArray_DIMS(x_c)[0], D = PyArray_DIMS(x_c)[1], rl = PyArray_DIMS(l_c)[0];
    npy_intp reps = rx > 0 ? rl / rx : 0;
    if (PyArray_DIMS(l_c)[1] != D || reps * rx != rl || (rx == 0 && rl != 0)) {{
        PyErr_Format(PyExc_ValueError, "BernoulliNLL: logits (%ld, %ld) do not fit x (%ld, %ld)",
                     (long)rl, (long)PyArray_DIMS(l_c)[1], (long)rx, (long)D);
        Py_DECREF(x_c); Py_DECREF(l_c); {fail}
    }}
    if ({nll} == NULL || PyArray_NDIM({nll}) != 1 || PyArray_DIMS({nll})[0] != rl
        || PyArray_TYPE({nll}) != {typenum} || !PyArray_IS_C_CONTIGUOUS({nll})) {{
        Py_XDECREF({nll});
        {nll} = (PyArrayObject*)PyArray_EMPTY(1, &rl, {typenum}, 0);
        if ({nll} == NULL) {{ Py_DECREF(x_c); Py_DECREF(l_c); {fail} }}
    }}
    {_ensure_output(dl, "l_c", typenum, "Py_DECREF(x_c); Py_DECREF(l_c); " + fail)}
    sbdgm_bernoulli_{name}(rl, reps > 0 ? reps : 1, D, ({ct}*)PyArray_DATA(x_c),
                           ({ct}*)PyArray_DATA(l_c), ({ct}*)PyArray_DATA({nll}),
                           ({ct}*)PyArray_DATA({dl}));
    Py_DECREF(x_c); Py_DECREF(l_c);
    }}
"""


def bernoulli_nll(x, logits):
    """Per-row Bernoulli NLL of ``x`` (R, D) under ``logits`` (R * C, D), shape (R * C,)."""
    return BernoulliNLL()(x, logits)[0]


# -- Adam ---------------------------------------------------------------------------------

class AdamUpdate(_Kernel):
    r"""One Adam step for a parameter, in one pass over memory.

    Inputs ``p, m, v, g`` (same shape and dtype) and the scalars ``step_size`` and
    ``eps_hat`` (the bias corrections folded in, see :func:`.optimizers.adam`);
    outputs ``(p', m', v')`` with

    .. math::

        m' = m + (1 - \beta_1)(g - m), \quad v' = \beta_2 v + (1 - \beta_2) g^2, \quad
        p' = p - \mathrm{step} \cdot m' / (\sqrt{v'} + \hat\epsilon)

    in the parameters' dtype, as the elementwise graph computes it, except that an
    :math:`m'` or :math:`v'` smaller in magnitude than the dtype's smallest normal
    number (``np.finfo(dtype).tiny``) is stored as 0. Weights whose gradient is
    mostly zero (those of MNIST's blank border pixels, of unused latent units) have
    moments that decay geometrically into the subnormal range and linger there (v,
    shrinking by beta2 = 0.999 per step, takes some 16,000 steps to cross float32's); x86 CPUs
    take some hundred cycles per subnormal operand, which made steps late in a long run
    six times slower. The flush leaves :math:`p'` as it was in practice: a dropped
    :math:`m'` changes it by less than :math:`\mathrm{step} \cdot \mathrm{tiny} /
    \hat\epsilon` (about 1e-32 in float32 with the defaults), and a dropped :math:`v'`
    changes the denominator by less than :math:`\sqrt{\mathrm{tiny}}`, far below the
    rounding of :math:`\hat\epsilon`.

    Built out of place; a graph rewrite makes it work in place on ``p, m, v`` when
    nothing else reads them afterwards (the normal case of a training function's updates).
    """

    __props__ = ("beta1", "beta2", "inplace")

    def __init__(self, beta1, beta2, inplace=False):
        self.beta1, self.beta2, self.inplace = float(beta1), float(beta2), bool(inplace)
        if inplace:
            self.destroy_map = {0: [0], 1: [1], 2: [2]}

    def make_node(self, p, m, v, g, step_size, eps_hat):
        p, m, v, g = (_float_input(x, n) for x, n in zip((p, m, v, g), "pmvg"))
        if any(x.dtype != p.dtype or x.ndim != p.ndim for x in (m, v, g)):
            raise TypeError(f"AdamUpdate: p, m, v, g must agree, got {p.type}, {m.type}, "
                            f"{v.type}, {g.type}")
        step_size = at.cast(as_tensor_variable(step_size), p.dtype)
        eps_hat = at.cast(as_tensor_variable(eps_hat), p.dtype)
        if step_size.ndim or eps_hat.ndim:
            raise TypeError("AdamUpdate: step_size and eps_hat must be scalars")
        return Apply(self, [p, m, v, g, step_size, eps_hat], [p.type(), m.type(), v.type()])

    def infer_shape(self, *args):  # Aesara: (fgraph, node, shapes); PyTensor: (node, shapes)
        node, shapes = args[-2:]
        return shapes[:3]

    def L_op(self, inputs, outputs, output_grads):
        return [grad_undefined(self, i, inputs[i], "Adam's update has no gradient")
                for i in range(len(inputs))]

    def perform(self, node, inputs, output_storage):
        p, m, v, g, step, eps = inputs
        dtype = p.dtype
        b1, b2 = np.asarray(1.0 - self.beta1, dtype), np.asarray(self.beta2, dtype)
        m_new = m + b1 * (g - m)
        v_new = b2 * v + np.asarray(1.0 - self.beta2, dtype) * g * g
        tiny = np.finfo(dtype).tiny
        m_new = np.where(np.abs(m_new) < tiny, np.zeros((), dtype), m_new)
        v_new = np.where(v_new < tiny, np.zeros((), dtype), v_new)
        p_new = p - step * m_new / (np.sqrt(v_new) + eps)
        for storage, value in zip(output_storage, (p_new, m_new, v_new)):
            storage[0] = value.astype(dtype, copy=False)

    def c_code(self, node, name, inputs, outputs, sub):
        p, m, v, g, step, eps = inputs
        po, mo, vo = outputs
        ct, typenum = _C_TYPES[node.inputs[0].dtype]
        fail = sub["fail"]
        # The constants in the parameters' dtype, as the elementwise graph rounds them.
        c1 = f"({ct}){_c_literal(np.asarray(1.0 - self.beta1, node.inputs[0].dtype))}"
        c2 = f"({ct}){_c_literal(np.asarray(self.beta2, node.inputs[0].dtype))}"
        c3 = f"({ct}){_c_literal(np.asarray(1.0 - self.beta2, node.inputs[0].dtype))}"
        sqrt, fabs = ("sqrtf", "fabsf") if ct == "npy_float32" else ("sqrt", "fabs")
        tiny = f"({ct}){_c_literal(np.finfo(node.inputs[0].dtype).tiny)}"
        if self.inplace:
            prepare = "".join(f"""
    Py_XDECREF({out}); {out} = {inp}; Py_INCREF({out});""" for out, inp in ((po, p), (mo, m), (vo, v)))
            check = f"""
    if (!PyArray_IS_C_CONTIGUOUS({p}) || !PyArray_IS_C_CONTIGUOUS({m}) || !PyArray_IS_C_CONTIGUOUS({v})) {{
        PyErr_SetString(PyExc_ValueError, "AdamUpdate (in place): p, m and v must be C-contiguous");
        {fail}
    }}"""
        else:
            prepare = "".join(f"""
    Py_XDECREF({out});
    {out} = (PyArrayObject*)PyArray_NewCopy({inp}, NPY_CORDER);
    if ({out} == NULL) {{ {fail} }}""" for out, inp in ((po, p), (mo, m), (vo, v)))
            check = ""
        return f"""
    {{
    {check}
    if (!PyArray_SAMESHAPE({p}, {m}) || !PyArray_SAMESHAPE({p}, {v}) || !PyArray_SAMESHAPE({p}, {g})) {{
        PyErr_SetString(PyExc_ValueError, "AdamUpdate: p, m, v and g must have the same shape");
        {fail}
    }}
    PyArrayObject *g_c = PyArray_GETCONTIGUOUS({g});
    if (g_c == NULL) {{ {fail} }}
    {prepare}
    {{
        const {ct} step = (({ct}*)PyArray_DATA({step}))[0];
        const {ct} eps = (({ct}*)PyArray_DATA({eps}))[0];
        {ct} *__restrict__ P = ({ct}*)PyArray_DATA({po});
        {ct} *__restrict__ M = ({ct}*)PyArray_DATA({mo});
        {ct} *__restrict__ V = ({ct}*)PyArray_DATA({vo});
        const {ct} *__restrict__ G = ({ct}*)PyArray_DATA(g_c);
        npy_intp n = PyArray_SIZE(g_c);
        #pragma omp simd
        for (npy_intp i = 0; i < n; i++) {{
            {ct} gi = G[i];
            {ct} mi = M[i] + {c1} * (gi - M[i]);
            {ct} vi = {c2} * V[i] + {c3} * gi * gi;
            /* no subnormal moments: they slow every later step (see the docstring);
               multiplies, as selects do not vectorise */
            mi = mi * ({ct})({fabs}(mi) >= {tiny});
            vi = vi * ({ct})(vi >= {tiny});
            M[i] = mi;
            V[i] = vi;
            P[i] = P[i] - step * mi / ({sqrt}(vi) + eps);
        }}
    }}
    Py_DECREF(g_c);
    }}
"""


def adam_update(p, m, v, g, step_size, eps_hat, beta1, beta2):
    """(p', m', v') of one Adam step through the kernel (see :class:`AdamUpdate`)."""
    return AdamUpdate(beta1, beta2)(p, m, v, g, step_size, eps_hat)


def _make_adam_inplace(fgraph, node):
    if isinstance(node.op, AdamUpdate) and not node.op.inplace:
        return AdamUpdate(node.op.beta1, node.op.beta2, inplace=True).make_node(
            *node.inputs).outputs
    return False


register_inplace_rewrite("sbdgm_adam_inplace", AdamUpdate, _make_adam_inplace)
