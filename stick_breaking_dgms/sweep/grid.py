"""The grid file: parse it, validate it, expand it into runs.

A grid file is TOML::

    models = ["sb_ssdgm", "gauss_ssdgm"]     # keys of stick_breaking_dgms.config.MODELS
    datasets = ["mnist"]                      # --dataset values
    label_fractions = [0.10, 0.05, 0.01]      # kept labels (semi-supervised models only)
    alpha0 = [1, 3, 5]                        # swept: chosen per cell by validation score
    seeds = [1, 2, 3]                         # --seed values
    epochs = 1000                             # --max-epoch (optional)

    [sweep]                                   # more swept flags (optional)
    learning-rate = [3e-4, 1e-3]

    [flags]                                   # passed to every run
    hidden-size = 500
    [flags.sb_ssdgm]                          # passed to the runs of one model only
    latent-size = 50

Every point of models x datasets x label fractions x swept settings x seeds is one run:
the flags of the model's ``sbdgm-train-*`` script, checked with the script's own parser
(:func:`stick_breaking_dgms.cli.parse_args`) before anything starts. A label fraction f
becomes ``--label-drop-percentage 1 - f``; the VAE models have no labels and run once
per data set. A swept flag applies to the models whose script has it (``--alpha0``:
the stick-breaking ones); the others run once per cell without it.

Errors are :class:`GridError` naming the file, the line where it can be found and
what was expected.
"""
import contextlib
import dataclasses
import io
import itertools
import json
import os
import re
import threading
import tomllib

from ..config import MODELS

TOP_KEYS = ("models", "datasets", "label_fractions", "alpha0", "seeds", "epochs", "sweep",
            "flags")
# Flags the sweep sets itself, and what the grid file says instead.
RESERVED = {
    "experiment-dir": "each run has its own directory under the sweep folder",
    "resume": "the sweep resumes unfinished runs by itself",
    "no-resume": "the sweep resumes unfinished runs by itself",
    "progress": "the sweep shows progress itself",
    "seed": "use the top-level key seeds",
    "dataset": "use the top-level key datasets",
    "max-epoch": "use the top-level key epochs",
    "label-drop-percentage": "use the top-level key label_fractions (the kept fraction)",
}
BLAS_THREADS = "1"  # one worker per core, one BLAS thread each (and reproducible results)


class GridError(ValueError):
    """A grid file that cannot be run: ``path:line: message`` (line when known)."""

    def __init__(self, path, line, message):
        super().__init__(message)
        self.path, self.line, self.message = path, line, message

    def __str__(self):
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Grid:
    """A parsed grid file (values checked for type, runs not yet expanded)."""
    path: str
    text: str
    models: tuple
    datasets: tuple
    label_fractions: tuple
    seeds: tuple
    epochs: object                  # int or None (the script's default)
    swept: dict                     # flag -> tuple of values, in file order
    flags: dict                     # flag -> value, for every run
    model_flags: dict               # model -> {flag: value}

    def line_of(self, key, value=None):
        """The line number where ``key`` (and ``value`` in its list) is written, or None."""
        return _line_of(self.text, key, value)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of the sweep: the command, its directory and its place in the grid.

    ``setting`` holds the swept flags' values ((flag, value) pairs); ``label_fraction``
    is None for the VAE models. ``prefix`` and ``name`` are the run's file names
    (:mod:`stick_breaking_dgms.runfiles`) in ``experiment_dir``.
    """
    id: str
    model: str
    dataset: str
    label_fraction: object
    setting: tuple
    seed: int
    argv: tuple
    experiment_dir: str
    prefix: str
    name: str

    @property
    def cell(self):
        """(model, data set, label fraction): the runs a table row rests on."""
        return (self.model, self.dataset, self.label_fraction)

    @property
    def files(self):
        from ..runfiles import RunFiles
        return RunFiles(self.experiment_dir, self.prefix, self.name)

    @property
    def output_log(self):
        """Where the training processes' stdout and stderr go (every attempt appended)."""
        return os.path.join(self.experiment_dir, "output.log")

    def command(self):
        """The training command as a user would type it."""
        script = "sbdgm-train-" + self.model.replace("_", "-")  # the console scripts
        return " ".join([script, *(_quote(a) for a in self.argv)])

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["setting"] = [list(p) for p in self.setting]
        d["argv"] = list(self.argv)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["setting"] = tuple(tuple(p) for p in d["setting"])
        d["argv"] = tuple(d["argv"])
        return cls(**d)


