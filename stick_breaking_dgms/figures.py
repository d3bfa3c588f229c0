"""Figures of a reproduction report, sized for a two-column paper (matplotlib, an optional extra).

Install with ``pip install -e .[figures]``. Without matplotlib, :func:`available`
is False and the report is written without figures (it says how to get them).

Every function takes plain NumPy data (or the report's ``results`` dictionary) and writes
one figure atomically, twice: a PNG at ``path`` (300 dpi, to look at) and a PDF beside it
(vector, fonts embedded as TrueType, to put in a paper). Sizes fit a two-column paper:
:data:`SINGLE_COLUMN` (3.25 in) or :data:`DOUBLE_COLUMN` (6.75 in) wide, with 8 pt text
(7 pt ticks and legends), and the axes are labelled in the paper's words.

* :func:`learning_curves`: validation score per epoch, the best epoch marked;
* :func:`latent_usage`: the paper's Figure 2, mean stick weight and decoder weight norm per
  latent dimension;
* :func:`semisup_error_vs_labels`: semi-supervised test error against the fraction of
  labels, ours beside the paper's (Table 2), with error bars;
* :func:`knn_error_vs_k`: kNN test error on latent codes against k, ours beside the paper's;
* :func:`latent_embedding`: a 2-D embedding of latent codes coloured by class (the paper's
  t-SNE panels): t-SNE when scikit-learn is installed, else PCA;
* :func:`image_grid`, :func:`reconstructions`: samples and reconstructions.

:func:`report_figures` makes the figures that need only the report's numbers.
"""
import os
import textwrap

import numpy as np

from .fileio import atomic_path

INSTALL_HINT = 'pip install -e ".[figures]"  (or: pip install "matplotlib>=3.6")'

SINGLE_COLUMN = 3.25  # inches: one column of a two-column paper
DOUBLE_COLUMN = 6.75  # inches: the full width of the page
FONT_SIZE = 8         # points: labels and titles; ticks and legends one point less
PNG_DPI = 300

STYLE = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "legend.fontsize": FONT_SIZE - 1,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text, as publishers ask
    "ps.fonttype": 42,
    "savefig.dpi": PNG_DPI,
}

# the paper's names for the report's series
SERIES_NAMES = {"sb_vae": "SB-VAE", "sb_ssdgm": "SB-DGM", "gauss_vae": "Gauss-VAE",
                "gauss_ssdgm": "Gauss-DGM", "gauss_logit_sb_vae": "Gauss-Logit SB-VAE",
                "gamma_sb_vae": "Gamma SB-VAE", "raw_pixels": "raw pixels",
                "knn_pixels_k5": "kNN (k = 5), pixels"}
_COLOURS = {"sb_vae": "tab:red", "sb_ssdgm": "tab:red", "gauss_vae": "tab:blue",
            "gauss_ssdgm": "tab:blue", "raw_pixels": "0.35", "knn_pixels_k5": "0.35",
            "gauss_logit_sb_vae": "tab:orange", "gamma_sb_vae": "tab:green"}


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


def _figure(width, height, ncols=1):
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, axes[0]


def pdf_path(path):
    """The PDF written beside the PNG ``path``."""
    return os.path.splitext(path)[0] + ".pdf"


def _save(fig, path):
    """Write ``fig`` as the PNG ``path`` and the PDF beside it; return ``path``."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.02)
        with atomic_path(pdf_path(path)) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    return path


def _title(ax, title, width=SINGLE_COLUMN):
    """A title wrapped to the figure's width (about 18 characters per inch at 8 pt)."""
    if title:
        ax.set_title(textwrap.fill(title, int(18 * width)))


def _series_name(key):
    if key in SERIES_NAMES:
        return SERIES_NAMES[key]
    from .published import split_variant
    base, label = split_variant(key)
    return key if label is None else f"{SERIES_NAMES.get(base, base)}, {label}"


def _ordered(keys):
    """Unique keys, the paper's order first (SB, Gauss, other families, pixel baselines)."""
    keys = list(dict.fromkeys(keys))
    rank = {k: i for i, k in enumerate(SERIES_NAMES)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), keys.index(k)))


def _ours_and_published(keys, measured, published):
    """(key, colour, is_published, line style, cells) per series to draw: the paper's
    dashed with open markers, ours solid; series without cells are left out."""
    for i, key in enumerate(keys):
        colour = _colour(key, i)
        for source, style in ((published, dict(ls="--", mfc="white")),
                              (measured, dict(ls="-"))):
            cells = source.get(key) or {}
            if cells:
                yield key, colour, source is published, style, cells


