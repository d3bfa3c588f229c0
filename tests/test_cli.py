"""The original scripts' interface: flags, defaults, and exit code 2 for bad values."""
import os
import subprocess
import sys

import numpy as np
import pytest

from stick_breaking_dgms import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD_VALUES = [
    ("sb_vae", ["--truncation-level", "1"], "--truncation-level"),
    ("sb_vae", ["--hidden-size", "0"], "--hidden-size"),
    ("sb_vae", ["--hidden-size", "-5"], "--hidden-size"),
    ("sb_vae", ["--nb-hidden-layers", "0"], "--nb-hidden-layers"),
    ("sb_vae", ["--batch-size", "0"], "--batch-size"),
    ("sb_vae", ["--max-epoch", "0"], "--max-epoch"),
    ("sb_vae", ["--lookahead", "-1"], "--lookahead"),
    ("sb_vae", ["--alpha0", "0"], "--alpha0"),
    ("sb_vae", ["--alpha0", "-1.5"], "--alpha0"),
    ("sb_vae", ["--alpha0", "nan"], "--alpha0"),
    ("sb_vae", ["--learning-rate", "0"], "--learning-rate"),
    ("sb_vae", ["--kl-taylor-terms", "0"], "--kl-taylor-terms"),
    ("sb_vae", ["--digamma", "taylor"], "--digamma"),
    ("sb_vae", ["--skip", "2"], "--skip"),
    ("sb_vae", ["--hidden-type", "residual", "--skip", "1"], "--skip"),
    ("sb_vae", ["--dataset", "cifar10"], "--dataset"),
    ("sb_vae", ["--dataset", "no_such_file.npz"], "--dataset"),
    ("sb_vae", ["--dataset", "/no/such/dir/data.h5"], "--dataset"),
    ("sb_vae", ["--clip-kumaraswamy", "15,0.25"], "--clip-kumaraswamy"),
    ("sb_vae", ["--clip-kumaraswamy", "abc"], "--clip-kumaraswamy"),
    ("sb_vae", ["--floatX", "float16"], "--floatX"),
    ("gauss_vae", ["--latent-size", "0"], "--latent-size"),
    ("sb_ssdgm", ["--label-drop-percentage", "1.0"], "--label-drop-percentage"),
    ("sb_ssdgm", ["--label-drop-percentage", "-0.1"], "--label-drop-percentage"),
    ("sb_ssdgm", ["--supervised-weight", "1.5"], "--supervised-weight"),
    ("gauss_ssdgm", ["--supervised-weight", "-0.1"], "--supervised-weight"),
    ("sb_ssdgm", ["--latent-size", "1"], "--latent-size"),
    ("sb_vae", ["--posterior", "beta"], "--posterior"),
    ("gauss_vae", ["--posterior", "gamma"], "--posterior"),  # not a Gaussian option
    ("sb_vae", ["--logit-prior", "0,-1"], "--logit-prior"),
    ("sb_vae", ["--logit-prior", "nan,1"], "--logit-prior"),
    ("sb_vae", ["--logit-prior", "wide"], "--logit-prior"),
    # a flag of another posterior family than the one chosen is refused, saying whose it is
    ("sb_vae", ["--posterior", "gamma", "--kl-taylor-terms", "3"], "--kl-taylor-terms"),
    ("sb_vae", ["--posterior", "gauss-logit", "--digamma", "exact"], "--digamma"),
    ("sb_ssdgm", ["--posterior", "gamma", "--clip-kumaraswamy", "0.25,15"],
     "--clip-kumaraswamy"),
    ("sb_vae", ["--logit-prior", "0,1"], "--logit-prior"),  # the default posterior
    ("sb_ssdgm", ["--posterior", "gamma", "--logit-prior", "0,1"], "--logit-prior"),
]


