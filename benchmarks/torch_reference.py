"""The SB-VAE training step in PyTorch (CPU): the reference that ``speed.py`` times ours against.

The same model and update as ``stick_breaking_dgms`` with its defaults (784-500-50, relu,
batch 100, float32, alpha0 = 5, the original's KL with ten series terms and the series
digamma, Adam(3e-4, 0.95, 0.999, 1e-8)):

* encoder ``Linear(784, 500)`` + ReLU; ``W_a``, ``W_b``: ``Linear(500, 49)`` without bias;
  ``a = softplus(h W_a)``, ``b = softplus(h W_b)``;
* ``u ~ U(0.01, 0.99)``, ``v = (1 - u^(1/b))^(1/a)``, computed as ours does,
  ``exp(log(-expm1(log(u) / b)) / a)`` (the same number, full precision near 1);
* stick-breaking to 50 weights in log space, ``exp(cumsum(log1p(-min(v, 1 - 2^-24))))``, whose
  backward stays finite where ``1 - v`` rounds to 0 (``torch.cumprod``'s would not);
* KL(Kumaraswamy(a, b) || Beta(1, 5)) per stick with the series ``log b - 1/(2b) - 1/(12 b^2)``
  for the digamma, gamma = 0.57721, ten terms of ``B(m/a, b) / (m + ab)`` via ``lgamma``;
* decoder ``Linear(50, 500)`` + ReLU, ``Linear(500, 784)``; Bernoulli NLL from logits on grey
  levels (``binary_cross_entropy_with_logits``, summed over pixels);
* cost = batch mean of NLL + KL; ``torch.optim.Adam(lr=3e-4, betas=(0.95, 0.999), eps=1e-8)``;
  weights ``0.01 * N(0, 1)``, biases 0 (or copied from our model).

Run as ``python benchmarks/torch_reference.py --serve``, it is a worker that ``speed.py``
drives over stdin/stdout (pickled messages), so PyTorch and its OpenMP runtime live in a
process of their own, away from Aesara's OpenBLAS. A benchmark-only dependency:
``pip install -r benchmarks/requirements.txt`` (``torch==2.13.0``, the CPU build).
"""
import math
import pickle
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from procinfo import peak_rss_kib  # benchmarks/, the script's own directory

EULER_GAMMA_ORIGINAL = 0.57721
UNIFORM_RANGE = (0.01, 0.99)

# our parameter name -> (torch module attribute, transpose?)
PARAM_MAP = {
    "encoder/0/W": ("encoder.weight", True),
    "encoder/0/b": ("encoder.bias", False),
    "latent/W_a": ("W_a.weight", True),
    "latent/W_b": ("W_b.weight", True),
    "decoder/0/W": ("decoder0.weight", True),
    "decoder/0/b": ("decoder0.bias", False),
    "decoder/1/W": ("decoder1.weight", True),
    "decoder/1/b": ("decoder1.bias", False),
}


def digamma_series(b):
    """The original's stand-in for psi(b): log b - 1/(2b) - 1/(12 b^2)."""
    return torch.log(b) - 1.0 / (2.0 * b) - 1.0 / (12.0 * b * b)


def kumaraswamy_beta_kl(a, b, prior_alpha=1.0, prior_beta=5.0, terms=10):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)), the original's cut."""
    m = torch.arange(1, terms + 1, dtype=a.dtype)
    a_, b_ = a.unsqueeze(-1), b.unsqueeze(-1)
    m_over_a = m / a_
    log_beta_terms = torch.lgamma(m_over_a) + torch.lgamma(b_) - torch.lgamma(m_over_a + b_)
    series = torch.sum(torch.exp(log_beta_terms) / (m + a_ * b_), dim=-1)
    log_beta_prior = (math.lgamma(prior_alpha) + math.lgamma(prior_beta)
                      - math.lgamma(prior_alpha + prior_beta))
    return ((a - prior_alpha) / a * (-EULER_GAMMA_ORIGINAL - digamma_series(b) - 1.0 / b)
            + torch.log(a * b) + log_beta_prior - (b - 1.0) / b
            + (prior_beta - 1.0) * b * series)


def kumaraswamy_sample(a, b, u):
    """v = (1 - u^(1/b))^(1/a), as exp(log(-expm1(log(u) / b)) / a)."""
    return torch.exp(torch.log(-torch.expm1(torch.log(u) / b)) / a)


def stick_breaking(v):
    """Weights pi (N, K) from fractions v (N, K-1), the remaining stick in log space."""
    one = torch.ones((), dtype=v.dtype)
    below_one = torch.nextafter(one, torch.zeros((), dtype=v.dtype))
    log_remaining = torch.cumsum(torch.log1p(-torch.minimum(v, below_one)), dim=1)
    remaining = torch.exp(torch.cat([torch.zeros_like(v[:, :1]), log_remaining], dim=1))
    return remaining * torch.cat([v, torch.ones_like(v[:, :1])], dim=1)