def _legend_ours_published(plt, ax, keys):
    """A legend below the axes: one colour per series, then the line style of ours and
    of the paper's."""
    handles = [plt.Line2D([], [], color=_colour(k, i), marker="s", ls="", ms=4)
               for i, k in enumerate(keys)]
    labels = [_series_name(k) for k in keys]
    handles += [plt.Line2D([], [], color="0.2", marker="o", ls="-"),
                plt.Line2D([], [], color="0.2", marker="o", ls="--", mfc="white")]
    labels += ["ours", "published"]
    _legend_below(ax, handles, labels)


def _legend_below(ax, handles, labels):
    """The legend under the axes, three columns: it never hides a curve."""
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
              handlelength=1.8, columnspacing=1.0, borderaxespad=0.0)


def _colour(key, i):
    return _COLOURS.get(key, f"C{i % 10}")


def learning_curves(curves, path, title="", ylabel="validation reconstruction NLL (nats)",
                    keys=None):
    """Validation score per epoch, one line per run, each run's best epoch marked.

    ``curves`` maps a label to ``(epochs, scores)`` (lower is better; non-finite scores are
    left out). The best epoch (the lowest finite score, as early stopping picks it) gets a
    dot and a dotted vertical line, and the legend gives it. ``keys`` maps a label to its
    model key, which gives the model the colour it has in the other figures.
    """
    keys = keys or {}
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, (ax,) = _figure(SINGLE_COLUMN, 2.3)
        finite = []
        for i, (label, (epochs, scores)) in enumerate(curves.items()):
            epochs = np.asarray(epochs)
            scores = np.asarray(scores, dtype=float)
            ok = np.isfinite(scores)
            colour = _colour(keys.get(label), i)
            if not ok.any():
                ax.plot([], [], color=colour, label=f"{label} (no finite score)")
                continue
            finite.append(scores[ok])
            best = int(np.flatnonzero(ok)[np.argmin(scores[ok])])
            ax.plot(epochs[ok], scores[ok], color=colour,
                    label=f"{label}: best epoch {int(epochs[best])}")
            ax.axvline(epochs[best], color=colour, lw=0.7, ls=":")
            ax.plot([epochs[best]], [scores[best]], "o", color=colour, ms=4, mec="white",
                    mew=0.5, zorder=3)
        if finite:  # the first epochs are far above the rest: show the interesting range
            values = np.concatenate(finite)
            lo = np.min(values)
            hi = np.percentile(values, 95) if values.size >= 20 else np.max(values)
            pad = 0.05 * (hi - lo) + 1e-9
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        _title(ax, title)
        ax.grid(alpha=0.3, lw=0.4)
        ax.legend(loc="upper right")
    return _save(fig, path)


def latent_usage(panels, path):
    """The paper's Figure 2: per latent dimension, mean stick weight and decoder weight norm.

    ``panels``: list of dicts with ``title``, ``row_norms`` (K,): the norm of each latent
    dimension's outgoing weights in the decoder's first layer, and optionally
    ``mean_weight`` (K,): the average stick weight per dimension (stick-breaking models).
    One panel per column of a two-column page (one panel: one column wide).
    """
    plt = _pyplot()
    with plt.rc_context(STYLE):
        n = len(panels)
        width = SINGLE_COLUMN if n == 1 else DOUBLE_COLUMN
        fig, axes = _figure(width, 2.2, ncols=n)
        for ax, panel in zip(axes, panels):
            norms = np.asarray(panel["row_norms"], dtype=float)
            dims = np.arange(1, len(norms) + 1)
            ax.bar(dims, norms, color="tab:blue", alpha=0.7, width=0.8)
            ax.set_xlabel("latent dimension $k$")
            ax.set_ylabel("decoder weight norm", color="tab:blue")
            ax.tick_params(axis="y", colors="tab:blue")
            ax.set_xlim(0.3, len(norms) + 0.7)
            if panel.get("mean_weight") is not None:
                ax2 = ax.twinx()
                ax2.plot(dims, np.asarray(panel["mean_weight"], float), color="tab:red",
                         marker=".", ms=3)
                ax2.set_ylabel(r"mean stick weight $\bar\pi_k$", color="tab:red")
                ax2.tick_params(axis="y", colors="tab:red")
                ax2.set_ylim(bottom=0)
            _title(ax, panel["title"], width / n)
        fig.tight_layout(pad=0.3, w_pad=1.0)
    return _save(fig, path)


