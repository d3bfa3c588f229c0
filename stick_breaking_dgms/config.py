"""An experiment's configuration: typed, with the scripts' defaults, validated in one place.

:class:`ExperimentConfig` is what a training run is made of: the model (one of
:data:`MODELS`), the data (:class:`DataConfig`), the networks (:class:`NetworkConfig`),
the latent family and its options (:class:`LatentConfig`), the training procedure
(:class:`TrainingConfig`), the seed and the float precision. The scripts map their
flags onto it, :mod:`.factory` builds the model and its training task from it, and
every checkpoint stores it (``to_dict``), so a trained model is rebuilt from its file
alone.

The *flat* form (:meth:`ExperimentConfig.flat`) names every value as the original's
command-line flag does (``truncation_level``, ``kl_taylor_terms``, ...): run names and
the checkpoints of earlier versions (which stored the flags only) use it.

Validation raises :class:`ConfigError`, which names the value by its flat key, so a
script can word it as a flag (``--hidden-size``) and a Python caller as a field. This
module imports neither the symbolic backend nor the data sets.
"""
import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

import numpy as np

from .families import REGISTRY, construction_of, families_of, options_of


@dataclass(frozen=True)
class ModelSpec:
    """One of the original code's four experiments."""
    prefix: str         # of the run's file names, as the original
    construction: str   # "stick-breaking" or "gaussian"
    semi: bool          # semi-supervised (a classifier q(y | x) and labels)
    lookahead: int      # the script's default early-stopping lookahead
    title: str


MODELS = {
    "sb_vae": ModelSpec("stickBreaking_vae", "stick-breaking", False, 100,
                        "Stick-Breaking Variational Autoencoder (SB-VAE)"),
    "gauss_vae": ModelSpec("gauss_vae", "gaussian", False, 30,
                           "Gaussian Variational Autoencoder (Gauss-VAE)"),
    "sb_ssdgm": ModelSpec("sb_ss-dgm", "stick-breaking", True, 30,
                          "semi-supervised Stick-Breaking Deep Generative Model (SB-DGM)"),
    "gauss_ssdgm": ModelSpec("gauss_ss-dgm", "gaussian", True, 30,
                             "semi-supervised Gaussian Deep Generative Model (Gauss-DGM)"),
}

# Upper bounds: far beyond any sensible run, low enough that no value overflows a C int
# or asks for memory no machine has.
MAX_UNITS = 100_000          # hidden units, latent dimensions
MAX_LAYERS = 1_000
MAX_COUNT = 10_000_000       # epochs, batch size, lookahead, checkpoint interval
MAX_TAYLOR_TERMS = 1_000_000
MAX_SEED = 2 ** 63 - 1
MAX_CLASSES = 10_000         # labels of the semi-supervised models: 0 .. 9,999
MAX_BLAS_THREADS = 1_024


class ConfigError(ValueError):
    """A configuration value that cannot be used. ``key`` is its flat name
    (``hidden_size``), ``message`` says what was expected."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


# -- value checks ------------------------------------------------------------------------

def _integer(key, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(key, f"expected an integer in [{low}, {high:,}], got {value!r}")


def _real(key, value, low=None, high=None, low_open=False, high_open=False, what=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(key, f"expected a number, got {value!r}")
    bad = not math.isfinite(value)
    bad |= low is not None and (value < low or (low_open and value == low))
    bad |= high is not None and (value > high or (high_open and value == high))
    if bad:
        raise ConfigError(key, f"expected {what or 'a finite number'}, got {value!r}")


def _choice(key, value, choices):
    if value not in choices:
        raise ConfigError(key, f"expected one of {', '.join(map(str, choices))}, got {value!r}")


def _pair(value):
    """A 2-sequence as a tuple of floats, or None if it is not one."""
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return (float(value[0]), float(value[1]))
    return None


# -- the sections ------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    """The data set: a registered name or a file path, where files are looked for, and
    an optional likelihood that overrides the data set's own."""
    dataset: str = "mnist"
    data_dir: str = "./datasets"
    likelihood: Optional[str] = None

    def validate(self):
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("dataset", f"expected a data set name or a file path, got "
                                         f"{self.dataset!r}")
        if not isinstance(self.data_dir, str):
            raise ConfigError("data_dir", f"expected a folder path, got {self.data_dir!r}")
        if self.likelihood is not None:
            _choice("likelihood", self.likelihood, ("bernoulli", "gaussian"))


