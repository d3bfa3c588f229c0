"""Train-step time at initialisation and with the state of a trained run, side by side.

A long run's parameters and Adam moments are not those of a fresh model: moments decay
towards zero and a trained decoder's logits for MNIST's blank pixels fall below -87.
Where such numbers reach the subnormal range, x86 CPUs take some hundred cycles per
operand; the kernels keep them out (see stick_breaking_dgms/kernels.py). This benchmark
shows whether they do: it builds the script's task with default arguments, times train
steps with the fresh initialisation, loads the parameters and Adam state of CHECKPOINT
(written by a run of the same model with default arguments), counts the subnormal numbers
in that state and times the steps again, alternating the two states in rounds.

Usage: python benchmarks/trained_state.py MODEL CHECKPOINT [--steps N] [--rounds R]
(MODEL: sb_vae, gauss_vae, sb_ssdgm, gauss_ssdgm).
"""
import argparse
import time

import numpy as np

from stick_breaking_dgms import backend, cli
from stick_breaking_dgms.checkpoints import CheckpointError, check_shapes, read_checkpoint
from stick_breaking_dgms.config import MODELS
from stick_breaking_dgms.datasets import load_dataset
from stick_breaking_dgms.factory import build_task


def subnormal_count(arrays):
    return sum(int(((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)).sum()) for a in arrays
               if a.dtype.kind == "f")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("checkpoint", help="a run's checkpoint (.h5) with its Adam state")
    p.add_argument("--steps", type=int, default=100, help="timed steps per round (100)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per state (3)")
    p.add_argument("--data-dir", default="./datasets")
    opts = p.parse_args(argv)

    backend.configure_blas_threads(1)
    _, args, args_config = cli.parse_args(opts.model, ["--data-dir", opts.data_dir])
    data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed).astype(args.floatX)
    try:  # an unreadable file fails before the compile; shapes are checked after it
        groups, _ = read_checkpoint(opts.checkpoint, required_groups=("params", "optimizer"))
    except CheckpointError as e:
        p.error(str(e))
    task = build_task(args_config, data)
    variables = {"params": task.params, "optimizer": task.optimizer_state}
    try:
        for group, shared in variables.items():
            check_shapes(opts.checkpoint, groups[group],
                         {n: v.get_value(borrow=True).shape for n, v in shared.items()})
    except CheckpointError as e:
        p.error(f"{e} (expected a checkpoint of a {opts.model} run with default arguments)")
    states = {"fresh": {g: {n: v.get_value() for n, v in s.items()} for g, s in variables.items()},
              "trained": groups}
    print(f"subnormal numbers in the checkpoint's parameters and Adam state: "
          f"{subnormal_count(list(groups['params'].values()) + list(groups['optimizer'].values()))}")

    def load(state):
        for group, shared in variables.items():
            for name, v in shared.items():
                v.set_value(np.asarray(states[state][group][name], dtype=v.dtype))

    n_batches = task.n_train_batches
    times = {state: [] for state in states}
    for _ in range(opts.rounds):
        for state in states:
            load(state)
            for i in range(5):  # warm-up (and, from the trained state, one flushing step)
                task.train_step(i % n_batches)
            for i in range(opts.steps):
                t0 = time.perf_counter()
                task.train_step(i % n_batches)
                times[state].append(time.perf_counter() - t0)
    after = subnormal_count(v.get_value(borrow=True) for v in task.optimizer_state.values())
    fresh, trained = (1000 * np.median(times[s]) for s in ("fresh", "trained"))
    print(f"{opts.model}: median train step {fresh:.2f} ms fresh, {trained:.2f} ms with the "
          f"trained state (ratio {trained / fresh:.2f}); subnormal numbers in Adam's state "
          f"after the timed steps: {after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
