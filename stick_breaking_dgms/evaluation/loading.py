"""A trained model from a best-parameters file, with the compiled functions evaluations need.

A best-parameters file (``<prefix>_params_<args>.h5``, written by the training loop)
holds the parameters in ``groups["params"]`` and, in its metadata, the model
(``sb_vae``, ``gauss_vae``, ``sb_ssdgm``, ``gauss_ssdgm``) and the run's arguments.
:func:`load_model` rebuilds the network from those arguments, checks every shape and
loads the parameters.

The encoder and decoder run in the run's precision (``--floatX``, float32 by
default), as in training; the posterior parameters (a, b or mu, log sigma) are
computed in float64 from the encoder's last hidden layer, so that a Kumaraswamy b of
1e-37 (a float32 subnormal) keeps its value.
"""
import glob
import os

import h5py
import numpy as np

from ..checkpoints import CheckpointError, read_checkpoint
from ..config import MODELS
from ..factory import rebuild_model

FLOAT64 = "float64"


def related_file(params_path, kind):
    """The run's ``metrics`` / ``results`` / ``checkpoint`` file beside its params file."""
    directory, base = os.path.split(params_path)
    if "_params_" not in base:
        return None
    head, tail = base.split("_params_", 1)
    ext = ".txt" if kind == "results" else ".h5"
    return os.path.join(directory, f"{head}_{kind}_{tail[:-len('.h5')]}{ext}")


def run_status(params_path):
    """What the run's metrics file says: status, epochs done, best epoch and score, test score.

    Returns a dict; empty when there is no readable metrics file.
    """
    path = related_file(params_path, "metrics")
    if path is None or not os.path.exists(path):
        return {}
    try:
        with h5py.File(path, "r") as f:
            out = {"metrics_file": path, "status": str(f.attrs.get("status", "unknown")),
                   "best_epoch": int(f.attrs.get("best_epoch", -1)),
                   "best_score": float(f.attrs.get("best_score", np.nan)),
                   "epochs_done": int(len(f["epoch"])) if "epoch" in f else 0}
            if "stopped_by" in f.attrs:  # files of earlier versions do not say
                out["stopped_by"] = str(f.attrs["stopped_by"])
            for key in f.attrs:
                if key.startswith("test_"):
                    out[key] = float(f.attrs[key])
            return out
    except (OSError, KeyError, ValueError, TypeError) as e:
        return {"metrics_file": path, "status": f"unreadable ({type(e).__name__})"}


def learning_curve(params_path):
    """(epochs, validation scores) from the run's metrics file, or None."""
    path = related_file(params_path, "metrics")
    if path is None or not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            if "valid_score" not in f:
                return None
            scores = np.asarray(f["valid_score"][()], dtype=np.float64)
            epochs = (np.asarray(f["epoch"][()]) if "epoch" in f
                      else np.arange(len(scores)))
            return epochs, scores
    except (OSError, KeyError, ValueError, TypeError):
        return None


def find_checkpoints(paths):
    """Best-parameters files among ``paths``: files, folders searched one level deep, or
    sweep folders (``sbdgm-sweep``), whose chosen setting's runs are taken, every seed
    (:func:`~stick_breaking_dgms.sweep.aggregate.chosen_params_files`)."""
    found = []
    for p in paths:
        if os.path.isdir(p) and os.path.isfile(os.path.join(p, "sweep.json")):
            from ..sweep.aggregate import chosen_params_files
            try:
                hits = chosen_params_files(p)
            except ValueError as e:
                raise CheckpointError(str(e)) from None
            if not hits:
                raise CheckpointError(f"{p}: a sweep folder with no finished run yet")
            found.extend(hits)
        elif os.path.isdir(p):
            hits = sorted(glob.glob(os.path.join(p, "*_params_*.h5"))
                          + glob.glob(os.path.join(p, "*", "*_params_*.h5")))
            if not hits:
                raise CheckpointError(f"{p}: no *_params_*.h5 file in this folder or its "
                                      f"subfolders")
            found.extend(hits)
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise CheckpointError(f"{p}: no such file or folder")
    seen, unique = set(), []
    for p in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