@dataclass(frozen=True)
class NetworkConfig:
    """The encoder's and decoder's hidden layers (the decoder mirrors the encoder)."""
    hidden_type: str = "traditional"   # or "residual"
    nb_hidden_layers: int = 1
    skip: int = 0                      # number of (last) layers with skip connections
    hidden_size: int = 500
    activation_type: str = "relu"      # or "sigmoid"

    def validate(self):
        _choice("hidden_type", self.hidden_type, ("traditional", "residual"))
        _choice("activation_type", self.activation_type, ("relu", "sigmoid"))
        _integer("nb_hidden_layers", self.nb_hidden_layers, 1, MAX_LAYERS)
        _integer("hidden_size", self.hidden_size, 1, MAX_UNITS)
        _integer("skip", self.skip, 0, MAX_LAYERS)
        if self.skip > self.nb_hidden_layers:
            raise ConfigError("skip", f"{self.skip} skip connections for nb_hidden_layers "
                                      f"{self.nb_hidden_layers}: expected at most "
                                      f"{self.nb_hidden_layers - 1}")
        if self.hidden_type == "residual" and self.skip == self.nb_hidden_layers:
            raise ConfigError("skip", f"the first hidden layer changes the dimension and "
                                      f"cannot be residual: expected at most "
                                      f"{self.nb_hidden_layers - 1}")


@dataclass(frozen=True)
class LatentConfig:
    """The stochastic layer: its family (:mod:`.families`), its size and the family's options.

    ``size`` is the truncation level K (K-1 stick fractions) for stick-breaking families,
    the dimension L for the Gaussian. Each family takes the options its registry line
    names (:meth:`options`); the others must keep their defaults.
    """
    family: str = "kumaraswamy"
    size: int = 50
    alpha0: float = 5.0                       # the Beta(1, alpha0) prior (stick-breaking)
    taylor_terms: int = 10                    # Kumaraswamy KL series terms
    digamma: str = "series"                   # Kumaraswamy KL: "series" or "exact"
    clip: Optional[Tuple[float, float]] = None  # Kumaraswamy a, b clipped to [low, high]
    prior: Union[str, Tuple[float, float]] = "matched"  # Gauss-Logit prior on eta
    kl: str = "series"                        # Kumaraswamy KL: the original's "series" or "exact"

    @property
    def construction(self):
        return construction_of(self.family)

    def options(self):
        """The keyword options of the family's constructor, {option: value}."""
        return {name: getattr(self, name) for name in options_of(self.family)}

    def validate(self):
        _choice("posterior", self.family, tuple(REGISTRY))
        low = 2 if self.construction == "stick-breaking" else 1
        _integer("latent_size", self.size, low, MAX_UNITS)
        _real("alpha0", self.alpha0, 0.0, low_open=True, what="a finite number > 0")
        _integer("kl_taylor_terms", self.taylor_terms, 1, MAX_TAYLOR_TERMS)
        _choice("digamma", self.digamma, ("series", "exact"))
        _choice("kl", self.kl, ("series", "exact"))
        if self.kl == "exact":
            # the exact KL has no series to cut and no digamma to replace
            for name in ("taylor_terms", "digamma"):
                if getattr(self, name) != getattr(LatentConfig(), name):
                    raise ConfigError(LATENT_FLAT[name], "applies to kl series, not to kl exact")
        if self.clip is not None:
            pair = _pair(self.clip)
            if pair is None or not 0 < pair[0] < pair[1] < math.inf:
                raise ConfigError("clip_kumaraswamy", f"expected (LOW, HIGH) with "
                                                      f"0 < LOW < HIGH, got {self.clip!r}")
        if self.prior != "matched":
            pair = _pair(self.prior)
            if pair is None or not (math.isfinite(pair[0]) and math.isfinite(pair[1])
                                    and pair[1] > 0):
                raise ConfigError("logit_prior", f"expected 'matched' or (MEAN, STD) with a "
                                                 f"finite MEAN and 0 < STD, got {self.prior!r}")
        defaults, mine = LatentConfig(), options_of(self.family)
        for name in ("alpha0", "taylor_terms", "digamma", "clip", "prior", "kl"):
            if name not in mine and getattr(self, name) != getattr(defaults, name):
                owners = [f for f in REGISTRY if name in options_of(f)]
                raise ConfigError(LATENT_FLAT[name], f"applies to posterior "
                                                     f"{' or '.join(owners)}, not to posterior "
                                                     f"{self.family}")

    def kl_variant(self):
        """A short tag of the KL options that differ from the original's ten-term series
        with the series digamma, ``""`` when none does: ``"exact_kl"``,
        ``"kl_200_terms"``, ``"exact_digamma"``, ``"clipped"`` (joined by ``_``).

        Reports tell such runs apart from the faithful model by this tag (the model
        ``sb_vae_exact_kl`` beside ``sb_vae``), since the paper's numbers are the faithful
        model's."""
        if self.kl == "exact":
            parts = ["exact_kl"]
        else:
            parts = ([] if self.taylor_terms == 10 else [f"kl_{self.taylor_terms}_terms"]) + \
                    ([] if self.digamma == "series" else ["exact_digamma"])
        return "_".join(parts + ([] if self.clip is None else ["clipped"]))