def semisup_error_vs_labels(measured, published, path, title=""):
    """Semi-supervised test error against the percentage of labelled training data.

    ``measured`` and ``published`` map a model key (``sb_ssdgm``, ``gauss_ssdgm``,
    ``knn_pixels_k5``, ...) to ``{labels_percent: (error in %, ± in % or None)}``. Ours are
    solid lines with filled markers, the paper's dashed with open markers, both with error
    bars where there is a ±; the percentages on a log axis (1, 5, 10).
    """
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, (ax,) = _figure(SINGLE_COLUMN, 2.4)
        keys = _ordered(list(measured) + list(published))
        ticks = set()
        for key, colour, is_published, style, cells in _ours_and_published(keys, measured,
                                                                         published):
            pcts = sorted(cells, key=float)
            x = np.array([float(p) for p in pcts])
            y = np.array([cells[p][0] for p in pcts], dtype=float)
            err = np.array([np.nan if cells[p][1] is None else cells[p][1] for p in pcts],
                           dtype=float)
            ticks.update(x.tolist())
            # published points a little left, ours a little right: bars do not overlap
            shift = 0.96 if is_published else 1.04
            ax.errorbar(x * shift, y, yerr=np.where(np.isfinite(err), err, 0.0),
                        color=colour, marker="o", capsize=2, elinewidth=0.7,
                        capthick=0.7, **style)
        ax.set_xscale("log")
        if ticks:
            ticks = sorted(ticks)
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlim(min(ticks) / 1.4, max(ticks) * 1.4)
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel("test error (%)")
        _title(ax, title)
        ax.grid(alpha=0.3, lw=0.4)
        _legend_ours_published(plt, ax, keys)
    return _save(fig, path)


def knn_error_vs_k(measured, published, path, title=""):
    """kNN test error on latent codes (and raw pixels) against k.

    ``measured`` and ``published`` map a model key (``sb_vae``, ``gauss_vae``,
    ``raw_pixels``, ...) to ``{k: error in %}``. Ours solid with filled markers, the
    paper's dashed with open markers.
    """
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, (ax,) = _figure(SINGLE_COLUMN, 2.3)
        keys = _ordered(list(measured) + list(published))
        ks = set()
        for key, colour, is_published, style, cells in _ours_and_published(keys, measured,
                                                                         published):
            kk = sorted(cells, key=int)
            ks.update(int(k) for k in kk)
            ax.plot([int(k) for k in kk], [float(cells[k]) for k in kk], color=colour,
                    marker="o", **style)
        if ks:
            ax.set_xticks(sorted(ks))
        ax.set_xlabel("number of neighbours $k$")
        ax.set_ylabel("kNN test error (%)")
        _title(ax, title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3, lw=0.4)
        _legend_ours_published(plt, ax, keys)
    return _save(fig, path)