# -- reading ----------------------------------------------------------------------------

def load_grid(path):
    """Read and check a grid file; return a :class:`Grid`. Raise :class:`GridError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise GridError(path, None, f"cannot read the grid file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise GridError(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or _toml_error_line(str(e))
        message = getattr(e, "msg", None) or re.sub(r"\s*\(at line \d+, column \d+\)$", "",
                                                      str(e))
        raise GridError(path, line, f"not valid TOML: {message}") from None
    return parse_grid(doc, path, text)


def parse_grid(doc, path="<grid>", text=""):
    """Check the values of a parsed TOML document; return a :class:`Grid`."""
    def fail(key, message, value=None, occurrence=1):
        raise GridError(path, _line_of(text, key, value, occurrence), message)

    for key in doc:
        if key not in TOP_KEYS:
            fail(key, f"unknown key {key!r} (expected {', '.join(TOP_KEYS)})")

    def str_list(key, required=True):
        values = doc.get(key)
        if values is None:
            if required:
                fail(key, f"missing key {key!r}: a list of {key}")
            return ()
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            fail(key, f"{key}: expected a non-empty list of strings, got {values!r}")
        for v in values:
            if not isinstance(v, str) or not v:
                fail(key, f"{key}: expected strings, got {v!r}", v)
        _no_repeats(key, values, fail)
        return tuple(values)

    models = str_list("models")
    for m in models:
        if m not in MODELS:
            fail("models", f"models: unknown model {m!r} (expected one of "
                           f"{', '.join(MODELS)})", m)
    datasets = str_list("datasets")
    semi = [m for m in models if MODELS[m].semi]

    fractions = doc.get("label_fractions")
    if fractions is None:
        fractions = ()
        if semi:
            fail("models", f"label_fractions: missing, and {', '.join(semi)} "
                           f"{'is' if len(semi) == 1 else 'are'} semi-supervised (give the "
                           f"fractions of training labels kept, e.g. [0.1])")
    else:
        if not isinstance(fractions, list) or not fractions:
            fail("label_fractions", f"label_fractions: expected a non-empty list of numbers "
                                    f"in (0, 1], got {fractions!r}")
        if not semi:
            fail("label_fractions", "label_fractions: none of the models is semi-supervised "
                                    "(sb_ssdgm, gauss_ssdgm); remove the key")
        for f in fractions:
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
                fail("label_fractions", f"label_fractions: expected numbers in (0, 1] (the "
                                        f"fraction of training labels kept), got {f!r}", f)
        _no_repeats("label_fractions", fractions, fail)
        fractions = tuple(float(f) for f in fractions)

    seeds = doc.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        fail("seeds", f"seeds: expected a non-empty list of integers, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            fail("seeds", f"seeds: expected non-negative integers, got {s!r}", s)
    _no_repeats("seeds", seeds, fail)

    epochs = doc.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        fail("epochs", f"epochs: expected a positive integer (--max-epoch), got {epochs!r}")

    swept = {}
    sweep_table = doc.get("sweep", {})
    if not isinstance(sweep_table, dict):
        fail("sweep", "sweep: expected a table [sweep] of flag = [values]")
    items = list(sweep_table.items())
    if "alpha0" in doc:
        if any(_flag_name(k) == "alpha0" for k in sweep_table):
            fail("alpha0", "alpha0: given both at the top level and in [sweep]")
        items.insert(0, ("alpha0", doc["alpha0"]))
    for key, values in items:
        name = _flag_name(key)
        _check_flag_name(name, key, fail)
        if not isinstance(values, list) or not values:
            fail(key, f"{key}: expected a non-empty list of values to sweep, got {values!r}")
        for v in values:
            _check_value(key, v, fail)
        _no_repeats(key, values, fail)
        swept[name] = tuple(values)
    for name in swept:
        if not any(_has_flag(m, name) for m in models):
            fail(name, f"{name}: swept, but none of the models ({', '.join(models)}) has "
                       f"--{name}")

    flags, model_flags = {}, {}
    flag_table = doc.get("flags", {})
    if not isinstance(flag_table, dict):
        fail("flags", "flags: expected a table [flags] of flag = value")
    for key, value in flag_table.items():
        if isinstance(value, dict):  # [flags.<model>]
            if key not in MODELS:
                fail(key, f"[flags.{key}]: unknown model {key!r} (expected one of "
                          f"{', '.join(MODELS)})")
            if key not in models:
                fail(key, f"[flags.{key}]: {key} is not among the models "
                          f"({', '.join(models)})")
            own = {}
            for k, v in value.items():
                name = _flag_name(k)
                _check_flag_name(name, k, fail)
                _check_value(k, v, fail)
                own[name] = v
            model_flags[key] = own
        else:
            name = _flag_name(key)
            _check_flag_name(name, key, fail)
            _check_value(key, value, fail)
            flags[name] = value
    for name in list(flags) + [n for own in model_flags.values() for n in own]:
        if name in swept:
            fail(name, f"{name}: both swept ([sweep] or alpha0) and fixed ([flags])")
    return Grid(path, text, models, datasets, fractions, tuple(seeds), epochs, swept, flags,
                model_flags)


# -- expanding ---------------------------------------------------------------------------

def expand(grid, sweep_dir):
    """The runs of ``grid`` with their directories under ``sweep_dir``; each one checked
    with its script's parser. Raise :class:`GridError` on a run the script refuses or on
    two runs with the same command."""
    from ..runfiles import run_name_of

    runs_dir = os.path.join(os.path.abspath(sweep_dir), "runs")
    runs, seen_ids, seen_commands = [], {}, {}
    for model, dataset in itertools.product(grid.models, grid.datasets):
        spec = MODELS[model]
        fractions = grid.label_fractions if spec.semi else (None,)
        names = [n for n in grid.swept if _has_flag(model, n)]
        for fraction in fractions:
            for values in itertools.product(*(grid.swept[n] for n in names)):
                setting = tuple(zip(names, values))
                for seed in grid.seeds:
                    run_id = _run_id(model, dataset, fraction, setting, seed)
                    directory = os.path.join(runs_dir, run_id)
                    fixed = {**grid.flags, **grid.model_flags.get(model, {})}
                    argv = [f"--dataset={dataset}", f"--seed={seed}"]
                    if fraction is not None:
                        argv.append(f"--label-drop-percentage={_drop(fraction)!r}")
                    if grid.epochs is not None:
                        argv.append(f"--max-epoch={grid.epochs}")
                    argv += [_arg(n, v) for n, v in setting]
                    argv += [_arg(n, v) for n, v in fixed.items()]
                    if "blas-threads" not in fixed:
                        argv.append(f"--blas-threads={BLAS_THREADS}")
                    argv += ["--progress=never", f"--experiment-dir={directory}"]
                    described = _describe(model, dataset, fraction, setting, seed)
                    config = _check_run(grid, model, argv, described)
                    if run_id in seen_ids:
                        raise GridError(grid.path, None, f"{described}: the same run as "
                                                         f"{seen_ids[run_id]} (directory "
                                                         f"{directory})")
                    command = (model, tuple(argv[:-1]))
                    if command in seen_commands:
                        raise GridError(grid.path, None, f"{described}: the same command as "
                                                         f"{seen_commands[command]}")
                    seen_ids[run_id] = seen_commands[command] = described
                    runs.append(Run(run_id, model, dataset, fraction, setting, seed,
                                    tuple(argv), directory, spec.prefix, run_name_of(config)))
    return runs


_PARSE_LOCK = threading.Lock()


def _check_run(grid, model, argv, described):
    """The run's configuration, from the script's own parser; GridError if it refuses.

    The parser reports an error on ``sys.stderr`` and exits; its message is caught by
    swapping ``sys.stderr`` for the call, which holds for the whole process: calls are
    serialised, and another thread's writes to stderr meanwhile would land in the buffer.
    """
    from ..cli import parse_args
    err = io.StringIO()
    try:
        with _PARSE_LOCK, contextlib.redirect_stderr(err):
            _, _, config = parse_args(model, list(argv))
    except SystemExit:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        message = lines[-1] if lines else "refused by the training script"
        message = re.sub(r"^\S+: error: ", "", message)
        match = re.search(r"--([a-z0-9-]+)", message)
        line = grid.line_of(match.group(1)) if match else None
        raise GridError(grid.path, line, f"{described}: {message}") from None
    return config


# -- helpers ------------------------------------------------------------------------------

def _drop(fraction):
    """--label-drop-percentage of a kept fraction (rounded: 1 - 0.1 must read 0.9)."""
    return round(1.0 - fraction, 12)


def _flag_name(key):
    return key.strip().lstrip("-").replace("_", "-")


def _check_flag_name(name, key, fail):
    if name in RESERVED:
        fail(key, f"{key}: not a flag a grid file sets ({RESERVED[name]})")
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]*", name):
        fail(key, f"{key!r}: not a flag name (expected e.g. hidden-size)")


def _check_value(key, value, fail):
    ok = (isinstance(value, (int, float, str)) and not isinstance(value, bool)) or (
        isinstance(value, list) and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok:
        fail(key, f"{key}: expected a number, a string or a list of numbers (LOW,HIGH), "
                  f"got {value!r}", value)


def _no_repeats(key, values, fail):
    seen = set()
    for v in values:
        marker = json.dumps(v, sort_keys=True)
        if marker in seen:
            fail(key, f"{key}: {v!r} is listed twice (the runs would be duplicates)", v,
                 occurrence=2)
        seen.add(marker)


def _text(value):
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _arg(name, value):
    # --flag=value: a negative number or a LOW,HIGH pair cannot be taken for a flag
    return f"--{name}={_text(value)}"


_FLAG_CACHE = {}


def _has_flag(model, name):
    """Whether the model's script has --name."""
    if model not in _FLAG_CACHE:
        from ..cli import build_parser
        _FLAG_CACHE[model] = set(build_parser(model)._option_string_actions)
    return f"--{name}" in _FLAG_CACHE[model]


