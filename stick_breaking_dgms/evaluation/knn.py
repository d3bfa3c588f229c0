r"""Exact Euclidean k-nearest-neighbour classification, vectorised in NumPy blocks.

Squared distances are computed block by block of test rows as
:math:`\|a\|^2 + \|b\|^2 - 2\,a\cdot b` (one matrix product per block, float64 by
default), and only the candidates under a bound are sorted (see
:func:`nearest_neighbours`), so 45,000 x 10,000 codes take seconds.

Tie-breaking, both documented and tested:

* **equal distances**: neighbours are ranked by distance, then by their index in the
  training set; among training examples at the same distance the one that comes first
  in the training set ranks first (so the k nearest are always a well-defined set);
* **equal votes**: the predicted label is the one with the most votes among the k
  nearest; when several labels have the most votes, the one whose best-ranked
  neighbour ranks first wins (equivalently: the label of the nearest neighbour among
  the tied labels).

Rows with a non-finite coordinate are never dropped silently: a training row with one
never becomes a neighbour (it is counted in ``bad_train``); a test row with one gets
no prediction (label -1), counts as an error, and is counted in ``bad_test``.
"""
import time

import numpy as np

DEFAULT_KS = (3, 5, 10)
BLOCK_BYTES = 64 * 2 ** 20  # memory of one block of distances


