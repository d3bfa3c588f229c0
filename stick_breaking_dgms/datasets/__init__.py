"""Data sets of the paper, looked up by name, and your own data from a file.

``load_dataset(name, data_dir, seed)`` returns a :class:`Dataset`; ``name`` is a registry
name (:data:`DATASET_CHOICES`) or a path to a ``.npz`` / ``.h5`` / ``.hdf5`` file
(:func:`is_dataset_path`, :mod:`.custom`). Every loader raises :class:`DatasetError` with
the file and the problem when it cannot. The user guide's page "Data sets and data-file
formats" (docs/user/datasets.md) documents every format, split and preprocessing.
"""
from .base import (LIKELIHOODS, Dataset, DatasetError, check_likelihood, infer_likelihood,
                   seeded_split)
from .cache import CacheError, CacheWarning
from .custom import load_custom, looks_like_path
from .frey import load_frey_faces
from .mnist import load_mnist
from .mnist_plus_rot import load_mnist_plus_rot
from .svhn import load_svhn_pca

LOADERS = {
    "mnist": load_mnist,
    "mnist_plus_rot": load_mnist_plus_rot,
    "svhn_pca": load_svhn_pca,
    "frey_faces": load_frey_faces,
}
DATASET_CHOICES = tuple(LOADERS)


def is_dataset_path(name):
    """True when ``name`` should be read as a data file rather than a registry name.

    A registry name (``"mnist"``, ...) always means the registry; anything else that ends in
    ``.npz`` / ``.h5`` / ``.hdf5`` or has a directory part (``data/x``) is a path.
    """
    name = str(name)
    return name not in LOADERS and looks_like_path(name)


def load_dataset(name, data_dir="./datasets", seed=1234, likelihood=None, **options):
    """Load the data set ``name`` (one of :data:`DATASET_CHOICES`, or a file path).

    Parameters
    ----------
    name : str
        Registry name or path to your own ``.npz`` / HDF5 file.
    data_dir : str
        Where the registry data sets' files are looked for and caches are written.
    seed : int
        Seed of the train / valid / test shuffle.
    likelihood : {None, "bernoulli", "gaussian"}
        None keeps the data set's own likelihood (inferred from the values for a file);
        a value overrides it, after checking that Bernoulli data lie in [0, 1].
    **options
        Passed to the loader (see each loader's docstring).
    """
    if likelihood is not None and likelihood not in LIKELIHOODS:
        raise DatasetError(f"unknown likelihood {likelihood!r}; expected one of "
                           f"{', '.join(LIKELIHOODS)} (or None for the data set's own)")
    if is_dataset_path(name):
        return load_custom(str(name), seed=seed, likelihood=likelihood, data_dir=data_dir,
                           **options)
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(LOADERS)}, "
                           f"or the path of a .npz / .h5 / .hdf5 file")
    data = LOADERS[name](data_dir=data_dir, seed=seed, **options)
    if likelihood is not None and likelihood != data.likelihood:
        data = data.with_likelihood(likelihood)
    return data


__all__ = ["CacheError", "CacheWarning", "Dataset", "DatasetError", "DATASET_CHOICES",
           "LIKELIHOODS", "LOADERS", "check_likelihood", "infer_likelihood",
           "is_dataset_path", "load_custom", "load_dataset", "load_frey_faces", "load_mnist",
           "load_mnist_plus_rot", "load_svhn_pca", "seeded_split"]