def _tag(value):
    """A file-name-safe tag of a value."""
    text = _text(value) if not isinstance(value, float) else f"{value:g}"
    if isinstance(value, str) and ("/" in text or text.lower().endswith((".npz", ".h5",
                                                                         ".hdf5"))):
        text = os.path.splitext(os.path.basename(text))[0]
    return re.sub(r"[^A-Za-z0-9.=+-]+", "-", text).strip("-") or "x"


def _run_id(model, dataset, fraction, setting, seed):
    parts = [model, _tag(dataset)]
    if fraction is not None:
        parts.append(f"labels{fraction:g}")
    parts += [f"{_tag(n)}={_tag(v)}" for n, v in setting]
    parts.append(f"seed{seed}")
    return "_".join(parts)


def _describe(model, dataset, fraction, setting, seed):
    parts = [model, dataset]
    if fraction is not None:
        parts.append(f"labels {fraction:g}")
    parts += [f"{n} {_text(v)}" for n, v in setting]
    parts.append(f"seed {seed}")
    return "run " + ", ".join(parts)


def _quote(arg):
    return arg if re.fullmatch(r"[A-Za-z0-9_./=,:+-]+", arg) else repr(arg)


def _toml_error_line(message):
    match = re.search(r"at line (\d+)", message)
    return int(match.group(1)) if match else None


def _line_of(text, key, value=None, occurrence=1):
    """Best-effort line number of ``key = ...`` (and of the ``occurrence``-th ``value``
    in its list), or None."""
    if not text:
        return None
    lines = text.splitlines()
    spellings = {key, key.replace("-", "_"), key.replace("_", "-")}
    pattern = re.compile(r"^\s*(?:\[\s*flags\.)?[\"']?(" + "|".join(
        re.escape(s) for s in spellings) + r")[\"']?\s*(=|\])")
    for i, line in enumerate(lines):
        match = pattern.match(line)
        if not match:
            continue
        if value is None:
            return i + 1
        tokens = [json.dumps(value), f"'{value}'"] if isinstance(value, str) else [
            _text(value), str(value)]
        found = re.compile("|".join(r"(?<![\w.\"'])" + re.escape(t) + r"(?![\w.\"'])"
                                    for t in dict.fromkeys(tokens)))
        seen = 0
        for j in range(i, min(len(lines), i + 200)):
            if j > i and re.match(r"^\s*(\[|[\w\"'-]+\s*=)", lines[j]):
                break
            part = lines[j][match.end():] if j == i else lines[j]
            seen += len(found.findall(part))
            if seen >= occurrence:
                return j + 1
        return i + 1
    return None
