"""How much of the latent space a model uses.

* **Active dimensions** (stick-breaking codes), per example, as the paper's code counts
  them (``definition="original"``, the default): after each break k = 1, ..., K - 1, one
  for each remaining stick :math:`r_k = 1 - \\sum_{j\\le k}\\pi_j` above 1 - coverage
  (0.01). ``definition="remainder_before"`` counts the remainder *before* each stick
  instead, :math:`1 - \\sum_{j<k}\\pi_j` for k = 1, ..., K (so the first stick always
  counts): the smallest n with :math:`\\sum_{k\\le n}\\pi_k \\ge` coverage, the number of
  sticks needed to cover 99 % of the stick. It is always exactly one more than the
  original's count; earlier versions of this package reported it.
* **Average stick weight per dimension** and the **norms of the decoder's outgoing
  weights** (the rows of ``decoder/0/W``, one per latent dimension): the paper's
  Figure 2 puts them side by side.
"""
import numpy as np

DEFAULT_COVERAGE = 0.99


DEFINITIONS = ("original", "remainder_before")


def active_dimensions(weights, coverage=DEFAULT_COVERAGE, definition="original"):
    """Per example, the number of breaks after which the remaining stick exceeds
    1 - coverage (``"original"``), or the number of sticks before which it does
    (``"remainder_before"``: one more); see the module docstring.

    ``weights``: stick weights (N, K), rows summing to one. Returns int array (N,).
    Rows with a non-finite weight get -1.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
    pi = np.asarray(weights, dtype=np.float64)
    if pi.ndim != 2:
        raise ValueError(f"weights must have shape (N, K), got {pi.shape}")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    covered = np.concatenate([np.zeros((len(pi), 1)), np.cumsum(pi[:, :-1], axis=1)], axis=1)
    remaining = 1.0 - covered
    counts = np.sum(remaining > 1.0 - coverage, axis=1)
    if definition == "original":  # the remainder after stick k is the one before k + 1
        counts = counts - 1
    bad = ~np.all(np.isfinite(pi), axis=1)
    return np.where(bad, -1, counts).astype(np.int64)


def summarize_active_dimensions(counts, labels=None):
    """Mean, median, min, max of the counts (over rows that are not -1), overall and per class.

    Returns a JSON-able dict with ``per_class`` {label: mean} when ``labels`` is given,
    and ``n_invalid`` (rows with non-finite weights).
    """
    counts = np.asarray(counts)
    ok = counts >= 0
    c = counts[ok]
    out = {"n": int(len(counts)), "n_invalid": int((~ok).sum()),
           "mean": float(np.mean(c)) if len(c) else None,
           "std": float(np.std(c)) if len(c) else None,
           "median": float(np.median(c)) if len(c) else None,
           "min": int(np.min(c)) if len(c) else None,
           "max": int(np.max(c)) if len(c) else None}
    if labels is not None:
        labels = np.asarray(labels)
        out["per_class"] = {str(int(y)): float(np.mean(counts[ok & (labels == y)]))
                            for y in np.unique(labels[ok])}
    return out


def mean_weight_per_dimension(codes):
    """Average of each code dimension over the rows (non-finite rows left out)."""
    codes = np.asarray(codes, dtype=np.float64)
    ok = np.all(np.isfinite(codes), axis=1)
    return codes[ok].mean(axis=0)


def decoder_weight_norms(lm):
    """Euclidean norm of each row of the decoder's first weight matrix (one per latent dim)."""
    return np.linalg.norm(lm.param("decoder/0/W").astype(np.float64), axis=1)
