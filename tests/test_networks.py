"""Layers and the encoder/decoder structure of the original."""
import numpy as np
import pytest

from stick_breaking_dgms.backend import at, function
from stick_breaking_dgms.networks import Dense, build_decoder, build_encoder, layer_kinds


def test_initialisation_is_scaled_normal_and_zero_bias():
    layer = Dense(784, 500, "relu", np.random.default_rng(0), "l")
    W = layer.W.get_value()
    assert W.shape == (784, 500) and W.dtype == np.float32
    assert abs(W.mean()) < 2e-4 and W.std() == pytest.approx(0.01, rel=0.01)
    assert np.all(layer.b.get_value() == 0)


def test_dense_and_residual_layers_compute_the_formula():
    rng = np.random.default_rng(1)
    x = at.matrix("x")
    plain = Dense(4, 4, "relu", rng, "p")
    res = Dense(4, 4, "sigmoid", rng, "r", residual=True)
    plain.b.set_value(np.arange(4, dtype=np.float32) - 2)
    f = function([x], [plain(x), res(x)])
    xv = rng.normal(size=(3, 4)).astype(np.float32)
    out_plain, out_res = f(xv)
    np.testing.assert_allclose(out_plain, np.maximum(xv @ plain.W.get_value()
                                                     + plain.b.get_value(), 0), rtol=1e-6)
    expected = 1 / (1 + np.exp(-(xv @ res.W.get_value()))) + xv
    np.testing.assert_allclose(out_res, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="n_in == n_out"):
        Dense(3, 4, "relu", rng, "bad", residual=True)


def test_layer_kinds_puts_skips_on_the_last_layers():
    assert layer_kinds(4, "residual", 3) == [False, True, True, True]
    assert layer_kinds(2, "traditional", 1) == [False, False]


def test_decoder_mirrors_encoder():
    rng = np.random.default_rng(2)
    kinds = layer_kinds(4, "residual", 3)
    enc = build_encoder(784, [500] * 4, kinds, "relu", rng)
    dec = build_decoder(50, [500] * 4, kinds, "relu", 784, "identity", rng)
    assert [(l.n_in, l.n_out, l.residual) for l in enc.layers] == \
        [(784, 500, False), (500, 500, True), (500, 500, True), (500, 500, True)]
    # latent -> hidden, mirrored hidden layers, hidden -> data (identity output)
    assert [(l.n_in, l.n_out, l.residual) for l in dec.layers] == \
        [(50, 500, False), (500, 500, True), (500, 500, True), (500, 500, True),
         (500, 784, False)]
    assert dec.layers[-1].activation_name == "identity"
    assert dec.layers[0].activation_name == "relu"
    names = [p.name for p in enc.params + dec.params]
    assert len(names) == len(set(names))


def test_weights_carry_their_shape_except_length_one_dimensions():
    layer = Dense(784, 1, "relu", np.random.default_rng(0), "l")
    assert layer.W.type.shape == (784, None) and layer.b.type.shape == (None,)
    # a static 1 would make the dimension broadcastable and silently change the maths
    assert layer.W.type.broadcastable == (False, False)
    with pytest.raises(TypeError):
        layer.W.set_value(np.zeros((783, 1), dtype=np.float32))
