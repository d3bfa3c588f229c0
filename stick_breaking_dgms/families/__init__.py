"""Latent families: one module per posterior, looked up by name.

Each family (:class:`.base.LatentFamily`) owns all its math: posterior parameters from the
encoder, training noise and reparameterised draw, closed-form KL, posterior mean, prior
draws, and an exact float64 sampler with log densities for importance sampling.

* ``"kumaraswamy"``: the SB-VAE (Kumaraswamy fractions, Beta(1, alpha0) prior);
* ``"gauss-logit"``: v = sigmoid(eta), eta Normal (Table 1);
* ``"gamma"``: v = x / (x + y) from two Gamma variables (Table 1);
* ``"gaussian"``: the Gauss-VAE's z in R^L.
"""
from .base import CONSTRUCTIONS, LatentFamily
from .gamma import Gamma, knowles_ks_distance
from .gauss_logit import GaussLogit, matched_prior
from .gaussian import Gaussian
from .kumaraswamy import Kumaraswamy

FAMILIES = {
    "kumaraswamy": Kumaraswamy,
    "gauss-logit": GaussLogit,
    "gamma": Gamma,
    "gaussian": Gaussian,
}
FAMILY_CHOICES = tuple(FAMILIES)


def get_family(name):
    """The family class registered as ``name`` (one of :data:`FAMILY_CHOICES`)."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"unknown latent family {name!r}; expected one of "
                         f"{', '.join(FAMILIES)}")
    return FAMILIES[name]


__all__ = ["CONSTRUCTIONS", "FAMILIES", "FAMILY_CHOICES", "Gamma", "GaussLogit", "Gaussian",
           "Kumaraswamy", "LatentFamily", "get_family", "knowles_ks_distance", "matched_prior"]
