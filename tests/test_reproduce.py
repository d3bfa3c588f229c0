"""The reproduce command on short real-MNIST runs, and the regression check against tests/data.

One module-scoped fixture trains the regression runs (SB-VAE and Gauss-VAE for three
epochs, SB-DGM for one; see stick_breaking_dgms.evaluation.regression) and runs the
reproduce command on them; the tests read its report and numbers.
"""
import json
import math
import os

import numpy as np
import pytest

from stick_breaking_dgms import reproduce
from stick_breaking_dgms.report import format_number, setting_text
from stick_breaking_dgms.evaluation import regression
from stick_breaking_dgms.published import dataset_name, model_name, records

pytestmark = pytest.mark.slow

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "regression_mnist.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("regression")
    report, metrics = regression.run(str(work))
    with open(os.path.join(report, "results.json")) as f:
        results = json.load(f)
    return str(work), report, metrics, results


def test_regression_numbers_match_the_recorded_reference(regression_run):
    _, _, metrics, _ = regression_run
    with open(REFERENCE) as f:
        reference = json.load(f)
    assert set(metrics) == set(reference["metrics"]), "a compared number went missing or is new"
    rows = regression.compare(metrics, reference)
    failed = [f"{name}: {value} vs reference {expected} +- {tol}"
              for name, value, expected, tol, ok in rows if not ok]
    assert not failed, ("evaluation numbers moved beyond tolerance (re-record with python -m "
                        "stick_breaking_dgms.evaluation.regression --record "
                        "tests/data/regression_mnist.json if intended):\n" + "\n".join(failed))


def test_report_contains_every_table_cell(regression_run):
    _, report, _, results = regression_run
    with open(os.path.join(report, "report.md")) as f:
        text = f.read()
    for title in ("### Marginal likelihood", "### kNN test error", "### Semi-supervised"):
        assert title in text
    cells = results["cells"]
    published = [c for c in cells if c["published"] is not None]
    # every published number of the three tables has its cell
    expected = {(r.table, r.dataset, r.model, tuple(sorted(r.setting.items())))
                for t in ("likelihood", "knn", "semisup") for r in records(t)}
    got = {(c["table"], c["dataset"], c["model"],
            tuple(sorted((k, v) for k, v in c["setting"].items() if k != "codes")))
           for c in published}
    assert got == expected
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for c in cells:
        setting = setting_text(c["setting"]) or "—"
        start = f"| {model_name(c['model'])} | {dataset_name(c['dataset'])} | {setting} |"
        matching = [r for r in rows if r.startswith(start)]
        assert len(matching) == 1, start
        row = matching[0]
        if c["published"] is not None:
            assert f"{c['published']:.2f}" in row
        if c["measured"] is not None:
            assert f"{c['measured']:.2f}" in row and c["verdict"] in row
            if c["model"] not in ("raw_pixels", "knn_pixels_k5"):  # one run each here
                assert "| 1 (single run) |" in row, row
        else:
            assert "not measured" in row
    # what the tiny runs measure is filled in
    measured = {(c["table"], c["model"]) for c in cells if c["measured"] is not None}
    assert {("likelihood", "sb_vae"), ("likelihood", "gauss_vae"), ("knn", "sb_vae"),
            ("knn", "gauss_vae"), ("knn", "raw_pixels"), ("semisup", "sb_ssdgm"),
            ("semisup", "knn_pixels_k5")} <= measured
    assert "## Active dimensions" in text and "## Importance-sampling diagnostics" in text
    # the published active dimensions (MNIST+rot, not measured by these MNIST runs)
    for rec in records("active_dimensions"):
        row = [r for r in rows if r.startswith(f"| {dataset_name(rec.dataset)} | "
                                               f"{rec.setting['subset']} |")]
        assert len(row) == 1 and f"{rec.value:.1f}" in row[0] and "not measured" in row[0]
    assert "infinite-weight samples" in text
    per_example = np.load(os.path.join(report, "per_example.npz"))
    assert per_example["likelihood/mnist/sb_vae/log_px"].shape == (500,)
    counts = per_example["active_dimensions/mnist/sb_vae/mean"]
    assert counts.shape == (500,) and counts.mean() == pytest.approx(
        results["active_dimensions"]["mnist"]["sb_vae"]["mean"]["mean"])


