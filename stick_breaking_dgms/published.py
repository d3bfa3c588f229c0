"""The published numbers of Nalisnick & Smyth (ICLR 2017), as data.

They live in ``data/published.json`` (shipped with the package): one record per
table cell, with the table (``likelihood``, ``knn``, ``semisup``,
``active_dimensions``), the data set, the model, the metric, the setting (``k``,
``labels_percent``, ...), the value, the published ± where there is one, the unit and
the source.

    >>> from stick_breaking_dgms.published import lookup
    >>> lookup("likelihood", "mnist", "sb_vae").value
    98.01
    >>> lookup("semisup", "mnist", "sb_ssdgm", labels_percent=10).pm
    0.14
"""
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

TABLES = ("likelihood", "knn", "semisup", "active_dimensions")


@dataclass(frozen=True)
class Record:
    """One published number."""

    table: str
    dataset: str
    model: str
    metric: str
    value: float
    pm: float = None
    unit: str = ""
    source: str = ""
    setting: dict = field(default_factory=dict, hash=False)


@lru_cache(maxsize=1)
def _data():
    text = resources.files("stick_breaking_dgms").joinpath("data/published.json").read_text(
        encoding="utf-8")
    return json.loads(text)


def records(table=None, dataset=None, model=None):
    """Published records, optionally filtered by table, data set and model."""
    out = []
    for r in _data()["records"]:
        if table is not None and r["table"] != table:
            continue
        if dataset is not None and r["dataset"] != dataset:
            continue
        if model is not None and r["model"] != model:
            continue
        out.append(Record(table=r["table"], dataset=r["dataset"], model=r["model"],
                          metric=r["metric"], value=float(r["value"]),
                          pm=None if r["pm"] is None else float(r["pm"]), unit=r["unit"],
                          source=r["source"], setting=dict(r["setting"])))
    return out


def lookup(table, dataset, model, **setting):
    """The record of one cell, or None when the paper has no such number."""
    for r in records(table, dataset, model):
        if all(r.setting.get(k) == v for k, v in setting.items()) and \
                set(r.setting) == set(setting):
            return r
    return None


def model_name(key):
    """Display name of a model key (``sb_vae`` -> ``Kumaraswamy SB-VAE``;
    ``sb_vae_exact_kl`` -> ``Kumaraswamy SB-VAE, exact KL``)."""
    models = _data()["models"]
    if key in models:
        return models[key]
    base, label = split_variant(key)
    return key if label is None else f"{models[base]}, {label}"


def split_variant(key):
    """``(paper's model key, words for the KL variant)`` of a model key, or
    ``(key, None)`` when it is not a paper's model with a KL variant tag."""
    from .config import kl_variant_label
    for base in sorted(_data()["models"], key=len, reverse=True):
        if key.startswith(base + "_"):
            label = kl_variant_label(key[len(base) + 1:])
            if label is not None:
                return base, label
    return key, None


def dataset_name(key):
    """Display name of a data set key (``mnist_plus_rot`` -> ``MNIST+rot``)."""
    return _data()["datasets"].get(key, key)


def notes():
    """What each table measures, as the paper states it."""
    return dict(_data()["notes"])


def paper():
    return _data()["paper"]
