"""The experiment configuration (config.py), the factory and training from Python (api.py):
defaults as the scripts, validation naming the value, the stored form, checkpoints of
earlier versions, and the Python route making the same run as the script."""
import dataclasses
import glob
import inspect
import io
import os

import numpy as np
import pytest

from stick_breaking_dgms import cli
from stick_breaking_dgms.checkpoints import read_checkpoint, write_checkpoint
from stick_breaking_dgms.config import (MODELS, ConfigError, DataConfig, ExperimentConfig,
                                        LatentConfig, NetworkConfig, TrainingConfig,
                                        config_of_checkpoint)
from stick_breaking_dgms.families import REGISTRY, get_family, options_of


@pytest.mark.parametrize("model", list(MODELS))
def test_defaults_are_the_scripts_and_round_trip(model):
    _, args, config = cli.parse_args(model, [])
    assert config == ExperimentConfig(model)
    flat = config.flat()
    assert flat == {k: v for k, v in vars(args).items() if k not in cli.RUN_OPTIONS}
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert ExperimentConfig.from_flat(model, flat) == config
    assert config.training.lookahead == MODELS[model].lookahead
    assert config.latent.family == ("kumaraswamy" if "sb" in model else "gaussian")


def test_flags_and_fields_agree():
    _, _, c = cli.parse_args("sb_ssdgm", [
        "--hidden-size", "7", "--nb-hidden-layers", "3", "--hidden-type", "residual",
        "--skip", "2", "--latent-size", "9", "--posterior", "gauss-logit",
        "--logit-prior=-1,2", "--alpha0", "3", "--label-drop-percentage", "0.95",
        "--supervised-weight", "0.5", "--lookahead", "4", "--seed", "9", "--floatX", "float64"])
    assert c.network == NetworkConfig("residual", 3, 2, 7, "relu")
    assert c.latent == LatentConfig("gauss-logit", 9, alpha0=3.0, prior=(-1.0, 2.0))
    assert c.latent.options() == {"prior": (-1.0, 2.0), "alpha0": 3.0}
    assert (c.training.label_drop_percentage, c.training.supervised_weight,
            c.training.lookahead) == (0.95, 0.5, 4)
    assert (c.seed, c.floatX) == (9, "float64")


def test_every_family_takes_the_options_its_registry_line_names():
    for name in REGISTRY:
        params = inspect.signature(get_family(name).__init__).parameters
        keywords = [p for p in params if params[p].default is not inspect.Parameter.empty]
        assert tuple(sorted(keywords)) == tuple(sorted(options_of(name))), name
        assert set(options_of(name)) <= {f.name for f in dataclasses.fields(LatentConfig)}


BAD = [
    (dict(network=NetworkConfig(hidden_size=0)), "hidden_size"),
    (dict(network=NetworkConfig(hidden_size=10 ** 9)), "hidden_size"),
    (dict(network=NetworkConfig(hidden_size=5.0)), "hidden_size"),
    (dict(network=NetworkConfig(nb_hidden_layers=2, skip=3)), "skip"),
    (dict(network=NetworkConfig(hidden_type="residual", nb_hidden_layers=2, skip=2)), "skip"),
    (dict(network=NetworkConfig(activation_type="tanh")), "activation_type"),
    (dict(latent=LatentConfig(size=1)), "latent_size"),
    (dict(latent=LatentConfig(alpha0=0.0)), "alpha0"),
    (dict(latent=LatentConfig(alpha0=float("nan"))), "alpha0"),
    (dict(latent=LatentConfig(taylor_terms=3_000_000_000)), "kl_taylor_terms"),
    (dict(latent=LatentConfig(clip=(2.0, 1.0))), "clip_kumaraswamy"),
    (dict(latent=LatentConfig("gauss-logit", prior=(0.0, -1.0))), "logit_prior"),
    (dict(latent=LatentConfig("gamma", taylor_terms=3)), "kl_taylor_terms"),
    (dict(latent=LatentConfig("kumaraswamy", prior=(0.0, 1.0))), "logit_prior"),
    (dict(latent=LatentConfig("weibull")), "posterior"),
    (dict(latent=LatentConfig("gaussian")), "posterior"),  # an SB model takes an SB family
    (dict(training=TrainingConfig(learning_rate=-1.0)), "learning_rate"),
    (dict(training=TrainingConfig(on_nan="ignore")), "on_nan"),
    (dict(training=TrainingConfig(label_drop_percentage=1.0)), "label_drop_percentage"),
    (dict(training=TrainingConfig(batch_size=True)), "batch_size"),
    (dict(data=DataConfig(likelihood="poisson")), "likelihood"),
    (dict(seed=-1), "seed"),
    (dict(floatX="float16"), "floatX"),
]