def test_report_has_every_figure(regression_run):
    pytest.importorskip("matplotlib")
    _, report, _, results = regression_run
    with open(os.path.join(report, "report.md")) as f:
        text = f.read()
    names = ["learning_curves_mnist", "latent_usage_mnist"] + [
        f"{kind}_{model}_mnist" for kind in ("prior_samples", "reconstructions")
        for model in ("sb_vae", "gauss_vae")]
    for name in names:
        rel = results["figures"][name]
        path = os.path.join(report, rel)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, path
        assert os.path.getsize(path) > 5000
        assert f"]({rel})" in text


def test_mean_elbo_is_never_above_the_importance_sampled_estimate(regression_run):
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.evaluation.likelihood import (importance_sampled_log_likelihood,
                                                           summarize)
    from stick_breaking_dgms.evaluation.loading import load_model
    _, _, _, results = regression_run
    data = load_dataset("mnist", seed=1234)
    x = data.test_x[:500]
    for info in results["checkpoints"]:
        if info["model"] not in ("sb_vae", "gauss_vae"):
            continue
        s = results["likelihood"]["mnist"][info["model"]]
        log_px, se = -float(s["mean_nll"]), float(s["se_nll"])
        assert s["elbo_below_is"] is True
        # an ELBO from independent draws (other seed, other S)
        lm = load_model(info["path"])
        elbo = summarize(importance_sampled_log_likelihood(lm, x, samples=5, seed=99))
        assert float(elbo["mean_elbo"]) <= log_px + se
        assert s["nan_samples"] == 0 and s["n_nonfinite"] == 0


def test_gauss_vae_elbo_from_the_training_graph_agrees_with_the_importance_weights(
        regression_run):
    """The Gauss-VAE's ELBO two independent ways: the training objective (one-sample NLL
    plus the analytic KL, averaged over draws) and the mean log importance weight of the
    evaluation (log p(x|z) + log p(z) - log q(z|x) in float64). A wrong density term in
    either shifts one of them; both must also stay below the IS estimate of log p(x)."""
    from stick_breaking_dgms.backend import at, floatX_as, function
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.evaluation.loading import load_model
    _, _, _, results = regression_run
    (info,) = [c for c in results["checkpoints"] if c["model"] == "gauss_vae"]
    s = results["likelihood"]["mnist"]["gauss_vae"]
    lm = load_model(info["path"])
    x = load_dataset("mnist", seed=1234).test_x[:500].astype(lm.floatX)
    with floatX_as(lm.floatX):
        xv, eps = at.matrix("x"), at.matrix("eps")
        nll, kl = lm.net.negative_elbo_terms(xv, eps)
        f = function([xv, eps], nll + kl)
    rng = np.random.default_rng(5)
    draws = np.stack([f(x, rng.standard_normal((len(x), lm.net.latent.size)).astype(lm.floatX))
                      for _ in range(20)])
    elbo_training = -float(np.mean(draws))
    se = float(np.std(draws.mean(axis=0), ddof=1) / np.sqrt(len(x)))
    elbo_weights = float(s["mean_elbo"])
    assert abs(elbo_training - elbo_weights) < 0.5, (elbo_training, elbo_weights)
    assert elbo_training <= -float(s["mean_nll"]) + 3 * (se + float(s["se_nll"]))


