"""From a configuration to a model, its training task, or a trained model from its file.

* :func:`build_model`: the (uncompiled) network of an :class:`~.config.ExperimentConfig`;
* :func:`build_task`: the network and its compiled training task on a data set;
* :func:`rebuild_model`: a trained network from a checkpoint or best-parameters file,
  built exactly as in training (the configuration the file stores, the model seed
  training derived, the run's float precision) with every parameter shape checked and
  non-finite parameters refused.
"""
import numpy as np

from .checkpoints import CheckpointError, check_shapes
from .config import config_of_checkpoint


def n_classes_of(params):
    """The number of classes of a semi-supervised model's stored parameters (10 if unknown)."""
    w = params.get("classifier/W") if isinstance(params, dict) else None
    return int(np.shape(w)[1]) if w is not None and np.ndim(w) == 2 else 10


def build_model(config, n_in, likelihood, n_classes=10):
    """The network of ``config``: a :class:`~.models.VAE` or a
    :class:`~.models.SemiSupervisedDGM` on ``n_in`` inputs with the given likelihood
    (``"bernoulli"`` or ``"gaussian"``); ``n_classes``: the semi-supervised model's labels.
    Parameters are created in the backend's current floatX."""
    from .models import SemiSupervisedDGM, VAE
    from .networks import layer_kinds
    net, latent = config.network, config.latent
    hidden = [net.hidden_size] * net.nb_hidden_layers
    residual = layer_kinds(net.nb_hidden_layers, net.hidden_type, net.skip)
    common = (n_in, hidden, residual, net.activation_type, latent.family, latent.size,
              likelihood, config.model_seed)
    if config.semi:
        return SemiSupervisedDGM(*common, n_classes=n_classes, **latent.options())
    return VAE(*common, **latent.options())


def build_task(config, data):
    """The network of ``config`` on ``data`` and its compiled training task
    (:class:`~.experiments.VAETask` or :class:`~.experiments.SemiSupervisedTask`)."""
    from .experiments import SemiSupervisedTask, VAETask
    t = config.training
    net = build_model(config, data.n_in, data.likelihood,
                      n_classes=data.n_classes if config.semi else 10)
    common = dict(on_nan=t.on_nan, clip_gradient_norm=t.clip_gradient_norm)
    if config.semi:
        return SemiSupervisedTask(net, data, t.batch_size, t.learning_rate,
                                  t.label_drop_percentage, t.supervised_weight,
                                  config.label_seed, **common)
    return VAETask(net, data, t.batch_size, t.learning_rate, **common)


def likelihood_of(config, meta):
    """The likelihood a run trained with: the configured one, else the one recorded with
    the data set's description, else Bernoulli."""
    import re
    if config.data.likelihood:
        return config.data.likelihood
    match = re.search(r"(bernoulli|gaussian) likelihood", str(meta.get("dataset", "")))
    return match.group(1) if match else "bernoulli"


def rebuild_model(path, meta, params, n_in=None, likelihood=None):
    """The trained network of a file: (configuration, network with ``params`` loaded).

    ``meta`` and ``params`` are the file's metadata and a parameter group
    (:func:`~.checkpoints.read_checkpoint`); ``n_in`` defaults to the rows of
    ``encoder/0/W``, ``likelihood`` to :func:`likelihood_of`. The network is built in the
    run's floatX and left there. Raises CheckpointError naming ``path`` when the stored
    configuration is unusable or a parameter does not fit.
    """
    from .backend import floatX_as
    config = config_of_checkpoint(meta, path)
    if n_in is None:
        w = params.get("encoder/0/W")
        if w is None or np.ndim(w) != 2:
            raise CheckpointError(f"{path}: no encoder/0/W matrix among the parameters")
        n_in = int(np.shape(w)[0])
    with floatX_as(config.floatX):
        try:
            net = build_model(config, n_in, likelihood or likelihood_of(config, meta),
                              n_classes=n_classes_of(params))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot rebuild the model from the stored "
                                  f"configuration: {type(e).__name__}: {e}") from None
    expected = {n: v.get_value(borrow=True).shape for n, v in net.params.items()}
    check_shapes(path, params, expected)
    for name in net.params:
        if not np.all(np.isfinite(params[name])):
            raise CheckpointError(f"{path}: parameter {name} holds non-finite values (a run "
                                  f"that stopped on a NaN); use the run's best parameters "
                                  f"(its _params_ file)")
    for name, var in net.params.items():
        var.set_value(np.asarray(params[name], dtype=var.dtype))
    return config, net
