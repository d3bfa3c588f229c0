"""PNG figures of a reproduction report (matplotlib, an optional extra).

Install with ``pip install -e .[figures]``. Without matplotlib, :func:`available`
is False and the report is written without figures (it says how to get them).
Every function takes plain NumPy data and writes one PNG atomically.
"""
import numpy as np

from .fileio import atomic_path

INSTALL_HINT = 'pip install -e ".[figures]"  (or: pip install "matplotlib>=3.6")'


def available():
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)  # files only, never a window
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def learning_curves(curves, path, title="Validation NLL per epoch"):
    """One line per run: ``curves`` maps a label to (epochs, validation scores)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, (epochs, scores) in curves.items():
        scores = np.asarray(scores, dtype=float)
        ax.plot(np.asarray(epochs), scores, label=label, lw=1.3)
    finite = np.concatenate([np.asarray(s, float)[np.isfinite(s)] for _, s in curves.values()]
                            or [np.zeros(0)])
    if finite.size:  # the first epochs are far above the rest: show the interesting range
        lo, hi = np.min(finite), np.percentile(finite, 95)
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation reconstruction NLL (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def latent_usage(panels, path):
    """The paper's Figure 2: per latent dimension, decoder weight norms (and mean stick weights).

    ``panels``: list of dicts with ``title``, ``row_norms`` (K,), and optionally
    ``mean_weight`` (K,) (average stick weight per dimension, SB models).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        norms = np.asarray(panel["row_norms"], dtype=float)
        dims = np.arange(1, len(norms) + 1)
        ax.bar(dims, norms, color="tab:blue", alpha=0.75, label="decoder weight norm")
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("norm of decoder/0/W row", color="tab:blue")
        if panel.get("mean_weight") is not None:
            ax2 = ax.twinx()
            ax2.plot(dims, np.asarray(panel["mean_weight"], float), color="tab:red", marker=".",
                     lw=1.2, label="average stick weight")
            ax2.set_ylabel("average stick weight (test set)", color="tab:red")
            ax2.set_ylim(bottom=0)
        ax.set_title(panel["title"])
    fig.tight_layout()
    return _save(fig, path)


def image_grid(images, image_shape, path, title="", ncols=10):
    """Images (N, H*W) with values in [0, 1] in a grid of ``ncols`` columns."""
    plt = _pyplot()
    images = np.asarray(images, dtype=float)
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    h, w = image_shape
    canvas = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img.reshape(h, w)
    fig, ax = plt.subplots(figsize=(ncols * w / 28 * 0.9, nrows * h / 28 * 0.9 + 0.4))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def reconstructions(originals, recons, image_shape, path, title="", ncols=10):
    """Pairs of rows: originals above their reconstructions."""
    originals = np.asarray(originals)
    recons = np.asarray(recons)
    rows = []
    for start in range(0, len(originals), ncols):
        rows.append(originals[start:start + ncols])
        rows.append(recons[start:start + ncols])
    return image_grid(np.concatenate(rows), image_shape, path, title, ncols)
