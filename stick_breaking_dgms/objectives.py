r"""Likelihoods and label terms, per example (summed over the last axis).

Bernoulli: :math:`-\sum_d x_d \log p_d + (1 - x_d)\log(1 - p_d)` with
:math:`p = \mathrm{sigmoid}(\ell)`, computed from the logits :math:`\ell` as
:math:`\sum_d \mathrm{softplus}(\ell_d) - x_d \ell_d` (the same number, without
overflow or log(0)). The data are grey levels in [0, 1], not binarised.

Gaussian: :math:`\tfrac12 \sum_d (x_d - \hat x_d)^2`, as the original (unit variance,
constants dropped).

The Bernoulli likelihood of matrices goes through the fused kernel
:class:`.kernels.BernoulliNLL` (the sum and its gradient in one vectorised pass);
:func:`bernoulli_nll_graph` is the same formula as a plain Aesara graph.
"""
from .backend import at, softplus

LIKELIHOODS = ("bernoulli", "gaussian")


def bernoulli_nll_expr(x, logits):
    """-log p(x | logits) per example, summed over the last axis.

    ``x`` and ``logits`` are (N, D) matrices, or (N, C, D) logits scored against x of
    shape (N, 1, D) (each example under C decoder outputs) or (N, C, D).
    """
    from .kernels import bernoulli_nll
    x, logits = at.as_tensor_variable(x), at.as_tensor_variable(logits)
    if logits.ndim == 2 and x.ndim == 2:
        return bernoulli_nll(x, logits)
    if logits.ndim == 3 and x.ndim == 3:
        c, d = logits.shape[1], logits.shape[2]  # -1 for N * C: see models.decode_all_labels
        rows = x[:, 0, :] if x.broadcastable[1] else x.reshape((-1, d))
        return bernoulli_nll(rows, logits.reshape((-1, d))).reshape((-1, c))
    return bernoulli_nll_graph(x, logits)


def bernoulli_nll_graph(x, logits):
    """-log p(x | logits) as an Aesara graph (any broadcastable shapes)."""
    return at.sum(softplus(logits) - x * logits, axis=-1)


def gaussian_nll_expr(x, mean):
    """0.5 * ||x - mean||^2 per example, summed over the last axis."""
    return 0.5 * at.sum((x - mean) ** 2, axis=-1)


def nll_expr(likelihood, x, decoder_output):
    """Dispatch on the likelihood's name; ``decoder_output`` is logits or means."""
    if likelihood == "bernoulli":
        return bernoulli_nll_expr(x, decoder_output)
    if likelihood == "gaussian":
        return gaussian_nll_expr(x, decoder_output)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def categorical_nll_expr(y, probs):
    """-log q(y | x) for integer labels ``y`` and class probabilities (N, C).

    The label's probability is picked with a one-hot mask over the C classes rather than
    by indexing rows with ``arange(N)``: the same value bit for bit, and a graph whose
    shapes JAX knows when it compiles (N is only known at run time).
    """
    one_hot = at.eq(y[:, None], at.arange(probs.shape[1])[None, :])
    return -at.log(at.sum(probs * one_hot, axis=1))


def categorical_entropy_expr(probs):
    """H[q] = -sum_c q_c log q_c, per row."""
    return -at.sum(probs * at.log(probs), axis=-1)


def prediction_errors_expr(y, probs):
    """Number of rows whose argmax differs from the integer label."""
    return at.sum(at.neq(at.argmax(probs, axis=-1), y))