def embed_2d(codes, method="auto", seed=0):
    """Two coordinates per row of ``codes`` (N, D): ``(embedding (N, 2), method used)``.

    ``method``: ``"tsne"`` (scikit-learn's TSNE, the paper's choice), ``"pca"`` (the two
    leading principal components, by NumPy's SVD) or ``"auto"``: t-SNE when scikit-learn
    is installed, else PCA. Rows with a non-finite value get NaN coordinates.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a matrix (N, D), got shape {codes.shape}")
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"method must be 'auto', 'tsne' or 'pca', got {method!r}")
    if method == "auto":
        try:
            import sklearn.manifold  # noqa: F401
            method = "tsne"
        except ImportError:
            method = "pca"
    out = np.full((len(codes), 2), np.nan)
    ok = np.all(np.isfinite(codes), axis=1)
    x = codes[ok]
    if len(x) == 0:
        return out, method
    if method == "tsne" and len(x) > 5:
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, (len(x) - 1) / 3.0))
        out[ok] = TSNE(n_components=2, perplexity=perplexity, init="pca",
                       random_state=seed).fit_transform(x)
        return out, "tsne"
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    out[ok] = proj
    return out, "pca"


def latent_embedding(codes, labels, path, title="", method="auto", max_points=2000, seed=0):
    """A 2-D embedding of latent codes, one dot per example coloured by its class.

    The paper's t-SNE panels: :func:`embed_2d` of at most ``max_points`` rows (a seeded
    draw), t-SNE when scikit-learn is installed, else PCA; the axis labels say which.
    Returns ``path``.
    """
    codes = np.asarray(codes)
    labels = np.asarray(labels)
    if len(codes) != len(labels):
        raise ValueError(f"{len(codes)} codes but {len(labels)} labels")
    if len(codes) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(codes), max_points,
                                                          replace=False))
        codes, labels = codes[keep], labels[keep]
    xy, used = embed_2d(codes, method, seed)
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, (ax,) = _figure(SINGLE_COLUMN, 2.9)
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=2.0, color=cmap(i % cmap.N), lw=0,
                       label=str(c), rasterized=True)
        name = {"tsne": "t-SNE dimension", "pca": "principal component"}[used]
        ax.set_xlabel(f"{name} 1")
        ax.set_ylabel(f"{name} 2")
        ax.set_xticks([])
        ax.set_yticks([])
        _title(ax, title)
        ax.legend(title="class", loc="center left", bbox_to_anchor=(1.0, 0.5),
                  markerscale=3.0, handletextpad=0.2, borderaxespad=0.2)
        ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def image_grid(images, image_shape, path, title="", ncols=10):
    """Images (N, H*W) with values in [0, 1] in a grid of ``ncols`` columns, one column wide."""
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
    with plt.rc_context(STYLE):
        lines = len(textwrap.wrap(title, int(18 * SINGLE_COLUMN))) if title else 0
        height = SINGLE_COLUMN * canvas.shape[0] / canvas.shape[1] + 0.15 * lines
        fig, (ax,) = _figure(SINGLE_COLUMN, height)
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        _title(ax, title)
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


# -- from the report's numbers ------------------------------------------------------------

def _percent(x):
    return None if x is None else 100.0 * float(x)


def semisup_series(results, dataset):
    """``(measured, published)`` for :func:`semisup_error_vs_labels` from a report's results.

    Measured: the mean test error over runs with the standard deviation over runs (None
    for one run) per model and label percentage, and the kNN (k = 5) pixel baseline over
    its label draws; published: the paper's Table 2 with its ±.
    """
    from .published import records
    measured = {}
    for model, cells in (results.get("semisup", {}).get(dataset) or {}).items():
        measured[model] = {str(p): (_percent(c["mean"]), _percent(c.get("std")))
                           for p, c in cells.items()}
    baseline = results.get("semisup_knn_baseline", {}).get(dataset) or {}
    if baseline:
        measured["knn_pixels_k5"] = {str(p): (_percent(c["mean"]), _percent(c.get("std")))
                                     for p, c in baseline.items()}
    published = {}
    for rec in records("semisup", dataset):
        published.setdefault(rec.model, {})[str(rec.setting["labels_percent"])] = (rec.value,
                                                                                    rec.pm)
    return measured, published


def knn_series(results, dataset, codes="sampled"):
    """``(measured, published)`` for :func:`knn_error_vs_k` from a report's results."""
    from .published import records
    measured = {}
    for model, entry in (results.get("knn", {}).get(dataset) or {}).items():
        res = entry.get("pixels") if model == "raw_pixels" else entry.get(codes)
        if res:
            measured[model] = {int(k): 100.0 * float(v) for k, v in res["errors"].items()}
    published = {}
    for rec in records("knn", dataset):
        published.setdefault(rec.model, {})[int(rec.setting["k"])] = rec.value
    return measured, published


def report_figures(results, fig_dir):
    """The figures made from a report's numbers alone, per data set; ``{key: png path}``.

    ``semisup_error_<data>``: semi-supervised error against label fraction, where the
    report has semi-supervised runs; ``knn_error_<data>``: kNN error against k on sampled
    codes, where it has kNN results.
    """
    from .published import dataset_name
    made = {}
    for dataset in sorted(results.get("semisup") or {}):
        measured, published = semisup_series(results, dataset)
        path = os.path.join(fig_dir, f"semisup_error_{dataset}.png")
        semisup_error_vs_labels(measured, published, path, dataset_name(dataset))
        made[f"semisup_error_{dataset}"] = path
    for dataset in sorted(results.get("knn") or {}):
        measured, published = knn_series(results, dataset)
        if not measured:
            continue
        path = os.path.join(fig_dir, f"knn_error_{dataset}.png")
        knn_error_vs_k(measured, published, path,
                       f"{dataset_name(dataset)}: kNN on sampled codes")
        made[f"knn_error_{dataset}"] = path
    return made