@dataclass(frozen=True)
class TrainingConfig:
    """Adam on minibatches with early stopping on the validation score.

    ``lookahead`` None means the model's default (:data:`MODELS`). The last two fields
    apply to the semi-supervised models only.
    """
    batch_size: int = 100
    learning_rate: float = 0.0003
    max_epoch: int = 2000
    lookahead: Optional[int] = None
    on_nan: str = "stop"                        # or "skip-batch"
    clip_gradient_norm: Optional[float] = None
    checkpoint_every: int = 1
    label_drop_percentage: float = 0.90         # fraction of training labels dropped
    supervised_weight: float = 0.375            # weight of the labelled cost

    def validate(self):
        _integer("batch_size", self.batch_size, 1, MAX_COUNT)
        _real("learning_rate", self.learning_rate, 0.0, low_open=True,
              what="a finite number > 0")
        _integer("max_epoch", self.max_epoch, 1, MAX_COUNT)
        if self.lookahead is not None:
            _integer("lookahead", self.lookahead, 1, MAX_COUNT)
        _choice("on_nan", self.on_nan, ("stop", "skip-batch"))
        if self.clip_gradient_norm is not None:
            _real("clip_gradient_norm", self.clip_gradient_norm, 0.0, low_open=True,
                  what="a finite number > 0")
        _integer("checkpoint_every", self.checkpoint_every, 1, MAX_COUNT)
        _real("label_drop_percentage", self.label_drop_percentage, 0.0, 1.0, high_open=True,
              what="a fraction in [0, 1)")
        _real("supervised_weight", self.supervised_weight, 0.0, 1.0,
              what="a weight in [0, 1]")


# how a report names the KL variants of kl_variant()
KL_VARIANT_LABELS = {"exact_kl": "exact KL", "exact_digamma": "exact digamma",
                     "clipped": "a, b clipped"}


def kl_variant_label(tag):
    """Words for a :meth:`LatentConfig.kl_variant` tag (``"exact_kl"`` -> ``"exact KL"``);
    None when ``tag`` is not one."""
    words = []
    rest = tag
    while rest:
        for key, label in KL_VARIANT_LABELS.items():
            if rest == key or rest.startswith(key + "_"):
                words.append(label)
                rest = rest[len(key) + 1:]
                break
        else:
            m = re.match(r"kl_(\d+)_terms(?:_|$)", rest)
            if m is None:
                return None
            words.append(f"{m.group(1)}-term KL")
            rest = rest[m.end():]
    return ", ".join(words) or None