@pytest.mark.parametrize("model,argv,flag", BAD_VALUES)
def test_bad_values_fail_at_parsing_with_exit_code_2(model, argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(model, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    # argparse prints the usage (which lists every flag), then one "error:" line
    (line,) = [ln for ln in err.splitlines() if ": error: " in ln]
    assert flag in line.split(": error: ", 1)[1], err


def test_a_family_flag_with_another_family_says_whose_it_is(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args("sb_vae", ["--posterior", "gamma", "--kl-taylor-terms", "3"])
    assert "--kl-taylor-terms: applies to posterior kumaraswamy, not to posterior gamma" in \
        capsys.readouterr().err


def test_posterior_and_its_prior_name_a_run_only_when_not_the_default():
    from stick_breaking_dgms.runfiles import run_name_of

    def name(argv):
        return run_name_of(cli.parse_args("sb_vae", argv)[2])
    assert "posterior" not in name([]) and "prior" not in name([])
    assert name([]) == name(["--posterior", "kumaraswamy"])  # existing runs keep their names
    assert "posterior_gamma" in name(["--posterior", "gamma"])
    assert name([]) == name(["--kl", "series"]) and "_kl_exact" in name(["--kl", "exact"])
    assert name(["--posterior", "gauss-logit"]) != name(["--posterior", "gauss-logit",
                                                         "--logit-prior", "0,1"])
    # a negative mean needs the = form, as any argparse value starting with '-'
    _, args, config = cli.parse_args("sb_vae", ["--posterior", "gauss-logit",
                                                "--logit-prior=-1.6,1"])
    assert args.logit_prior == (-1.6, 1.0)
    assert config.latent.options() == {"alpha0": 5.0, "prior": (-1.6, 1.0)}


def test_a_relative_dataset_path_is_also_looked_for_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.npz").write_bytes(b"")  # parsing only checks that it exists
    _, args, config = cli.parse_args("sb_vae", ["--dataset", "mine.npz", "--data-dir", "data"])
    assert args.dataset == config.data.dataset == "mine.npz"
    with pytest.raises(SystemExit) as exc:
        cli.parse_args("sb_vae", ["--dataset", "mine.npz", "--data-dir", "elsewhere"])
    assert exc.value.code == 2


def test_batch_size_larger_than_training_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main("sb_vae", ["--batch-size", "45001", "--experiment-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "argument --batch-size" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # nothing written


def test_original_flags_and_defaults():
    d = cli.defaults_of("sb_vae")
    assert d == {**d, "dataset": "mnist", "hidden_type": "traditional", "nb_hidden_layers": 1,
                 "skip": 0, "hidden_size": 500, "activation_type": "relu",
                 "truncation_level": 50, "alpha0": 5.0, "batch_size": 100, "max_epoch": 2000,
                 "lookahead": 100, "learning_rate": 0.0003, "experiment_dir": "./experiments/",
                 "seed": 1234, "data_dir": "./datasets", "kl_taylor_terms": 10,
                 "digamma": "series", "floatX": "float32"}
    g = cli.defaults_of("gauss_vae")
    assert "alpha0" not in g and g["latent_size"] == 50 and g["lookahead"] == 30
    s = cli.defaults_of("sb_ssdgm")
    assert (s["latent_size"], s["label_drop_percentage"], s["supervised_weight"],
            s["lookahead"], s["alpha0"]) == (50, 0.90, 0.375, 30, 5.0)
    assert "truncation_level" not in s
    gs = cli.defaults_of("gauss_ssdgm")
    assert "alpha0" not in gs and gs["lookahead"] == 30


@pytest.mark.parametrize("script", ["run_stickBreaking_VAE_experiments.py",
                                    "run_gauss_VAE_experiments.py",
                                    "run_stickBreaking_ssDGM_experiments.py",
                                    "run_gauss_ssDGM_experiments.py"])
def test_scripts_explain_every_flag_and_reject_bad_values(script):
    help_run = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"],
                              capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0
    for flag in ["--dataset", "--hidden-type", "--nb-hidden-layers", "--skip", "--hidden-size",
                 "--activation-type", "--batch-size", "--max-epoch", "--lookahead",
                 "--learning-rate", "--experiment-dir", "--seed", "--data-dir", "--floatX",
                 "--resume"]:
        assert flag in help_run.stdout
    assert "_1, _2" in help_run.stdout.replace("\n", " ")  # says how runs are never overwritten
    bad = subprocess.run([sys.executable, os.path.join(ROOT, script), "--hidden-size", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "error: argument --hidden-size" in bad.stderr.splitlines()[-1]


HOSTILE = ["0", "-1", "1.5", "nan", "inf", "-inf", "1e400", "99999999999999999999999", "abc",
           "", "0x10", "1,2", "1e-400"]


def _numeric_flags(parser):
    from stick_breaking_dgms import argtypes
    numeric = {f for f in vars(argtypes).values() if callable(f)} - {argtypes.dataset_arg}
    return [a.option_strings[0] for a in parser._actions
            if a.option_strings and a.type in numeric]


@pytest.mark.parametrize("model", list(cli.MODELS))
def test_every_numeric_flag_takes_hostile_values_with_exit_2_naming_it(model, capsys):
    """Each numeric flag, given 0, negatives, NaN, infinities, huge and non-numeric values:
    either a value the configuration accepts, or exit code 2 with the flag's name, and
    never a traceback."""
    flags = _numeric_flags(cli.build_parser(model))
    assert len(flags) >= 12
    for flag in flags:
        for value in HOSTILE:
            try:
                _, args, config = cli.parse_args(model, [f"{flag}={value}"])
            except SystemExit as e:
                assert e.code == 2
                err = capsys.readouterr().err
                (line,) = [ln for ln in err.splitlines() if ": error: " in ln]
                assert flag in line, (flag, value, line)
                continue
            # accepted: a finite number within the configuration's bounds
            assert config.validate() is None, (flag, value)


def test_a_huge_label_is_a_clear_error_before_anything_is_allocated(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 600)
    y[5] = 2 ** 31 - 1
    path = tmp_path / "labels.npz"
    np.savez(path, x=rng.uniform(0, 1, (600, 20)).astype("float32"), y=y)
    out = tmp_path / "runs"
    code = cli.main("sb_ssdgm", ["--dataset", str(path), "--experiment-dir", str(out),
                                 "--hidden-size", "5", "--latent-size", "3",
                                 "--batch-size", "10", "--progress", "never"])
    assert code == 1
    err = capsys.readouterr().err
    assert str(path) in err and "2,147,483,647" in err and "labels 0 to 9,999" in err
    assert not out.exists()


def test_the_blas_thread_count_recorded_is_the_one_that_runs():
    from stick_breaking_dgms import backend
    if backend.blas_library() is None:
        pytest.skip("no OpenBLAS linked")
    try:
        got = backend.configure_blas_threads(1024)  # OpenBLAS caps it at its build's maximum
        assert got == backend.blas_threads() and 1 <= got <= 1024
    finally:
        backend.configure_blas_threads(1)
    with pytest.raises(SystemExit) as e:
        cli.parse_args("sb_vae", ["--blas-threads", "1025"])
    assert e.value.code == 2


@pytest.mark.parametrize("program", ["sb_vae", "gauss_ssdgm", "classify", "reproduce"])
def test_every_program_says_its_version(program, capsys):
    """--version: the package, the symbolic library and Python, without importing the
    library (instant), exit 0."""
    from stick_breaking_dgms import __version__, classify, reproduce
    run = {"classify": classify.main, "reproduce": reproduce.main}.get(
        program, lambda argv: cli.main(program, argv))
    with pytest.raises(SystemExit) as info:
        run(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"stick_breaking_dgms {__version__} (") and "Python 3." in out
    assert ("aesara " in out) or ("pytensor " in out)


def test_reproduce_names_itself_as_it_was_called(monkeypatch):
    from stick_breaking_dgms import reproduce
    monkeypatch.setattr(sys, "argv", ["/venv/bin/sbdgm-reproduce", "--help"])
    assert reproduce.build_parser().prog == "sbdgm-reproduce"
    monkeypatch.setattr(sys, "argv", ["/x/stick_breaking_dgms/reproduce.py"])
    assert reproduce.build_parser().prog == "python -m stick_breaking_dgms.reproduce"
