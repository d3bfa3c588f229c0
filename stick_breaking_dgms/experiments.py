"""Training tasks: the compiled functions and log formats of the SB-VAE and the SB-DGM.

A task owns its data (in shared variables, minibatches taken by index inside the
graph, so no batch is copied from the host), the compiled training and evaluation
functions, and the original's log-line formats. :class:`~.training.Trainer` runs it.

In JAX mode (:func:`.backend.set_mode`) the functions take each batch and the training
noise as inputs instead: JAX compiles for static shapes, and a slice of a shared matrix
at a traced index, or a random draw whose size is traced, has none. The noise comes from
a NumPy generator the task owns (the family's own training sampler), which checkpoints
and resumes like the random streams of the C mode.
"""
import math
from collections import OrderedDict
from fractions import Fraction

import numpy as np

from .backend import at, floatX, function, mode, shared
from .objectives import prediction_errors_expr
from .optimizers import finite_step_expr, training_updates


def _shared_data(array, name, dtype=None):
    return shared(np.ascontiguousarray(array, dtype=dtype or floatX()), name=name, borrow=True)


def _batch(data, index, size):
    """Rows ``[index * size, (index + 1) * size)`` of a shared matrix, with that shape.

    Only for the training functions, whose batches are all full: the static shape lets
    the compile-time rewriting skip run-time broadcast checks (see ``backend.parameter``).
    """
    rows = data[index * size:(index + 1) * size]
    n_cols = data.get_value(borrow=True).shape[1]
    return at.specify_shape(rows, tuple(None if n == 1 else n for n in (size, n_cols)))


def _state_of(updates, params):
    """The optimizer's shared variables (update keys that are not parameters), by name."""
    param_ids = {id(p) for p in params.values()}
    return OrderedDict((v.name, v) for v in updates if id(v) not in param_ids)


def _rngs(model):
    return [rng for rng, _ in model.srng.state_updates]


class _HostNoise:
    """JAX mode: the training noise drawn on the host by the family's own sampler, from a
    generator kept in a shared variable (so the Trainer checkpoints and restores it)."""

    def __init__(self, model):
        self.family = model.latent.family
        self.rng = shared(np.random.default_rng(model.noise_seed), name="noise_rng")

    def symbolic(self, name):
        """The noise input of a compiled function."""
        return at.tensor(dtype=floatX(), shape=(None,) * self.family.noise_ndim, name=name)

    def draw(self, n):
        rng = self.rng.get_value(borrow=True)  # drawn in place: the stored state advances
        return np.asarray(self.family.training_noise(rng, n), dtype=floatX())


class _CompiledOnFirstCall:
    """A function compiled when first called, so a run reaches its first step sooner."""

    def __init__(self, build):
        self._build, self._fn = build, None

    @property
    def function(self):
        """The compiled Aesara function (compiled now if it was not yet)."""
        if self._fn is None:
            self._fn = self._build()
        return self._fn

    def __call__(self, *args):
        return self.function(*args)


class _Task:
    """What every task shares: the training step, the validation and test passes.

    With ``on_nan="skip-batch"`` the compiled step also returns whether its update was
    applied (the cost and the gradient norm were finite); a withheld one is reported to
    the Trainer as non-finite metrics, so it is counted even when only the gradient was
    not finite.
    """

    _reports_step = False

    def _compile_train(self, inputs, metrics, cost, norm, updates, givens, on_nan):
        self._reports_step = on_nan == "skip-batch"
        outputs = list(metrics) + ([finite_step_expr(cost, norm)] if self._reports_step else [])
        self._train = function(inputs, outputs, updates=updates, givens=givens)

    def _train_inputs(self, i):
        """The training function's arguments for batch ``i``."""
        return (i,)

    def train_step(self, i):
        out = self._train(*self._train_inputs(i))
        if self._reports_step:
            *values, applied = out
            return values if applied else [math.nan] * len(values)
        return out

    def validate(self):
        return self._evaluate("valid")

    def test(self):
        return self._evaluate("test")