def test_knn_over_code_draws_keeps_the_sampled_cell_as_its_first_draw(regression_run):
    """The draws of the sampled codes (the regression recipe's --knn-code-draws; 10 by
    default): draw 1 of the training sampler is the 'sampled codes' cell (the paper's
    one-draw protocol); the report shows the rows."""
    _, report, _, results = regression_run
    recipe = regression.EVALUATE
    draws = int(recipe[recipe.index("--knn-code-draws") + 1])
    text = open(os.path.join(report, "report.md")).read()
    assert "### kNN test error over independent code draws" in text
    for model in ("sb_vae", "gauss_vae"):
        (entry,) = results["knn_code_draws"]["mnist"][model]
        sampled = results["knn"]["mnist"][model]["sampled"]["errors"]
        mean = results["knn"]["mnist"][model]["mean"]["errors"]
        for k in ("3", "5", "10"):
            per_draw = entry["training_sampler"]["errors_per_draw"][k]
            assert len(per_draw) == draws and per_draw[0] == sampled[k]
            assert entry["training_sampler"]["mean"][k] == pytest.approx(np.mean(per_draw))
            assert len(entry["exact_posterior"]["errors_per_draw"][k]) == draws
            assert entry["posterior_mean"]["errors"][k] == mean[k]
        assert f"| {model_name(model)} | MNIST | exact posterior | 1234 | {draws} |" in text
    # the default protocols are ours only: no likelihood protocol table
    assert "### Likelihood: test -log p(x) under each protocol" not in text


def test_existing_report_folder_gets_a_counter_and_no_matplotlib_is_explained(
        regression_run, monkeypatch):
    work, report, _, results = regression_run
    ss = [c["path"] for c in results["checkpoints"] if c["model"] == "sb_ssdgm"]
    from stick_breaking_dgms import figures
    monkeypatch.setattr(figures, "available", lambda: False)
    before = open(os.path.join(report, "report.md")).read()
    code = reproduce.main(ss + ["--out", report, "--table", "semisup", "--test-subset", "200",
                                "--knn-draws", "1", "--progress", "never",
                                "--blas-threads", "1"])
    assert code == 0
    assert open(os.path.join(report, "report.md")).read() == before
    second = report + "_1"
    text = open(os.path.join(second, "report.md")).read()
    assert "matplotlib is not installed" in text and "[figures]" in text
    assert "| SB-DGM | MNIST | 10 % labels |" in text
    assert "| SB-DGM | MNIST | 5 % labels | 5.29 ± 0.39 | not measured |" in text
    assert not os.path.exists(os.path.join(second, "figures"))


def test_train_then_evaluate(tmp_path):
    out = str(tmp_path / "report")
    code = reproduce.main(["--train", "gauss_vae", "--max-epoch", "1",
                           "--experiment-dir", str(tmp_path / "runs"),
                           "--train-args", "--hidden-size 20 --blas-threads 1",
                           "--table", "likelihood", "--test-subset", "50", "--samples", "5",
                           "--no-figures", "--progress", "never", "--out", out,
                           "--blas-threads", "1"])
    assert code == 0
    results = json.load(open(os.path.join(out, "results.json")))
    (info,) = results["checkpoints"]
    assert info["model"] == "gauss_vae" and info["best_epoch"] == 0
    assert math.isfinite(float(results["likelihood"]["mnist"]["gauss_vae"]["mean_nll"]))
    assert "training" in results["timings"]


def test_command_line_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--train", "sb_vae"])
    assert e.value.code == 2
    assert "--max-epoch" in capsys.readouterr().err


def test_reserve_folder_never_reuses_a_folder(tmp_path):
    base = str(tmp_path / "r")
    assert reproduce.reserve_folder(base) == base
    assert reproduce.reserve_folder(base) == base + "_1"
    assert reproduce.reserve_folder(base) == base + "_2"


def test_published_numbers_are_all_there():
    assert len(records("likelihood")) == 8 and len(records("knn")) == 9
    assert len(records("semisup")) == 27
    from stick_breaking_dgms.published import lookup
    assert lookup("likelihood", "mnist", "gauss_vae").value == 93.93
    assert lookup("knn", "mnist", "gauss_vae", k=3).value == 28.4
    r = lookup("semisup", "svhn_pca", "gauss_ssdgm", labels_percent=1)
    assert (r.value, r.pm) == (69.58, 1.64)
    assert lookup("semisup", "mnist", "sb_ssdgm", labels_percent=2) is None
    values = np.array([r.value for r in records()])
    assert np.all(values > 0)


def test_differences_are_written_like_the_numbers_they_compare():
    from stick_breaking_dgms.report import _signed, format_number
    assert _signed(3.671) == "+3.67" and _signed(-7.2) == "-7.20" and _signed(0.0) == "+0.00"
    # an estimate ruined by one digit stays readable, as in the measured column
    assert format_number(5.1e22) == "5.1e+22" and _signed(5.1e22) == "+5.1e+22"
    assert _signed(float("inf")) == "+inf" and _signed(float("nan")) == "nan"


