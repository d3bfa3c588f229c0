"""Dense and residual layers, and the multi-layer perceptrons of encoder and decoder.

Weights start as 0.01 * N(0, 1) and biases at 0, as in the original code. A residual
layer adds its input to its output, h' = act(h W + b) + h (so n_in must equal n_out).
"""
from collections import OrderedDict

import numpy as np

from .backend import at, floatX, parameter, sigmoid

ACTIVATIONS = {
    "relu": lambda x: at.maximum(x, 0.0),
    "sigmoid": sigmoid,
    "identity": lambda x: x,
}


def init_weight(rng, n_in, n_out, scale=0.01):
    """0.01 * N(0, 1) weights, as the original."""
    return np.asarray(scale * rng.standard_normal((n_in, n_out)), dtype=floatX())


class Dense:
    """act(x W + b), optionally residual: act(x W + b) + x.

    Parameters
    ----------
    n_in, n_out : int
    activation : {"relu", "sigmoid", "identity"}
    rng : numpy.random.Generator
        Draws the initial weights.
    name : str
        Prefix of the parameter names (``name + "/W"``, ``name + "/b"``).
    residual : bool
    """

    def __init__(self, n_in, n_out, activation, rng, name, residual=False):
        if residual and n_in != n_out:
            raise ValueError(f"residual layer {name} needs n_in == n_out, got {n_in} -> {n_out}")
        self.n_in, self.n_out, self.residual = n_in, n_out, residual
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]
        self.W = parameter(init_weight(rng, n_in, n_out), name=name + "/W")
        self.b = parameter(np.zeros(n_out, dtype=floatX()), name=name + "/b")
        self.params = [self.W, self.b]

    def preactivation(self, x):
        return at.dot(x, self.W) + self.b

    def finish(self, pre, x):
        """Apply the activation to a pre-activation computed from input ``x``."""
        out = self.activation(pre)
        return out + x if self.residual else out

    def __call__(self, x):
        return self.finish(self.preactivation(x), x)


class MLP:
    """A stack of :class:`Dense` layers applied in order."""

    def __init__(self, layers):
        self.layers = list(layers)

    @property
    def params(self):
        return [p for layer in self.layers for p in layer.params]

    def __call__(self, x, start=0):
        for layer in self.layers[start:]:
            x = layer(x)
        return x


def layer_kinds(nb_hidden_layers, hidden_type="traditional", skip=0):
    """Per hidden layer, whether it is residual: the last ``skip`` of them when residual."""
    n_res = skip if hidden_type == "residual" else 0
    return [False] * (nb_hidden_layers - n_res) + [True] * n_res


def build_encoder(n_in, hidden_sizes, residual, activation, rng):
    """Encoder MLP: n_in -> hidden_sizes[0] -> ... (the last hidden layer feeds the latent)."""
    sizes = [n_in] + list(hidden_sizes)
    return MLP(Dense(i, o, activation, rng, f"encoder/{k}", res)
               for k, (i, o, res) in enumerate(zip(sizes[:-1], sizes[1:], residual)))


def build_decoder(n_latent, hidden_sizes, residual, activation, n_out, out_activation, rng):
    """Decoder MLP mirroring the encoder.

    latent -> hidden (activation), then the encoder's hidden layers in reverse order
    (a layer is residual where its mirror is), then a dense layer to ``n_out`` with
    ``out_activation`` ("identity" when the likelihood works on the pre-activation).
    """
    hidden_sizes = list(hidden_sizes)
    layers = [Dense(n_latent, hidden_sizes[-1], activation, rng, "decoder/0")]
    rev_sizes = hidden_sizes[::-1]
    rev_res = list(residual)[::-1]
    # Mirror of encoder layer j (sizes[j] -> sizes[j+1]) is sizes[j+1] -> sizes[j].
    for k in range(len(hidden_sizes) - 1):
        layers.append(Dense(rev_sizes[k], rev_sizes[k + 1], activation, rng,
                            f"decoder/{k + 1}", rev_res[k]))
    # Mirror of the first encoder layer, which changes the dimension: never residual.
    layers.append(Dense(rev_sizes[-1], n_out, out_activation, rng, f"decoder/{len(hidden_sizes)}"))
    return MLP(layers)


def named_params(*groups):
    """OrderedDict name -> shared variable over parameter lists, checking names are unique."""
    out = OrderedDict()
    for group in groups:
        for p in group:
            if p.name in out:
                raise ValueError(f"duplicate parameter name {p.name}")
            out[p.name] = p
    return out
