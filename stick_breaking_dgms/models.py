r"""The models of the paper, as parameters plus functions that build expressions.

:class:`VAE` is the SB-VAE with a stick-breaking posterior family (Kumaraswamy by
default; Gauss-Logit, Gamma) and the Gauss-VAE with the Gaussian family (its latent layer
is a :class:`~.latent.StochasticLayer`). Its per-example negative ELBO is reconstruction
NLL (one sample) + KL.

:class:`SemiSupervisedDGM` is the stick-breaking version of Kingma et al.'s M2
(SB-DGM), or with a Gaussian latent the Gauss-DGM. The encoder also gives
:math:`q(y \mid x) = \mathrm{softmax}(h W_y + b_y)` clipped to [1e-4, 1 - 1e-4];
the decoder's first layer sees the code and the label,
:math:`\mathrm{act}(\pi W_z + y W_y + b)`.

* labelled :math:`(x, y)`: :math:`\mathrm{NLL}(x \mid \pi, y) + \mathrm{KL} - \log q(y \mid x)`
* unlabelled :math:`x`: :math:`\sum_y q(y \mid x)\,\mathrm{NLL}(x \mid \pi, y) + \mathrm{KL}
  - H[q(y \mid x)]`, all labels decoded in one batched pass
* total: :math:`w\,\overline{\text{labelled}} + (1 - w)\,\overline{\text{unlabelled}}`
"""
import numpy as np

from .backend import RandomStream, at, parameter, sigmoid, softmax
from .latent import StochasticLayer
from .networks import Dense, build_decoder, build_encoder, init_weight, named_params
from .objectives import categorical_entropy_expr, categorical_nll_expr, nll_expr

LABEL_PROB_CLIP = (1e-4, 1.0 - 1e-4)


