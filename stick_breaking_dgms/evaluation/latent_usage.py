"""How much of the latent space a model uses.

* **Active dimensions** (stick-breaking codes): the number of sticks needed to cover
  ``coverage`` (99 %) of the stick, per example. As in the paper's code, a stick k
  counts when the stick remaining before it, :math:`r_k = 1 - \\sum_{j<k}\\pi_j`, is
  above 1 - coverage (0.01); the first stick always counts. Equivalently: the smallest
  n with :math:`\\sum_{k\\le n}\\pi_k \\ge` coverage.
* **Average stick weight per dimension** and the **norms of the decoder's outgoing
  weights** (the rows of ``decoder/0/W``, one per latent dimension): the paper's
  Figure 2 puts them side by side.
"""
import numpy as np

DEFAULT_COVERAGE = 0.99


def active_dimensions(weights, coverage=DEFAULT_COVERAGE):
    """Per example, the number of sticks whose remaining stick exceeds 1 - coverage.

    ``weights``: stick weights (N, K), rows summing to one. Returns int array (N,).
    Rows with a non-finite weight get -1.
    """
    pi = np.asarray(weights, dtype=np.float64)
    if pi.ndim != 2:
        raise ValueError(f"weights must have shape (N, K), got {pi.shape}")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    covered = np.concatenate([np.zeros((len(pi), 1)), np.cumsum(pi[:, :-1], axis=1)], axis=1)
    remaining = 1.0 - covered
    counts = np.sum(remaining > 1.0 - coverage, axis=1)
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