# -- several seeds of one configuration; a sweep folder ------------------------------------

def _untrained_vae(directory, seed, hidden=10, name="run", model="gauss_vae", latent=None):
    """A VAE checkpoint (a Gauss-VAE unless told) with its initial parameters (what is
    checked is the aggregation, not the model), and the metrics file a finished run has."""
    import h5py
    from stick_breaking_dgms.backend import floatX_as
    from stick_breaking_dgms.checkpoints import write_checkpoint
    from stick_breaking_dgms.config import (ExperimentConfig, LatentConfig, NetworkConfig)
    from stick_breaking_dgms.factory import build_model
    config = ExperimentConfig(model, network=NetworkConfig(hidden_size=hidden),
                              latent=latent or LatentConfig("gaussian", size=4), seed=seed)
    with floatX_as(config.floatX):
        net = build_model(config, 784, "bernoulli")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{model}_params_{name}.h5")
    params = {n: v.get_value() for n, v in net.params.items()}
    for key in params:  # decoder biases that differ by seed: runs that score differently
        if key.startswith("decoder/") and key.endswith("/b"):
            params[key] = params[key] - 0.5 * seed
    write_checkpoint(path, {"params": params},
                     {"model": model, "config": config.to_dict(), "best_epoch": 0,
                      "best_score": 500.0 + seed})
    with h5py.File(os.path.join(directory, f"{model}_metrics_{name}.h5"), "w") as f:
        f.attrs.update(status="finished", best_score=500.0 + seed, test_score=510.0 + seed)
    return path


def test_rows_resting_on_several_seeds_give_their_mean_sd_and_count(tmp_path, capsys):
    paths = [_untrained_vae(str(tmp_path / f"s{seed}"), seed) for seed in (1, 2, 3)]
    out = str(tmp_path / "report")
    code = reproduce.main(paths + ["--table", "likelihood", "knn", "--samples", "3",
                                   "--test-subset", "30", "--knn-k", "3", "--no-figures",
                                   "--progress", "never", "--blas-threads", "1", "--out", out])
    assert code == 0, capsys.readouterr().err
    results = json.load(open(os.path.join(out, "results.json")))
    runs = results["likelihood"]["mnist"]["gauss_vae"]["per_seed"]
    assert sorted(r["seed"] for r in runs) == [1, 2, 3]
    values = np.array([r["mean_nll"] for r in runs])
    (cell,) = [c for c in results["cells"] if c["table"] == "likelihood"
               and c["model"] == "gauss_vae" and c["dataset"] == "mnist"]
    assert cell["n_runs"] == 3
    assert cell["measured"] == pytest.approx(values.mean())
    assert cell["measured_pm"] == pytest.approx(values.std(ddof=1)) and values.std() > 1
    knn = [c for c in results["cells"] if c["table"] == "knn" and c["model"] == "gauss_vae"
           and c["dataset"] == "mnist" and c["setting"]["codes"] == "sampled"
           and c["setting"]["k"] == 3]
    errors = [100 * float(r["errors"]["3"]) for r in
              results["knn"]["mnist"]["gauss_vae"]["sampled"]["per_seed"]]
    assert knn[0]["n_runs"] == 3 and knn[0]["measured"] == pytest.approx(np.mean(errors))
    text = open(os.path.join(out, "report.md")).read()
    assert f"| {format_number(values.mean())} ± {format_number(values.std(ddof=1))} | 3 |" \
        in text


