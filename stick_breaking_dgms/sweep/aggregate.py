"""Selection and aggregation: one row per cell (model, data set, label fraction).

As in the paper, the swept flags (``alpha0``, ...) are chosen per cell by the
validation score: for each setting the mean, over the seeds that finished, of the runs'
best validation score (the reconstruction NLL of the VAEs, the classification error of
the semi-supervised models; lower is better for both); the setting with the lowest mean
is chosen (the first in grid order on a tie). The row gives the chosen setting and the
mean and standard deviation over its seeds of the test metric -- the test score of the
best validation parameters, the ``test_score`` attribute of each run's metrics file, the
number on the final line of its log -- with the number of runs it rests on.

The standard deviation is the sample one (``ddof=1``); with a single run it is None.
A run counts when it has finished (status "finished", or "nan": stopped on a NaN and
tested with its best epoch's parameters) with a finite validation and test score.

>>> from stick_breaking_dgms.sweep.aggregate import summarize   # doctest: +SKIP
>>> for cell in summarize("experiments/sweep_paper_mnist"):     # doctest: +SKIP
...     print(cell.model, cell.label_fraction, cell.chosen, cell.test_mean, cell.n_runs)
"""
import dataclasses
import json
import math
import os

from ..config import MODELS
from ..fileio import write_text
from ..runfiles import FINISHED
from .manifest import read_manifest
from .status import metrics_attrs

SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"


@dataclasses.dataclass
class RunResult:
    """What one run's metrics file says."""
    run: object                 # .grid.Run
    status: object              # "finished", "nan", "running", None (nothing yet) ...
    valid: object               # best validation score, or None
    test: object                # test score of the best parameters, or None

    @property
    def usable(self):
        return self.status in FINISHED and _finite(self.valid) and _finite(self.test)


@dataclasses.dataclass
class Candidate:
    """One swept setting of a cell, over its seeds."""
    setting: dict
    runs: list                  # ids of the runs that count
    planned: int                # runs of this setting in the grid
    valid_mean: object
    test_mean: object
    test_std: object


@dataclasses.dataclass
class CellSummary:
    """The row of one (model, data set, label fraction)."""
    model: str
    dataset: str
    label_fraction: object      # None for the VAEs
    metric: str                 # "test error" (fraction) or "test NLL" (nats)
    chosen: object              # the chosen setting ({} when nothing is swept), or None
    n_runs: int                 # runs the mean rests on
    planned: int                # runs of the chosen setting in the grid
    test_mean: object
    test_std: object
    valid_mean: object
    candidates: list

    def to_dict(self):
        return dataclasses.asdict(self)


def collect(sweep_dir):
    """(swept flag names, [RunResult]) of a sweep folder, read from the runs' metrics."""
    swept, runs = read_manifest(sweep_dir)
    results = []
    for run in runs:
        attrs = metrics_attrs(run)
        results.append(RunResult(run, attrs.get("status"), _number(attrs.get("best_score")),
                                 _number(attrs.get("test_score"))))
    return swept, results


def summarize(sweep_dir):
    """The rows of a sweep folder, in grid order: a list of :class:`CellSummary`."""
    _, results = collect(sweep_dir)
    return select(results)


def select(results):
    """Choose each cell's setting by mean validation score; aggregate its test scores."""
    cells = {}
    for r in results:
        cells.setdefault(r.run.cell, {}).setdefault(r.run.setting, []).append(r)
    rows = []
    for (model, dataset, fraction), settings in cells.items():
        candidates = []
        for setting, group in settings.items():
            good = [r for r in group if r.usable]
            tests = [r.test for r in good]
            candidates.append(Candidate(
                dict(setting), [r.run.id for r in good], len(group),
                _mean([r.valid for r in good]), _mean(tests), _std(tests)))
        ranked = [c for c in candidates if c.valid_mean is not None]
        best = min(ranked, key=lambda c: c.valid_mean) if ranked else None  # first on a tie
        rows.append(CellSummary(
            model, dataset, fraction, "test error" if MODELS[model].semi else "test NLL",
            best.setting if best else None, len(best.runs) if best else 0,
            best.planned if best else candidates[0].planned, best.test_mean if best else None,
            best.test_std if best else None, best.valid_mean if best else None, candidates))
    return rows


def chosen_params_files(sweep_dir):
    """The best-parameters files of the runs each cell's chosen setting rests on (every
    usable seed), in grid order: what ``sbdgm-reproduce SWEEP_DIR`` evaluates."""
    _, results = collect(sweep_dir)
    by_id = {r.run.id: r.run for r in results}
    files = []
    for row in select(results):
        chosen = [c for c in row.candidates if c.setting == row.chosen]
        for run_id in (chosen[0].runs if chosen else []):
            if os.path.exists(by_id[run_id].files.best):
                files.append(by_id[run_id].files.best)
    return files


def write_summary(sweep_dir, rows=None):
    """Write ``summary.md`` and ``summary.json`` in the sweep folder; return the rows."""
    rows = summarize(sweep_dir) if rows is None else rows
    doc = {"cells": [row.to_dict() for row in rows],
           "std": "sample standard deviation over seeds (ddof=1); null with one run",
           "selection": "per cell, the setting with the lowest mean best validation score"}
    write_text(os.path.join(sweep_dir, SUMMARY_JSON),
               json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n")
    write_text(os.path.join(sweep_dir, SUMMARY_MD), markdown(rows))
    return rows


def markdown(rows):
    """The rows as a Markdown table (test error in %, test NLL in nats)."""
    lines = ["# Sweep summary", "",
             "Per cell, the swept setting with the lowest mean validation score; the test "
             "metric of its runs as mean ± sample standard deviation over seeds (test "
             "errors in %, their deviation in percentage points; NLL in nats).", "",
             "| model | data set | labels | chosen | metric | mean ± std | runs |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        labels = "-" if row.label_fraction is None else f"{row.label_fraction:.0%}" \
            if row.label_fraction >= 0.01 else f"{row.label_fraction:.2%}"
        chosen = "(none finished)" if row.chosen is None else (
            ", ".join(f"{k} {v}" for k, v in row.chosen.items()) or "-")
        lines.append(f"| {row.model} | {row.dataset} | {labels} | {chosen} | {row.metric} | "
                     f"{_value(row, row.test_mean, row.test_std)} | "
                     f"{row.n_runs} of {row.planned} |")
    return "\n".join(lines) + "\n"


def _value(row, mean, std):
    if mean is None:
        return "-"
    if row.metric == "test error":
        text = f"{100 * mean:.2f}%"
        return text + (f" ± {100 * std:.2f}" if std is not None else " (one run)")
    text = f"{mean:.2f}"
    return text + (f" ± {std:.2f}" if std is not None else " (one run)")


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(value):
    return value is not None and math.isfinite(value)


def _mean(values):
    return math.fsum(values) / len(values) if values else None


def _std(values):
    if len(values) < 2:
        return None
    m = _mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {value!r}")