class LoadedModel:
    """A trained network with lazily compiled evaluation functions.

    Attributes: ``path``, ``model`` (``sb_vae``, ...), ``net``, ``floatX``, ``config``
    (:class:`~stick_breaking_dgms.config.ExperimentConfig`, for a model from a file),
    ``meta``, ``family`` (the posterior family, :mod:`..families`),
    ``construction`` (``"stick-breaking"`` or ``"gaussian"``), ``semi``, ``name`` (the
    model as the paper's tables name it: ``sb_vae`` for the Kumaraswamy family,
    ``gamma_sb_vae`` for the Gamma family, ..., with the tag of a KL other than the
    original's: ``sb_vae_exact_kl``).
    """

    def __init__(self, path, net, model, floatX="float32", config=None, meta=None):
        self.path, self.net, self.model, self.floatX = path, net, model, floatX
        self.config, self.meta = config, {} if meta is None else meta
        self.family = net.latent.family
        self.construction = net.latent.construction
        # the name the paper's tables use: sb_vae, gamma_sb_vae, gauss_logit_sb_vae, ...;
        # a KL other than the original's gets its own rows (sb_vae_exact_kl)
        variant = config.latent.kl_variant() if config is not None else ""
        self.name = self.family.model_prefix + model + ("_" + variant if variant else "")
        self.semi = MODELS[model].semi
        self._functions = {}

    @property
    def dataset(self):
        return self.config.data.dataset

    @property
    def latent_size(self):
        return self.net.latent.size

    @property
    def best_epoch(self):
        """The file's best epoch (an integer), or None when it does not say one."""
        value = self.meta.get("best_epoch")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def best_score(self):
        """The best epoch's validation score (a float), or None when it does not say one."""
        value = self.meta.get("best_score")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None

    def compiled(self, name, build):
        """Compile ``build()`` once per model, under the model's floatX."""
        if name not in self._functions:
            from ..backend import floatX_as
            with floatX_as(self.floatX):
                self._functions[name] = build()
        return self._functions[name]

    def cast_x(self, x):
        return np.ascontiguousarray(x, dtype=self.floatX)

    # -- codes ---------------------------------------------------------------------------

    def code_noise(self, rng, n):
        """Noise of the model's own training sampler, float64 (u ~ U(0.01, 0.99) for the
        Kumaraswamy, eps ~ N(0, 1) for the Gaussian, ...)."""
        return self.family.training_noise(rng, n)

    def _build_codes(self):
        from ..backend import at, function
        x = at.matrix("x", dtype=self.floatX)
        noise = at.tensor(dtype=FLOAT64, shape=(None,) * self.family.noise_ndim, name="noise")
        h = at.cast(self.net.encoder(x), FLOAT64)
        post = self.net.latent.posterior(h)
        return function([x, noise], [self.net.latent.sample(post, noise),
                                     self.net.latent.mean_code(post)])

    def codes(self, x, rng, batch_size=1000, progress=None):
        """(sampled codes, posterior-mean codes), float64 arrays (N, latent size).

        Sampled codes use the model's training sampler (u ~ U(0.01, 0.99) for the
        Kumaraswamy, as the original's sampling graph); the posterior-mean code is the
        stick weights of the posterior mean of each fraction (SB) or mu (Gauss).
        """
        f = self.compiled("codes", self._build_codes)
        sampled, means = [], []
        for start in range(0, len(x), batch_size):
            xb = self.cast_x(x[start:start + batch_size])
            s, m = f(xb, self.code_noise(rng, len(xb)))
            sampled.append(s)
            means.append(m)
            if progress is not None:
                progress.update(min(start + batch_size, len(x)))
        return np.concatenate(sampled), np.concatenate(means)

    def _build_posterior_params(self):
        from ..backend import at, function
        x = at.matrix("x", dtype=self.floatX)
        post = self.net.latent.posterior(at.cast(self.net.encoder(x), FLOAT64))
        names = sorted(post)
        return function([x], [post[k] for k in names]), names

    def posterior_function(self):
        """The compiled x -> posterior parameters (float64), and their names (sorted)."""
        return self.compiled("posterior_params", self._build_posterior_params)

    def posterior_params(self, x, batch_size=1000):
        """The posterior parameters of the rows of ``x`` (a, b; mu, log sigma; ...), float64
        arrays (N, n_latent) by name, computed once for several code draws."""
        f, names = self.posterior_function()
        parts = {k: [] for k in names}
        for start in range(0, len(x), batch_size):
            for k, v in zip(names, f(self.cast_x(x[start:start + batch_size]))):
                parts[k].append(v)
        return {k: np.concatenate(v) for k, v in parts.items()}

    def drawn_codes(self, params, rng, sampler="exact"):
        """One code per row from the posterior parameters (:meth:`posterior_params`),
        float64 (N, latent size), drawn in NumPy.

        ``sampler="exact"``: the exact posterior (the full Kumaraswamy, u uniform on
        (0, 1)); ``"training"``: the training sampler (u ~ U(0.01, 0.99) for the
        Kumaraswamy), whose noise is drawn from ``rng`` in the order :meth:`codes` draws
        it, so the same ``rng`` state gives the codes of :meth:`codes` up to rounding.
        """
        from ..latent import code_from_draws
        if sampler == "exact":
            draws, _, _ = self.family.importance_sample(rng, params, 1)
        elif sampler == "training":
            draws, _, _ = self.family.training_sample(rng, params, 1)
        else:
            raise ValueError(f"sampler must be 'exact' or 'training', got {sampler!r}")
        return code_from_draws(self.construction, draws)[:, 0, :]

    # -- decoding and labels ---------------------------------------------------------------

    def _build_decode(self):
        from ..backend import at, function
        code = at.matrix("code", dtype=self.floatX)
        return function([code], self.net.mean_of(self.net.decode(code)))

    def decode_mean(self, codes, batch_size=1000):
        """E[x | code] for codes (N, latent size) (VAEs only)."""
        if self.semi:
            raise ValueError("decode_mean needs a VAE; the semi-supervised decoder needs labels")
        f = self.compiled("decode", self._build_decode)
        return np.concatenate([f(self.cast_x(codes[i:i + batch_size]))
                               for i in range(0, len(codes), batch_size)])

    def _build_label_probs(self):
        from ..backend import at, function
        x = at.matrix("x", dtype=self.floatX)
        return function([x], self.net.label_probs(x))

    def label_probs(self, x, batch_size=1000):
        """q(y | x) (semi-supervised models only)."""
        if not self.semi:
            raise ValueError(f"{self.model} has no classifier")
        f = self.compiled("label_probs", self._build_label_probs)
        return np.concatenate([f(self.cast_x(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])

    def param(self, name):
        return np.asarray(self.net.params[name].get_value())


def load_model(path, n_in=None, likelihood=None):
    """Rebuild the network of a best-parameters (or checkpoint) file and load its parameters.

    ``n_in`` and ``likelihood`` default to what the file says (the first encoder
    weight's rows; the likelihood recorded with the data set).
    Raises :class:`~stick_breaking_dgms.checkpoints.CheckpointError` when the file is
    unsound or its parameters do not fit the model built from its arguments.
    """
    groups, meta = read_checkpoint(path, required_groups=("params",))
    config, net = rebuild_model(path, meta, groups["params"], n_in, likelihood)
    return LoadedModel(path, net, config.model, config.floatX, config, meta)