def test_pixel_baseline_pools_the_data_split_of_every_seed(tmp_path, capsys):
    """A run's --seed shuffles the data: the kNN pixel baseline of a report on several
    seeds has the label draws of every seed's split, not the last seed's alone."""
    paths = [_untrained_vae(str(tmp_path / f"s{seed}"), seed) for seed in (1, 2)]

    def baseline(chosen, name):
        out = str(tmp_path / name)
        code = reproduce.main(chosen + ["--table", "semisup", "--test-subset", "200",
                                        "--knn-draws", "2", "--no-figures", "--progress",
                                        "never", "--blas-threads", "1", "--out", out])
        assert code == 0, capsys.readouterr().err
        with open(os.path.join(out, "results.json")) as f:
            return json.load(f)["semisup_knn_baseline"]["mnist"]

    alone = [baseline([p], f"alone{i}") for i, p in enumerate(paths)]
    both = baseline(paths, "both")
    for pct in ("10", "5", "1"):
        assert both[pct]["draws"] == 4 and both[pct]["splits"] == 2
        assert both[pct]["errors"] == alone[0][pct]["errors"] + alone[1][pct]["errors"]
        assert both[pct]["mean"] == pytest.approx(np.mean(both[pct]["errors"]))


def test_two_configurations_for_one_row_are_refused(tmp_path, capsys):
    paths = [_untrained_vae(str(tmp_path / "a"), 1, hidden=10),
             _untrained_vae(str(tmp_path / "b"), 1, hidden=12)]
    code = reproduce.main(paths + ["--table", "likelihood", "--no-figures", "--out",
                                   str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 1 and "differ in hidden_size" in err
    assert not os.path.exists(tmp_path / "report")


def test_a_kl_other_than_the_originals_gets_rows_of_its_own(tmp_path, capsys):
    """The faithful SB-VAE and one trained with the exact KL are two rows, the paper's
    numbers beside the faithful one only."""
    from stick_breaking_dgms.config import LatentConfig
    paths = [_untrained_vae(str(tmp_path / kl), 1, model="sb_vae",
                            latent=LatentConfig(size=5, kl=kl)) for kl in ("series", "exact")]
    out = str(tmp_path / "report")
    code = reproduce.main(paths + ["--table", "likelihood", "--samples", "3", "--test-subset",
                                   "20", "--no-figures", "--progress", "never", "--out", out])
    assert code == 0, capsys.readouterr().err
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(results["likelihood"]["mnist"]) == {"sb_vae", "sb_vae_exact_kl"}
    cells = {c["model"]: c for c in results["cells"] if c["table"] == "likelihood"
             and c["dataset"] == "mnist"}
    assert cells["sb_vae"]["published"] == 98.01 and cells["sb_vae"]["n_runs"] == 1
    assert cells["sb_vae_exact_kl"]["published"] is None
    assert cells["sb_vae_exact_kl"]["n_runs"] == 1
    assert "| Kumaraswamy SB-VAE, exact KL |" in open(os.path.join(out, "report.md")).read()


def test_a_sweep_folder_gives_its_chosen_setting_every_seed(tmp_path):
    """sbdgm-reproduce SWEEP_DIR evaluates the runs of each cell's chosen setting (the
    lowest mean validation score), every seed of it."""
    from stick_breaking_dgms.evaluation.loading import find_checkpoints
    sweep = tmp_path / "sweep"
    runs = []
    for alpha0, seed, valid_shift in ((1, 1, 0.0), (1, 2, 0.0), (5, 1, -50.0), (5, 2, -50.0)):
        run_id = f"gauss_vae_mnist_alpha0={alpha0}_seed{seed}"
        directory = str(sweep / "runs" / run_id)
        path = _untrained_vae(directory, seed, name=run_id)
        import h5py
        with h5py.File(path.replace("_params_", "_metrics_"), "r+") as f:
            f.attrs["best_score"] = 500.0 + seed + valid_shift
        runs.append({"id": run_id, "model": "gauss_vae", "dataset": "mnist",
                     "label_fraction": None, "setting": [["alpha0", alpha0]], "seed": seed,
                     "argv": [], "experiment_dir": directory, "prefix": "gauss_vae",
                     "name": run_id})
    with open(sweep / "sweep.json", "w") as f:
        json.dump({"format": "stick_breaking_dgms sweep", "format_version": 1, "swept":
                   ["alpha0"], "runs": runs}, f)
    found = find_checkpoints([str(sweep)])
    assert [os.path.basename(os.path.dirname(p)) for p in found] == \
        ["gauss_vae_mnist_alpha0=5_seed1", "gauss_vae_mnist_alpha0=5_seed2"]