class StickBreakingVAE(torch.nn.Module):
    def __init__(self, n_in=784, hidden=500, truncation=50, alpha0=5.0, terms=10, generator=None):
        super().__init__()
        self.truncation, self.alpha0, self.terms = truncation, float(alpha0), terms
        self.encoder = torch.nn.Linear(n_in, hidden)
        self.W_a = torch.nn.Linear(hidden, truncation - 1, bias=False)
        self.W_b = torch.nn.Linear(hidden, truncation - 1, bias=False)
        self.decoder0 = torch.nn.Linear(truncation, hidden)
        self.decoder1 = torch.nn.Linear(hidden, n_in)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, 1.0, generator=generator).mul_(0.01)

    def load_ours(self, params):
        """Copy our parameters (name -> array, ours is x @ W) into this model."""
        missing = set(PARAM_MAP) - set(params)
        if missing:
            raise KeyError(f"parameters missing: {sorted(missing)}")
        own = dict(self.named_parameters())
        with torch.no_grad():
            for name, (attr, transpose) in PARAM_MAP.items():
                value = torch.from_numpy(np.array(params[name], dtype=np.float32))
                own[attr].copy_(value.T if transpose else value)

    def noise(self, n, generator=None):
        low, high = UNIFORM_RANGE
        return torch.rand(n, self.truncation - 1, generator=generator) * (high - low) + low

    def terms_of(self, x, u):
        """Per-example (reconstruction NLL, KL) for data x and uniforms u."""
        h = F.relu(self.encoder(x))
        a = F.softplus(self.W_a(h))
        b = F.softplus(self.W_b(h))
        pi = stick_breaking(kumaraswamy_sample(a, b, u))
        logits = self.decoder1(F.relu(self.decoder0(pi)))
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        kl = kumaraswamy_beta_kl(a, b, 1.0, self.alpha0, self.terms).sum(dim=1)
        return nll, kl


class Trainer:
    """Model + Adam over the training set, batches taken in order as ours."""

    def __init__(self, train_x, batch_size=100, seed=1234, params=None):
        self.generator = torch.Generator().manual_seed(seed)
        self.model = StickBreakingVAE(train_x.shape[1], generator=self.generator)
        if params is not None:
            self.model.load_ours(params)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=3e-4, betas=(0.95, 0.999),
                                          eps=1e-8)
        self.x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
        self.batch_size = batch_size
        self.n_batches = len(train_x) // batch_size
        self.index = 0

    def step(self):
        i = self.index
        self.index = (i + 1) % self.n_batches
        x = self.x[i * self.batch_size:(i + 1) * self.batch_size]
        self.optimizer.zero_grad(set_to_none=True)
        nll, kl = self.model.terms_of(x, self.model.noise(x.shape[0], self.generator))
        (nll + kl).mean().backward()
        self.optimizer.step()
        return nll.detach().mean().item(), kl.detach().mean().item()

    def timed_steps(self, n, threads):
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        times, last = [], None
        for _ in range(n):
            start = time.perf_counter()
            last = self.step()
            times.append(time.perf_counter() - start)
        return times, last


def terms_for(params, x, u):
    """Our model's per-example (NLL, KL) recomputed in PyTorch, float64 arrays."""
    model = StickBreakingVAE(x.shape[1])
    model.load_ours(params)
    with torch.no_grad():
        nll, kl = model.terms_of(torch.from_numpy(np.asarray(x, np.float32)),
                                 torch.from_numpy(np.asarray(u, np.float32)))
    return nll.double().numpy(), kl.double().numpy()


def serve(inp, out):
    """Answer pickled requests {"cmd": ...} with pickled replies until "quit" or EOF."""
    torch.set_num_interop_threads(1)
    trainer = None
    while True:
        try:
            msg = pickle.load(inp)
        except EOFError:
            return
        cmd = msg["cmd"]
        try:
            if cmd == "setup":
                trainer = Trainer(np.load(msg["train_x"]), msg.get("batch_size", 100),
                                  msg.get("seed", 1234), msg.get("params"))
                reply = {"ok": True, "torch": torch.__version__, "n_batches": trainer.n_batches}
            elif cmd == "steps":
                times, last = trainer.timed_steps(int(msg["n"]), int(msg["threads"]))
                reply = {"ok": True, "times": times, "last": last}
            elif cmd == "terms":
                nll, kl = terms_for(msg["params"], msg["x"], msg["u"])
                reply = {"ok": True, "nll": nll, "kl": kl}
            elif cmd == "info":
                reply = {"ok": True, "torch": torch.__version__,
                         "peak_rss_kib": peak_rss_kib(),
                         "threads": torch.get_num_threads(),
                         "parallel_info": torch.__config__.parallel_info()}
            elif cmd == "quit":
                pickle.dump({"ok": True}, out)
                out.flush()
                return
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as e:  # report, keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        pickle.dump(reply, out)
        out.flush()


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: torch_reference.py --serve   (a worker driven by benchmarks/speed.py)")
    channel = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the channel
    serve(sys.stdin.buffer, channel)