# Flat names (the original's flags) of the latent options.
LATENT_FLAT = {"family": "posterior", "alpha0": "alpha0", "taylor_terms": "kl_taylor_terms",
               "digamma": "digamma", "clip": "clip_kumaraswamy", "prior": "logit_prior",
               "kl": "kl"}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a training run (not where it is written or how it is shown).

    Examples
    --------
    >>> from stick_breaking_dgms.config import ExperimentConfig, LatentConfig
    >>> cfg = ExperimentConfig("sb_vae", latent=LatentConfig("gamma", size=20))
    >>> cfg.training.lookahead, cfg.latent.options()
    (100, {'alpha0': 5.0})
    """
    model: str = "sb_vae"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    seed: int = 1234
    floatX: str = "float32"

    def __post_init__(self):
        _choice("model", self.model, tuple(MODELS))
        if self.latent.family == "kumaraswamy" and self.spec.construction == "gaussian":
            # the default family of a Gaussian model is the Gaussian
            object.__setattr__(self, "latent", dataclasses.replace(self.latent,
                                                                   family="gaussian"))
        if self.training.lookahead is None:
            object.__setattr__(self, "training", dataclasses.replace(
                self.training, lookahead=self.spec.lookahead))
        self.validate()

    @property
    def spec(self):
        return MODELS[self.model]

    @property
    def semi(self):
        return self.spec.semi

    def validate(self):
        """Check every value; raise :class:`ConfigError` naming the first bad one."""
        for section in (self.data, self.network, self.latent, self.training):
            section.validate()
        if self.latent.construction != self.spec.construction:
            raise ConfigError("posterior", f"the {self.model} model takes a "
                                           f"{self.spec.construction} family "
                                           f"({', '.join(families_of(self.spec.construction))}), "
                                           f"not {self.latent.family}")
        _integer("seed", self.seed, 0, MAX_SEED)
        _choice("floatX", self.floatX, ("float32", "float64"))

    # seeds: the data split uses ``seed``; the model and the label split get seeds derived
    # from it, so that changing one never shifts the other's stream.
    @property
    def model_seed(self):
        """The seed of the initial weights and the model's random streams."""
        return derived_seeds(self.seed)[0]

    @property
    def label_seed(self):
        """The seed of the choice of labelled training examples (semi-supervised)."""
        return derived_seeds(self.seed)[1]

    # -- the stored form -------------------------------------------------------------------

    def to_dict(self):
        """Plain JSON-able values, nested by section (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """The inverse of :meth:`to_dict`; missing fields take their defaults.

        Raises ConfigError on unknown sections or fields and on bad values.
        """
        if not isinstance(d, dict):
            raise ConfigError("config", f"expected a dict, got {type(d).__name__}")
        sections = {"data": DataConfig, "network": NetworkConfig, "latent": LatentConfig,
                    "training": TrainingConfig}
        kwargs = {}
        for key, value in d.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise ConfigError(key, f"expected a dict, got {type(value).__name__}")
                known = {f.name for f in dataclasses.fields(sections[key])}
                unknown = set(value) - known
                if unknown:
                    raise ConfigError(key, f"unknown fields {', '.join(sorted(unknown))}")
                kwargs[key] = sections[key](**_tuples(value))
            elif key in ("model", "seed", "floatX"):
                kwargs[key] = value
            else:
                raise ConfigError(key, "unknown configuration entry")
        return cls(**kwargs)

    # -- the flat form: the original's flag names ---------------------------------------------

    def flat(self):
        """{flag name: value} for the flags this model's script has (``--truncation-level``
        for the SB-VAE, ``--latent-size`` for the others; the family's options on the
        stick-breaking models; the label options on the semi-supervised ones)."""
        out = {"dataset": self.data.dataset, "data_dir": self.data.data_dir,
               "likelihood": self.data.likelihood, **dataclasses.asdict(self.network),
               "seed": self.seed, "floatX": self.floatX}
        t = dataclasses.asdict(self.training)
        if not self.semi:
            del t["label_drop_percentage"], t["supervised_weight"]
        out.update(t)
        out["truncation_level" if self.model == "sb_vae" else "latent_size"] = self.latent.size
        if self.spec.construction == "stick-breaking":
            out.update({flat: getattr(self.latent, name) for name, flat in LATENT_FLAT.items()})
        return out

    @classmethod
    def from_flat(cls, model, values):
        """The configuration of a model from flag-named values (parsed flags, or the
        arguments an older checkpoint stored). Missing values take their defaults; keys
        that are not configuration (``experiment_dir``, ``progress``, ...) are ignored."""
        v = dict(values)
        spec = MODELS[model] if model in MODELS else None
        if spec is None:
            raise ConfigError("model", f"expected one of {', '.join(MODELS)}, got {model!r}")

        def section(cls_, names):
            return cls_(**{n: _tuple(v[n]) for n in names if n in v})

        latent = {LATENT_NAMES[k]: _tuple(v[k]) for k in LATENT_NAMES if k in v}
        size = v.get("truncation_level", v.get("latent_size"))
        if size is not None:
            latent["size"] = size
        if spec.construction == "gaussian":
            latent["family"] = "gaussian"
        training_names = [f.name for f in dataclasses.fields(TrainingConfig)]
        return cls(model,
                   data=section(DataConfig, ("dataset", "data_dir", "likelihood")),
                   network=section(NetworkConfig,
                                   [f.name for f in dataclasses.fields(NetworkConfig)]),
                   latent=LatentConfig(**latent),
                   training=section(TrainingConfig, training_names),
                   **{k: v[k] for k in ("seed", "floatX") if k in v})


LATENT_NAMES = {flat: name for name, flat in LATENT_FLAT.items()}


def _tuple(value):
    """JSON stores pairs as lists; the configuration holds tuples."""
    return tuple(value) if isinstance(value, list) else value


def _tuples(d):
    return {k: _tuple(v) for k, v in d.items()}


def derived_seeds(seed):
    """(model seed, label-split seed) derived from the experiment's seed."""
    return tuple(int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))


def config_of_checkpoint(meta, path):
    """The configuration a checkpoint's metadata holds.

    Files of this version store it (``meta["config"]``); earlier ones stored the
    script's flags (``meta["args"]``), read with :meth:`ExperimentConfig.from_flat`.
    Raises :class:`~.checkpoints.CheckpointError` naming ``path``.
    """
    from .checkpoints import CheckpointError
    try:
        if isinstance(meta.get("config"), dict):
            return ExperimentConfig.from_dict(meta["config"])
        model, stored = meta.get("model"), meta.get("args")
        if model not in MODELS or not isinstance(stored, dict):
            raise CheckpointError(f"{path}: the checkpoint does not say which model it holds "
                                  f"(expected 'model' in {', '.join(MODELS)} and 'config' or "
                                  f"'args' in its metadata)")
        return ExperimentConfig.from_flat(model, stored)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: the stored configuration is not usable: {e}") from None