@pytest.mark.parametrize("kwargs,key", BAD, ids=[k for _, k in BAD])
def test_a_bad_value_is_a_config_error_naming_it(kwargs, key):
    with pytest.raises(ConfigError) as e:
        ExperimentConfig("sb_vae", **kwargs)
    assert e.value.key == key and str(e.value).startswith(key + ": ")


def test_the_stored_forms_refuse_what_they_do_not_know():
    good = ExperimentConfig("sb_vae").to_dict()
    for bad, key in [({**good, "optimizer": {}}, "optimizer"),
                     ({**good, "latent": {**good["latent"], "temperature": 1}}, "latent"),
                     ({**good, "model": "vq_vae"}, "model")]:
        with pytest.raises(ConfigError) as e:
            ExperimentConfig.from_dict(bad)
        assert e.value.key == key


def test_checkpoints_of_earlier_versions_are_read_from_their_flags():
    """Before the configuration was stored, checkpoints held the flags (``args``),
    some of them from before a flag existed: those take today's defaults."""
    _, args, config = cli.parse_args("sb_vae", ["--hidden-size", "20", "--alpha0", "3"])
    old = {k: v for k, v in vars(args).items() if k not in ("posterior", "logit_prior")}
    assert config_of_checkpoint({"model": "sb_vae", "args": old}, "f.h5") == config
    assert config_of_checkpoint({"model": "sb_vae", "args": old,
                                 "config": config.to_dict()}, "f.h5") == config
    from stick_breaking_dgms.checkpoints import CheckpointError
    with pytest.raises(CheckpointError, match="f.h5: .*hidden_size"):
        config_of_checkpoint({"model": "sb_vae", "args": {**old, "hidden_size": -3}}, "f.h5")
    with pytest.raises(CheckpointError, match="f.h5: the checkpoint does not say"):
        config_of_checkpoint({"args": old}, "f.h5")


def test_nothing_below_the_command_line_imports_it():
    """cli.py maps flags onto the configuration; the package's modules do not import it
    (the two that run the training scripts' command lines, the regression check and
    ``reproduce --train``, import ``cli.main`` inside the function that does so)."""
    import ast
    pkg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "stick_breaking_dgms")
    cli = "stick_breaking_dgms.cli"
    for path in glob.glob(os.path.join(pkg, "**", "*.py"), recursive=True):
        if os.path.join(pkg, "cli.py") == path:
            continue
        # the module's package, to resolve relative imports (a subpackage may have a cli
        # module of its own)
        package = ["stick_breaking_dgms"] + os.path.relpath(os.path.dirname(path), pkg) \
            .replace(os.sep, "/").split("/")
        package = [p for p in package if p != "."]
        tree = ast.parse(open(path).read())
        for node in tree.body:
            if isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                imported = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            assert cli not in imported, path


SMALL = ["--hidden-size", "20", "--truncation-level", "5", "--max-epoch", "1",
         "--learning-rate", "0.001", "--progress", "never", "--blas-threads", "1"]


def test_training_from_python_makes_the_scripts_run(tmp_path):
    """api.train(config) and the script with the same flags write the same run: the same
    file names, bit-identical parameters and log lines."""
    from stick_breaking_dgms.api import train
    _, _, config = cli.parse_args("sb_vae", SMALL)
    out = io.StringIO()
    assert train(config, str(tmp_path / "py"), blas_threads=1, progress="never", out=out) == 0
    assert "New run " in out.getvalue() and "  log:" in out.getvalue()
    assert cli.main("sb_vae", SMALL + ["--experiment-dir", str(tmp_path / "cli")]) == 0
    py = sorted(os.listdir(tmp_path / "py"))
    assert py == sorted(os.listdir(tmp_path / "cli")) and len(py) >= 4
    (best,) = glob.glob(str(tmp_path / "py" / "*_params_*.h5"))
    a, meta = read_checkpoint(best)
    b, _ = read_checkpoint(best.replace(os.sep + "py" + os.sep, os.sep + "cli" + os.sep))
    for name, value in a["params"].items():
        np.testing.assert_array_equal(value, b["params"][name])
    assert ExperimentConfig.from_dict(meta["config"]) == config
    # the configuration does not fit the data: a ConfigError naming the value, no file
    big = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                   batch_size=10 ** 6))
    with pytest.raises(ConfigError, match="batch_size"):
        train(big, str(tmp_path / "big"), blas_threads=1, out=io.StringIO())
    assert not os.path.exists(tmp_path / "big")


