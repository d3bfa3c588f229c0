"""Latent families: one module per posterior, looked up by name.

Each family (:class:`.base.LatentFamily`) owns all its math: posterior parameters from the
encoder, training noise and reparameterised draw, closed-form KL, posterior mean, prior
draws, and an exact float64 sampler with log densities for importance sampling.

* ``"kumaraswamy"``: the SB-VAE (Kumaraswamy fractions, Beta(1, alpha0) prior);
* ``"gauss-logit"``: v = sigmoid(eta), eta Normal (Table 1);
* ``"gamma"``: v = x / (x + y) from two Gamma variables (Table 1);
* ``"gaussian"``: the Gauss-VAE's z in R^L.

A new family is a new module here and one line in :data:`REGISTRY`. The registry names
modules rather than importing them, so that the command line lists the families without
importing the symbolic backend; the classes are imported on first use.
"""
import importlib

# name: (module, class, construction, the constructor's options)
REGISTRY = {
    "kumaraswamy": ("kumaraswamy", "Kumaraswamy", "stick-breaking",
                    ("alpha0", "taylor_terms", "digamma", "clip", "kl")),
    "gauss-logit": ("gauss_logit", "GaussLogit", "stick-breaking", ("prior", "alpha0")),
    "gamma": ("gamma", "Gamma", "stick-breaking", ("alpha0",)),
    "gaussian": ("gaussian", "Gaussian", "gaussian", ()),
}
FAMILY_CHOICES = tuple(REGISTRY)


def _check(name):
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown latent family {name!r}; expected one of "
                         f"{', '.join(REGISTRY)}")
    return name


def construction_of(name):
    """``"stick-breaking"`` or ``"gaussian"``: what the family's draws are."""
    return REGISTRY[_check(name)][2]


def options_of(name):
    """The keyword options the family's constructor takes (names of
    :class:`~stick_breaking_dgms.config.LatentConfig` fields)."""
    return REGISTRY[_check(name)][3]


def families_of(construction):
    """The names of the families with this construction, in registry order."""
    return tuple(n for n, (_, _, c, _) in REGISTRY.items() if c == construction)


def get_family(name):
    """The family class registered as ``name`` (one of :data:`FAMILY_CHOICES`)."""
    module, cls, _, _ = REGISTRY[_check(name)]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


_LAZY = {"LatentFamily": "base", "CONSTRUCTIONS": "base", "knowles_ks_distance": "gamma",
         "matched_prior": "gauss_logit"}


def __getattr__(attr):
    """``FAMILIES`` ({name: class}), the family classes and their helpers, imported on
    first use (they import the symbolic backend)."""
    if attr == "FAMILIES":
        return {name: get_family(name) for name in REGISTRY}
    for name, (_, cls, _, _) in REGISTRY.items():
        if attr == cls:
            return get_family(name)
    if attr in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[attr]}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["CONSTRUCTIONS", "FAMILIES", "FAMILY_CHOICES", "Gamma", "GaussLogit", "Gaussian",
           "Kumaraswamy", "LatentFamily", "REGISTRY", "construction_of", "families_of",
           "get_family", "knowles_ks_distance", "matched_prior", "options_of"]