class VAETask(_Task):
    """SB-VAE / Gauss-VAE: minimise the mean negative ELBO; validate on reconstruction NLL.

    The validation score is the mean reconstruction NLL with one posterior sample, as
    in the original ("valid error"). The negative ELBO and the marginal likelihood of a
    trained model are in :mod:`.evaluation`.
    """

    train_metrics = ("nll", "kl")

    def __init__(self, model, data, batch_size, learning_rate, on_nan="stop",
                 clip_gradient_norm=None, adam_options=None):
        self.model, self.data, self.batch_size = model, data, batch_size
        self.params = model.params
        self.n_train_batches = len(data.train_x) // batch_size
        self.host_noise = _HostNoise(model) if mode() == "JAX" else None
        index = at.lscalar("index")
        x = at.matrix("x")
        noise = self.host_noise.symbolic("noise") if self.host_noise else None
        nll, kl = model.negative_elbo_terms(x, noise)
        cost = at.mean(nll + kl)
        updates, norm = training_updates(cost, self.params.values(), learning_rate,
                                         clip_gradient_norm, on_nan == "skip-batch",
                                         **(adam_options or {}))
        self.optimizer_state = _state_of(updates, self.params)
        metrics = [at.mean(nll), at.mean(kl)]
        if self.host_noise:
            self.rngs = [self.host_noise.rng]
            self._compile_train([x, noise], metrics, cost, norm, updates, None, on_nan)
            # Validation and test score the reconstruction NLL only, as the original: the
            # KL's ten-term series would be the costliest node of the pass.
            self._eval = _CompiledOnFirstCall(lambda: function([x, noise], at.sum(nll)))
            return
        self.rngs = _rngs(model)
        self.train_x = _shared_data(data.train_x, "data/train_x")
        self.eval_x = _shared_data(data.valid_x, "data/eval_x")
        self.eval_split = "valid"
        batch = slice(index * batch_size, (index + 1) * batch_size)
        self._compile_train([index], metrics, cost, norm, updates,
                            {x: _batch(self.train_x, index, batch_size)}, on_nan)
        self._eval = _CompiledOnFirstCall(lambda: function(
            [index], at.sum(nll), givens={x: self.eval_x[batch]}))

    def _train_inputs(self, i):
        if not self.host_noise:
            return (i,)
        b = self.batch_size
        return (self.data.train_x[i * b:(i + 1) * b], self.host_noise.draw(b))

    def _evaluate(self, split):
        x, _ = self.data.split(split)
        if self.host_noise:
            total = 0.0
            for start in range(0, len(x), self.batch_size):
                xb = np.ascontiguousarray(x[start:start + self.batch_size], dtype=floatX())
                total += float(self._eval(xb, self.host_noise.draw(len(xb))))
            return {"score": total / len(x)}
        if self.eval_split != split:
            self.eval_x.set_value(np.ascontiguousarray(x, dtype=floatX()), borrow=True)
            self.eval_split = split
        total = 0.0
        for i in range(math.ceil(len(x) / self.batch_size)):
            total += float(self._eval(i))
        return {"score": total / len(x)}

    @staticmethod
    def format_epoch(epoch, means, valid, seconds):
        return (f"epoch {epoch}, training loss (NLL) {means[0]:.4f}, training kl divergence "
                f"{means[1]:.4f}, valid error {valid['score']:.4f}, time {seconds:.2f}s")

    @staticmethod
    def format_final(prefix, best_epoch, best_score, test, minutes):
        return (f"{prefix} best epoch {best_epoch}, best valid error {best_score:.4f}, "
                f"test error {test['score']:.4f}, training time {minutes:.2f}m")


class LabelSplitError(ValueError):
    """The labelled / unlabelled split leaves fewer than one labelled example per batch."""


def split_labels(n_train, drop_percentage, batch_size, seed):
    """Choose which training examples lose their labels, and the two batch sizes.

    A fraction ``drop_percentage`` of the training set (chosen with ``seed``) becomes
    unlabelled; it is cut into batches of ``batch_size`` and the labelled batch size is
    N_labelled // number_of_batches, so an epoch walks both sets once.

    Returns (labelled_idx, unlabelled_idx, n_batches, labelled_batch_size).
    """
    # Exact decimal product: int(0.7 * 45000) would give 31499 (0.7 * 45000 = 31499.999...).
    n_unlabelled = int(Fraction(repr(float(drop_percentage))) * n_train)
    order = np.random.default_rng(seed).permutation(n_train)
    unlabelled, labelled = np.sort(order[:n_unlabelled]), np.sort(order[n_unlabelled:])
    if n_unlabelled == 0:  # fully supervised: the labelled set sets the batches
        n_batches = len(labelled) // batch_size
        labelled_batch = batch_size
    else:
        n_batches = n_unlabelled // batch_size
        if n_batches < 1:
            raise LabelSplitError(
                f"{n_unlabelled} unlabelled examples make no batch of --batch-size "
                f"{batch_size}: lower --batch-size or raise --label-drop-percentage")
        labelled_batch = len(labelled) // n_batches
    if labelled_batch < 1:
        remedy = "Lower --label-drop-percentage"
        if len(labelled):  # the smallest batch size B with n_unlabelled // B <= N_labelled
            smallest = n_unlabelled // (len(labelled) + 1) + 1
            remedy = f"Raise --batch-size (to at least {smallest}) or lower --label-drop-percentage"
        raise LabelSplitError(
            f"{len(labelled)} labelled examples for {n_batches} batches of {batch_size} "
            f"unlabelled ones: fewer than one labelled example per batch. {remedy}")
    return labelled, unlabelled, n_batches, labelled_batch


