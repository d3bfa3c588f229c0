"""Cost of checkpointing every epoch for the default SB-VAE (784-500-50) on MNIST.

Runs the real Trainer (factory.build_task with the default configuration) for N epochs with
--checkpoint-every 1 and reports, per epoch, the training time and the periodic
checkpoint's time (Trainer.checkpoint_seconds), then times save_checkpoint() alone a few
more times. Usage: python benchmarks/checkpoint_cost.py [epochs] [blas_threads]
"""
import os
import sys
import tempfile
import time

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
threads = sys.argv[2] if len(sys.argv) > 2 else "1"

from stick_breaking_dgms import backend, cli  # noqa: E402
from stick_breaking_dgms.datasets import load_dataset  # noqa: E402
from stick_breaking_dgms.factory import build_task  # noqa: E402
from stick_breaking_dgms.runfiles import RunFiles  # noqa: E402
from stick_breaking_dgms.training import Trainer  # noqa: E402

backend.configure_blas_threads(threads if threads == "auto" else int(threads))
_, args, args_config = cli.parse_args("sb_vae", ["--progress", "never", "--max-epoch", str(epochs)])
data = load_dataset("mnist", seed=args.seed).astype("float32")
t = time.time()
task = build_task(args_config, data)
print(f"built in {time.time() - t:.1f}s", flush=True)
with tempfile.TemporaryDirectory() as d:
    files = RunFiles(d, "stickBreaking_vae", "measure")
    trainer = Trainer(task, files, {"args": vars(args)}, epochs, 100, checkpoint_every=1,
                      progress="never")
    trainer.run()
    epoch_seconds = [h["seconds"] for h in trainer.state.history]
    size = os.path.getsize(files.checkpoint)
    extra = [trainer.save_checkpoint() for _ in range(5)]
    t = time.time()
    trainer.write_outputs()
    outputs = time.time() - t
    t = time.time()
    trainer.save_best()
    best = time.time() - t
for e, (s, c) in enumerate(zip(epoch_seconds, trainer.checkpoint_seconds)):
    print(f"epoch {e}: training {s:.2f}s, periodic checkpoint {c:.3f}s ({100 * c / s:.2f}%)")
print(f"checkpoint file {size / 1e6:.1f} MB; save_checkpoint() alone x5: "
      + ", ".join(f"{x:.3f}s" for x in extra))
print(f"log + metrics rewrite {outputs:.3f}s; best-parameters file {best:.3f}s")