class VAE:
    """Variational autoencoder with dense encoder and decoder.

    Parameters
    ----------
    n_in : int
        Data dimension.
    hidden_sizes : list of int
        Encoder hidden layers (the decoder mirrors them).
    residual : list of bool
        Per hidden layer, whether it is residual.
    activation : {"relu", "sigmoid"}
    latent_family : str
        A posterior family of :data:`.families.FAMILIES` (``"kumaraswamy"``,
        ``"gauss-logit"``, ``"gamma"``, ``"gaussian"``).
    latent_size : int
        Truncation level K, or the Gaussian dimension.
    likelihood : {"bernoulli", "gaussian"}
    seed : int
        Seeds the initial weights and the model's random stream.
    latent_options : dict
        The family's options (``alpha0``, ``taylor_terms``, ``digamma``, ``clip`` for the
        Kumaraswamy, ``prior`` and ``alpha0`` for the Gauss-Logit, ...).
    """

    def __init__(self, n_in, hidden_sizes, residual, activation, latent_family, latent_size,
                 likelihood, seed, **latent_options):
        init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(init_seed)
        self.n_in, self.likelihood = n_in, likelihood
        self.encoder = build_encoder(n_in, hidden_sizes, residual, activation, rng)
        self.latent = StochasticLayer(latent_family, hidden_sizes[-1], latent_size, rng,
                                      **latent_options)
        self.decoder = build_decoder(self.latent.size, hidden_sizes, residual, activation, n_in,
                                     "identity", rng)
        self.noise_seed = int(noise_seed.generate_state(1)[0])
        self.srng = RandomStream(self.noise_seed)
        self.params = named_params(self.encoder.params, self.latent.params, self.decoder.params)

    def posterior(self, x):
        return self.latent.posterior(self.encoder(x))

    def decode(self, code):
        """Decoder output: logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(code)

    def mean_of(self, output):
        """E[x | code] from the decoder output."""
        return sigmoid(output) if self.likelihood == "bernoulli" else output

    def negative_elbo_terms(self, x, noise=None):
        """Per-example (reconstruction NLL, KL) with one posterior sample."""
        post = self.posterior(x)
        if noise is None:
            noise = self.latent.noise(self.srng, x.shape[0])
        nll = nll_expr(self.likelihood, x, self.decode(self.latent.sample(post, noise)))
        return nll, self.latent.kl(post)


class SemiSupervisedDGM(VAE):
    """SB-DGM / Gauss-DGM: a VAE whose encoder classifies and whose decoder sees the label.

    Takes the arguments of :class:`VAE` plus ``n_classes`` (10).
    """

    def __init__(self, n_in, hidden_sizes, residual, activation, latent_family, latent_size,
                 likelihood, seed, n_classes=10, **latent_options):
        super().__init__(n_in, hidden_sizes, residual, activation, latent_family, latent_size,
                         likelihood, seed, **latent_options)
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        self.n_classes = n_classes
        self.classifier = Dense(hidden_sizes[-1], n_classes, "identity", rng, "classifier")
        first = self.decoder.layers[0]
        self.W_label = parameter(init_weight(rng, n_classes, first.n_out), name="decoder/0/W_y")
        self.params = named_params(self.encoder.params, self.latent.params, self.classifier.params,
                                   self.decoder.params, [self.W_label])

    def _label_probs(self, h):
        return at.clip(softmax(self.classifier(h), axis=-1), *LABEL_PROB_CLIP)

    def label_probs(self, x):
        """q(y | x), clipped to [1e-4, 1 - 1e-4]."""
        return self._label_probs(self.encoder(x))

    def _decode_with_labels(self, code, label_pre):
        """Decoder output given the code and the label's contribution to layer 0."""
        first = self.decoder.layers[0]
        h = first.activation(first.preactivation(code) + label_pre)
        return self.decoder(h, start=1)

    def decode_label(self, code, y):
        """Decoder output for codes (N, K) and integer labels (N,)."""
        return self._decode_with_labels(code, self.W_label[y])

    def labelled_terms(self, x, y, noise=None):
        """Per-example (NLL(x | pi, y), KL, -log q(y | x)) for integer labels ``y``."""
        h = self.encoder(x)
        post = self.latent.posterior(h)
        if noise is None:
            noise = self.latent.noise(self.srng, x.shape[0])
        code = self.latent.sample(post, noise)
        nll = nll_expr(self.likelihood, x, self.decode_label(code, y))
        return nll, self.latent.kl(post), categorical_nll_expr(y, self._label_probs(h))

    def decode_all_labels(self, code):
        """Decoder output (N, n_classes, n_in) for every code with every label.

        The decoder runs once on a (N * n_classes, ...) batch; ``[:, y]`` equals
        :meth:`decode_label` with label ``y``.
        """
        first = self.decoder.layers[0]
        pre = first.preactivation(code)[:, None, :] + self.W_label[None, :, :]  # (N, C, H)
        c = self.n_classes
        # -1 for the batch dimension: JAX needs reshapes whose sizes it knows at compile
        # time, and n * c is only known at run time
        hidden = first.activation(pre).reshape((-1, first.n_out))
        return self.decoder(hidden, start=1).reshape((-1, c, self.n_in))

    def unlabelled_terms(self, x, noise=None):
        """Per-example (sum_y q(y|x) NLL(x | pi, y), KL, H[q(y|x)], q(y|x)).

        The decoder runs once on a (N * n_classes, ...) batch: every example with
        every label, sharing the example's single sample of pi.
        """
        h = self.encoder(x)
        post = self.latent.posterior(h)
        probs = self._label_probs(h)
        if noise is None:
            noise = self.latent.noise(self.srng, x.shape[0])
        out = self.decode_all_labels(self.latent.sample(post, noise))
        nll_per_label = nll_expr(self.likelihood, x[:, None, :], out)  # (N, C)
        expected_nll = at.sum(probs * nll_per_label, axis=1)
        return expected_nll, self.latent.kl(post), categorical_entropy_expr(probs), probs

    def cost(self, x_labelled, y, x_unlabelled, supervised_weight, noise_labelled=None,
             noise_unlabelled=None):
        """w * mean(labelled cost) + (1 - w) * mean(unlabelled cost), and the terms."""
        nll_l, kl_l, label_nll = self.labelled_terms(x_labelled, y, noise_labelled)
        nll_u, kl_u, entropy, _ = self.unlabelled_terms(x_unlabelled, noise_unlabelled)
        labelled = at.mean(nll_l + kl_l + label_nll)
        unlabelled = at.mean(nll_u + kl_u - entropy)
        w = supervised_weight
        total = w * labelled + (1.0 - w) * unlabelled
        return total, {"labelled_nll": at.mean(nll_l), "unlabelled_nll": at.mean(nll_u),
                       "labelled_kl": at.mean(kl_l), "unlabelled_kl": at.mean(kl_u)}