class SemiSupervisedTask(_Task):
    """SB-DGM / Gauss-DGM: labelled and unlabelled batches in one step; validate on error."""

    # the four terms of the original's log line, and the total cost being minimised
    train_metrics = ("labelled_nll", "unlabelled_nll", "labelled_kl", "unlabelled_kl", "cost")

    def __init__(self, model, data, batch_size, learning_rate, drop_percentage, supervised_weight,
                 label_seed, on_nan="stop", clip_gradient_norm=None, adam_options=None):
        if data.train_y is None:
            raise ValueError(f"{data.name}: the semi-supervised model needs labels (y)")
        self.model, self.data = model, data
        self.params = model.params
        labelled, unlabelled, n_batches, lb = split_labels(len(data.train_x), drop_percentage,
                                                           batch_size, label_seed)
        self.n_labelled, self.n_unlabelled = len(labelled), len(unlabelled)
        self.n_train_batches, self.labelled_batch_size = n_batches, lb
        self.batch_size = batch_size
        self.host_noise = _HostNoise(model) if mode() == "JAX" else None
        index = at.lscalar("index")
        x_l, x_u, y = at.matrix("x_labelled"), at.matrix("x_unlabelled"), at.ivector("y")
        noise_l = noise_u = None
        if self.host_noise:
            self._host = (np.ascontiguousarray(data.train_x[labelled]),
                          np.asarray(data.train_y[labelled], dtype="int32"),
                          np.ascontiguousarray(data.train_x[unlabelled]))
            noise_l, noise_u = (self.host_noise.symbolic(n) for n in ("noise_l", "noise_u"))
            inputs, givens = [x_l, y, noise_l], None
            if self.n_unlabelled:
                inputs += [x_u, noise_u]
        else:
            self.xl = _shared_data(data.train_x[labelled], "data/labelled_x")
            self.yl = _shared_data(data.train_y[labelled], "data/labelled_y", dtype="int32")
            inputs = [index]
            givens = {x_l: _batch(self.xl, index, lb),
                      y: self.yl[index * lb:(index + 1) * lb]}
            if self.n_unlabelled:
                self.xu = _shared_data(data.train_x[unlabelled], "data/unlabelled_x")
                givens[x_u] = _batch(self.xu, index, batch_size)
        if self.n_unlabelled:
            cost, terms = model.cost(x_l, y, x_u, supervised_weight, noise_l, noise_u)
        else:
            nll, kl, label_nll = model.labelled_terms(x_l, y, noise_l)
            cost = at.mean(nll + kl + label_nll)
            zero = at.zeros((), dtype=floatX())
            terms = {"labelled_nll": at.mean(nll), "unlabelled_nll": zero,
                     "labelled_kl": at.mean(kl), "unlabelled_kl": zero}
        terms["cost"] = cost  # checked for NaN too: -log q(y|x) and H[q] are only in it
        updates, norm = training_updates(cost, self.params.values(), learning_rate,
                                         clip_gradient_norm, on_nan == "skip-batch",
                                         **(adam_options or {}))
        self.optimizer_state = _state_of(updates, self.params)
        self.rngs = [self.host_noise.rng] if self.host_noise else _rngs(model)
        self._compile_train(inputs, [terms[n] for n in self.train_metrics], cost, norm, updates,
                            givens, on_nan)
        x, yy = at.matrix("x"), at.ivector("y")
        probs = model.label_probs(x)
        self._errors = _CompiledOnFirstCall(
            lambda: function([x, yy], prediction_errors_expr(yy, probs)))

    def _train_inputs(self, i):
        if not self.host_noise:
            return (i,)
        lb, b = self.labelled_batch_size, self.batch_size
        xl, yl, xu = self._host
        out = (xl[i * lb:(i + 1) * lb], yl[i * lb:(i + 1) * lb], self.host_noise.draw(lb))
        if self.n_unlabelled:
            out += (xu[i * b:(i + 1) * b], self.host_noise.draw(b))
        return out

    def _evaluate(self, split):
        x, y = self.data.split(split)
        errors = 0
        for start in range(0, len(x), 1000):
            errors += int(self._errors(np.ascontiguousarray(x[start:start + 1000], floatX()),
                                       np.asarray(y[start:start + 1000], dtype="int32")))
        return {"score": errors / len(x), "errors": errors}

    @staticmethod
    def format_epoch(epoch, means, valid, seconds):
        return (f"epoch {epoch}, (supervised training loss (NLL) {means[0]:.4f}, unsupervised "
                f"training loss (NLL) {means[1]:.4f}), (supervised training kl-div "
                f"{means[2]:.4f}, unsupervised training kl-div {means[3]:.4f}), valid error "
                f"{valid['score']:.2%} ({valid['errors']:,}), time {seconds:.2f}s")

    def format_final(self, prefix, best_epoch, best_score, test, minutes):
        best_errors = round(best_score * len(self.data.valid_x))
        return (f"{prefix} best epoch {best_epoch}, best valid error {best_score:.2%} "
                f"({best_errors:,}), test error {test['score']:.2%} ({test['errors']:,}), "
                f"training time {minutes:.2f}m")
