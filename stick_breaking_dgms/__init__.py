"""Stick-breaking deep generative models (Nalisnick & Smyth, ICLR 2017) on Aesara or PyTensor.

Modules, one idea each:

``backend``         the only import of the graph library, Aesara or PyTensor (floatX, BLAS,
                    threads, the JAX mode)
``distributions``   Kumaraswamy, Beta and Gaussian: samplers, densities, KL terms
``stick_breaking``  fractions v -> stick weights pi
``networks``        dense and residual layers, multi-layer perceptrons
``families``        the latent families (Kumaraswamy, Gauss-Logit, Gamma, Gaussian)
``latent``          the stochastic layers: stick-breaking and Gaussian constructions
``objectives``      likelihoods and label terms
``models``          the SB-VAE / Gauss-VAE and the semi-supervised DGMs
``optimizers``      Adam as an update dictionary
``datasets``        MNIST and the other data sets of the paper
``training``        the epoch loop: early stopping, logs, checkpoints, NaN policy
``checkpoints``     HDF5 checkpoints with integrity checks
``config``          an experiment's configuration: typed, defaults, validation
``factory``         model and training task from a configuration; a trained model from
                    its file
``api``             training from Python (what the scripts do)
``cli``             the command-line interface of the original scripts (flags -> config)

Importing the package does not import the graph library; the modules that build graphs do.
"""
__version__ = "0.1.0"
