"""The report's figures (stick_breaking_dgms.figures) from small synthetic inputs.

Each figure function writes a PNG and a PDF beside it, both non-empty, at the sizes of a
two-column paper; the helpers that read a report's numbers pick the right series.
"""
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from stick_breaking_dgms import figures  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)


def check_written(path):
    assert os.path.basename(path).endswith(".png")
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    pdf = figures.pdf_path(path)
    assert pdf == path[:-4] + ".pdf"
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert os.path.getsize(path) > 1000 and os.path.getsize(pdf) > 1000
    leftovers = [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    assert not leftovers


def png_width_inches(path):
    import matplotlib.image
    return matplotlib.image.imread(path).shape[1] / figures.PNG_DPI


def test_learning_curves_mark_the_best_epoch(tmp_path):
    epochs = np.arange(1, 41)
    sb = 90 + 30 * np.exp(-epochs / 8.0) + 0.05 * epochs
    gauss = 85 + 30 * np.exp(-epochs / 6.0)
    gauss[5] = np.nan  # a NaN epoch is left out, not plotted as a gap in the scale
    path = figures.learning_curves({"SB-VAE": (epochs, sb), "Gauss-VAE": (epochs, gauss)},
                                   str(tmp_path / "curves.png"), "MNIST")
    check_written(path)
    assert png_width_inches(path) <= figures.SINGLE_COLUMN + 0.3


def _pixels_of(path, colour):
    import matplotlib.colors
    import matplotlib.image
    rgb = np.asarray(matplotlib.colors.to_rgb(colour))
    image = matplotlib.image.imread(path)[..., :3]
    return int(np.sum(np.all(np.abs(image - rgb) < 0.02, axis=-1)))


def test_learning_curves_give_each_model_its_colour_of_the_other_figures(tmp_path):
    epochs = np.arange(1, 41)
    curves = {"SB-VAE": (epochs, 90 + 30 * np.exp(-epochs / 8.0)),
              "Gauss-VAE": (epochs, 85 + 30 * np.exp(-epochs / 6.0))}
    keys = {"SB-VAE": "sb_vae", "Gauss-VAE": "gauss_vae"}
    path = figures.learning_curves(curves, str(tmp_path / "keyed.png"), keys=keys)
    assert _pixels_of(path, "tab:red") > 50 and _pixels_of(path, "tab:blue") > 50
    assert _pixels_of(path, "tab:orange") == 0
    # without keys, the plain colour cycle
    path = figures.learning_curves(curves, str(tmp_path / "plain.png"))
    assert _pixels_of(path, "tab:orange") > 50 and _pixels_of(path, "tab:red") == 0


def test_learning_curves_without_a_finite_score(tmp_path):
    path = figures.learning_curves({"run": (np.arange(3), np.full(3, np.nan))},
                                   str(tmp_path / "nan.png"))
    check_written(path)


def test_latent_usage(tmp_path):
    k = 20
    panels = [{"title": "SB-VAE (MNIST)", "row_norms": RNG.uniform(30, 50, k),
               "mean_weight": np.exp(-np.arange(k) / 4.0) / 4.0},
              {"title": "Gauss-VAE (MNIST)", "row_norms": RNG.uniform(0, 30, k)}]
    path = figures.latent_usage(panels, str(tmp_path / "usage.png"))
    check_written(path)
    assert png_width_inches(path) <= figures.DOUBLE_COLUMN + 0.3


def test_semisup_error_against_label_fraction(tmp_path):
    measured = {"sb_ssdgm": {"10": (4.99, None), "5": (5.35, 0.2), "1": (8.26, 0.5)},
                "knn_pixels_k5": {"10": (6.3, 0.16), "5": (8.2, 0.3), "1": (16.4, 0.8)}}
    published = {"sb_ssdgm": {"10": (4.86, 0.14), "5": (5.29, 0.39), "1": (7.34, 0.47)}}
    path = figures.semisup_error_vs_labels(measured, published, str(tmp_path / "ss.png"),
                                           "MNIST")
    check_written(path)


def test_knn_error_against_k(tmp_path):
    measured = {"sb_vae": {3: 11.9, 5: 11.0, 10: 10.8}, "raw_pixels": {3: 2.7, 5: 2.8, 10: 3.1}}
    published = {"sb_vae": {3: 9.34, 5: 8.65, 10: 8.9}}
    path = figures.knn_error_vs_k(measured, published, str(tmp_path / "knn.png"))
    check_written(path)


@pytest.mark.parametrize("method", ["auto", "pca"])
def test_latent_embedding(tmp_path, method):
    labels = RNG.integers(0, 10, 300)
    codes = RNG.normal(0, 3, (10, 8))[labels] + RNG.normal(0, 1, (300, 8))
    codes[3] = np.nan  # a non-finite code is left out, not a crash
    path = figures.latent_embedding(codes, labels, str(tmp_path / f"emb_{method}.png"),
                                    "SB-VAE", method=method, max_points=200)
    check_written(path)


def test_pca_embedding_is_the_leading_principal_plane():
    rng = np.random.default_rng(1)
    plane = rng.normal(0, 1, (200, 2)) * [10.0, 3.0]
    codes = np.hstack([plane, 0.01 * rng.normal(0, 1, (200, 3))])
    xy, used = figures.embed_2d(codes, "pca")
    assert used == "pca" and xy.shape == (200, 2)
    # the plane of the two high-variance coordinates: nearly all the variance, first axis first
    variances = xy.var(axis=0)
    assert variances[0] >= variances[1]
    assert variances.sum() == pytest.approx(codes.var(axis=0).sum(), rel=1e-4)
    with pytest.raises(ValueError):
        figures.embed_2d(codes, "umap")


def test_image_grid_and_reconstructions(tmp_path):
    images = RNG.uniform(0, 1, (20, 28 * 20))
    check_written(figures.image_grid(images, (28, 20), str(tmp_path / "grid.png"),
                                     "samples from the prior"))
    path = figures.reconstructions(images[:10], images[10:], (28, 20),
                                   str(tmp_path / "recon.png"), "a long title " * 12)
    check_written(path)
    assert png_width_inches(path) <= figures.SINGLE_COLUMN + 0.3


def test_report_figures_from_results(tmp_path):
    results = {
        "semisup": {"mnist": {"sb_ssdgm": {
            "10": {"mean": 0.0499, "std": None}, "1": {"mean": 0.0826, "std": 0.004}}}},
        "semisup_knn_baseline": {"mnist": {"10": {"mean": 0.063, "std": 0.0016}}},
        "knn": {"mnist": {"sb_vae": {"sampled": {"errors": {"3": 0.119, "5": 0.110}},
                                     "mean": {"errors": {"3": 0.08, "5": 0.08}}},
                          "raw_pixels": {"pixels": {"errors": {"3": 0.0265, "5": 0.0277}}}}},
    }
    measured, published = figures.semisup_series(results, "mnist")
    assert measured["sb_ssdgm"]["10"] == (pytest.approx(4.99), None)
    assert measured["knn_pixels_k5"]["10"][1] == pytest.approx(0.16)
    assert published["sb_ssdgm"]["10"] == (4.86, 0.14)  # the paper's Table 2
    measured, published = figures.knn_series(results, "mnist")
    assert measured["sb_vae"] == {3: pytest.approx(11.9), 5: pytest.approx(11.0)}
    assert published["gauss_vae"][3] == 28.4
    made = figures.report_figures(results, str(tmp_path))
    assert sorted(made) == ["knn_error_mnist", "semisup_error_mnist"]
    for path in made.values():
        check_written(path)