def test_a_checkpoint_without_a_stored_configuration_resumes(tmp_path, monkeypatch):
    """A run checkpointed by an earlier version (flags only, no configuration) resumes
    bit-identically to an uninterrupted run."""
    argv = [a if a != "1" or i != SMALL.index("--max-epoch") + 1 else "2"
            for i, a in enumerate(SMALL)]  # two epochs
    straight, chain = str(tmp_path / "straight"), str(tmp_path / "chain")
    assert cli.main("sb_vae", argv + ["--experiment-dir", straight]) == 0
    monkeypatch.setenv("SBDGM_TEST_INTERRUPT", "SIGTERM@step:600")  # in epoch 1
    assert cli.main("sb_vae", argv + ["--experiment-dir", chain]) == 128 + 15
    monkeypatch.delenv("SBDGM_TEST_INTERRUPT")
    for path in glob.glob(os.path.join(chain, "*_checkpoint_*.h5")):
        groups, meta = read_checkpoint(path)
        del meta["config"]  # as an earlier version wrote it
        write_checkpoint(path, groups, meta)
    assert cli.main("sb_vae", argv + ["--experiment-dir", chain, "--resume"]) == 0
    (a_path,) = glob.glob(os.path.join(straight, "*_checkpoint_*[0-9].h5"))
    (b_path,) = glob.glob(os.path.join(chain, "*_checkpoint_*[0-9].h5"))
    (a, a_meta), (b, b_meta) = read_checkpoint(a_path), read_checkpoint(b_path)
    assert a_meta["state"]["epoch"] == b_meta["state"]["epoch"] == 2
    for group in ("params", "optimizer", "best"):
        for name, value in a[group].items():
            np.testing.assert_array_equal(value, b[group][name])
    assert b_meta["config"] == a_meta["config"]  # written again by this version


def test_a_model_with_non_finite_parameters_is_refused(tmp_path):
    """A run that stopped on a NaN before any best epoch has non-finite last parameters;
    rebuilding a model from them (reproduce, classify --weights last) is a clear error."""
    from stick_breaking_dgms.checkpoints import CheckpointError
    from stick_breaking_dgms.evaluation.loading import load_model
    from stick_breaking_dgms.factory import build_model
    config = ExperimentConfig("gauss_vae", network=NetworkConfig(hidden_size=3),
                              latent=LatentConfig(size=2))
    net = build_model(config, 5, "bernoulli")
    params = {n: v.get_value() for n, v in net.params.items()}
    params["decoder/0/W"] = params["decoder/0/W"].copy()
    params["decoder/0/W"][0, 0] = np.nan
    path = str(tmp_path / "nan.h5")
    write_checkpoint(path, {"params": params}, {"model": "gauss_vae",
                                                "config": config.to_dict()})
    with pytest.raises(CheckpointError, match="nan.h5: parameter decoder/0/W holds non-finite"):
        load_model(path)


def test_kl_variant_tags_name_every_kl_other_than_the_originals():
    from stick_breaking_dgms.config import LatentConfig, kl_variant_label
    from stick_breaking_dgms.published import model_name, split_variant
    cases = {LatentConfig(): "",
             LatentConfig(kl="exact"): "exact_kl",
             LatentConfig(taylor_terms=200): "kl_200_terms",
             LatentConfig(digamma="exact"): "exact_digamma",
             LatentConfig(taylor_terms=50, digamma="exact", clip=(1e-3, 1e3)):
                 "kl_50_terms_exact_digamma_clipped",
             LatentConfig(kl="exact", clip=(1e-3, 1e3)): "exact_kl_clipped",
             LatentConfig("gamma"): ""}
    for config, tag in cases.items():
        assert config.kl_variant() == tag, config
    assert kl_variant_label("kl_50_terms_exact_digamma_clipped") == \
        "50-term KL, exact digamma, a, b clipped"
    assert kl_variant_label("") is None and kl_variant_label("bogus") is None
    assert model_name("sb_vae_exact_kl") == "Kumaraswamy SB-VAE, exact KL"
    assert split_variant("gamma_sb_vae") == ("gamma_sb_vae", None)
    assert split_variant("sb_ssdgm_kl_200_terms") == ("sb_ssdgm", "200-term KL")
    assert model_name("sb_vae_unknown") == "sb_vae_unknown"