def nearest_neighbours(train, test, k, dtype=np.float64, block_bytes=BLOCK_BYTES,
                       progress=None):
    r"""Indices (n_test, k) of the k nearest training rows of each test row, nearest first.

    Ties in distance are broken by training index (lower first). Test rows with a
    non-finite value get -1 everywhere; training rows with one are never chosen.
    Returns (indices, distances, bad_train_mask, bad_test_mask).

    Per block of test rows: one matrix product gives :math:`\|b\|^2 - 2a\cdot b` (the
    squared distance less the test row's own norm, which does not change the ranking);
    the k-th smallest value over a strided subset of the training columns bounds the
    k-th smallest over all of them, so only the (few) columns under that bound are
    sorted, by (value, index). The result is exact.
    """
    train = np.ascontiguousarray(train, dtype=dtype)
    test = np.ascontiguousarray(test, dtype=dtype)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test must be 2-D with the same columns, got "
                         f"{train.shape} and {test.shape}")
    bad_train = ~np.all(np.isfinite(train), axis=1)
    bad_test = ~np.all(np.isfinite(test), axis=1)
    n_good = int((~bad_train).sum())
    if n_good == 0:
        raise ValueError("no training row is finite")
    k = int(k)
    if not 1 <= k <= n_good:
        raise ValueError(f"k must be in 1..{n_good} (finite training rows), got {k}")
    train = np.where(bad_train[:, None], 0.0, train)
    test_clean = np.where(bad_test[:, None], 0.0, test)
    train_sq = np.einsum("ij,ij->i", train, train)
    train_sq[bad_train] = np.inf
    test_sq = np.einsum("ij,ij->i", test_clean, test_clean)
    minus_2_train_t = np.ascontiguousarray((-2.0 * train).T)
    n_test, n_train = len(test), len(train)
    block = max(1, int(block_bytes // (8 * max(n_train, 1))))
    stride = max(1, n_train // max(64 * k, 2048))
    indices = np.full((n_test, k), -1, dtype=np.int64)
    sq_dist = np.full((n_test, k), np.nan)
    for start in range(0, n_test, block):
        stop = min(start + block, n_test)
        e = test_clean[start:stop] @ minus_2_train_t
        e += train_sq[None, :]
        sub = e[:, ::stride]
        if sub.shape[1] >= k:
            bound = np.partition(sub, k - 1, axis=1)[:, k - 1]
        else:
            bound = np.full(stop - start, np.inf)
        rows, cols = np.nonzero(e <= bound[:, None])
        vals = e[rows, cols]
        order = np.lexsort((cols, vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        first = np.searchsorted(rows, np.arange(stop - start))
        pos = first[:, None] + np.arange(k)[None, :]
        indices[start:stop] = cols[pos]
        sq_dist[start:stop] = vals[pos] + test_sq[start:stop, None]
        if progress is not None:
            progress.update(stop)
    indices[bad_test] = -1
    sq_dist[bad_test] = np.nan
    return indices, np.sqrt(np.maximum(sq_dist, 0.0)), bad_train, bad_test


def vote(neighbour_labels, n_classes):
    """Majority label per row of ``neighbour_labels`` (n, k) (class indices, nearest first).

    Equal votes go to the tied label whose best-ranked neighbour ranks first.
    """
    neighbour_labels = np.asarray(neighbour_labels)
    n, k = neighbour_labels.shape
    onehot = neighbour_labels[:, :, None] == np.arange(n_classes)[None, None, :]
    counts = onehot.sum(axis=1)
    first = np.where(onehot, np.arange(k)[None, :, None], k).min(axis=1)
    return np.argmax(counts * (k + 1) - first, axis=1)


def knn_classify(train_x, train_y, test_x, ks=DEFAULT_KS, dtype=np.float64, progress=None):
    """Predicted labels of the test rows for each k in ``ks``: {k: labels (n_test,)}.

    Test rows with a non-finite coordinate get the label -1. Also returns the counts
    of non-finite training and test rows: ({k: labels}, {"bad_train": n, "bad_test": n}).
    """
    ks = sorted({int(k) for k in ks})
    train_y = np.asarray(train_y)
    classes, y_index = np.unique(train_y, return_inverse=True)
    idx, _, bad_train, bad_test = nearest_neighbours(train_x, test_x, max(ks), dtype=dtype,
                                                     progress=progress)
    safe = np.where(idx >= 0, idx, 0)
    labels = y_index[safe]
    out = {}
    for k in ks:
        pred = classes[vote(labels[:, :k], len(classes))]
        pred = np.where(bad_test, -1, pred)
        out[k] = pred
    return out, {"bad_train": int(bad_train.sum()), "bad_test": int(bad_test.sum())}


def knn_errors(train_x, train_y, test_x, test_y, ks=DEFAULT_KS, dtype=np.float64,
               progress=None):
    """Test error rates (fractions) of k-NN for each k, with counts and the time taken.

    Returns {"errors": {k: fraction}, "n_errors": {k: count}, "n_test", "n_train",
    "bad_train", "bad_test", "seconds"}.
    """
    started = time.time()
    preds, bad = knn_classify(train_x, train_y, test_x, ks, dtype=dtype, progress=progress)
    test_y = np.asarray(test_y)
    n_err = {k: int(np.sum(p != test_y)) for k, p in preds.items()}
    return {"errors": {k: n_err[k] / len(test_y) for k in n_err}, "n_errors": n_err,
            "n_test": int(len(test_y)), "n_train": int(len(train_y)),
            "bad_train": bad["bad_train"], "bad_test": bad["bad_test"],
            "seconds": time.time() - started}


def knn_errors_over_draws(code_draws, train_y, test_y, ks=DEFAULT_KS, dtype=np.float64,
                          progress=None):
    r"""kNN test errors over several independent draws of the codes: each draw's, their
    mean and spread.

    Parameters
    ----------
    code_draws : iterable of (train_codes, test_codes)
        One pair per draw (a generator, so that one draw's codes are held at a time).
    train_y, test_y : arrays
    ks : iterable of int
    progress : callable or None
        Called with the number of draws done after each draw.

    Returns
    -------
    dict
        ``draws`` (D), ``errors_per_draw`` ({k: [error of draw 1, ..., draw D]},
        fractions), ``mean`` ({k: mean over draws}), ``std`` ({k: the sample standard
        deviation over draws, :math:`\sqrt{\sum_d (e_d - \bar e)^2 / (D - 1)}`; None for
        one draw}), ``min``, ``max``, ``n_test``, ``bad_test`` (non-finite test codes
        summed over draws) and ``seconds``.
    """
    started = time.time()
    ks = sorted({int(k) for k in ks})
    per = {k: [] for k in ks}
    bad_test = 0
    n_test = len(test_y)
    for d, (train_codes, test_codes) in enumerate(code_draws):
        res = knn_errors(train_codes, train_y, test_codes, test_y, ks, dtype=dtype)
        for k in ks:
            per[k].append(float(res["errors"][k]))
        bad_test += res["bad_test"]
        if progress is not None:
            progress(d + 1)
    draws = len(per[ks[0]])
    if draws == 0:
        raise ValueError("no code draw to classify (code_draws was empty)")
    errs = {k: np.asarray(v) for k, v in per.items()}
    return {"draws": draws, "errors_per_draw": per,
            "mean": {k: float(e.mean()) for k, e in errs.items()},
            "std": {k: (float(e.std(ddof=1)) if draws > 1 else None) for k, e in errs.items()},
            "min": {k: float(e.min()) for k, e in errs.items()},
            "max": {k: float(e.max()) for k, e in errs.items()},
            "n_test": int(n_test), "bad_test": int(bad_test),
            "seconds": time.time() - started}
