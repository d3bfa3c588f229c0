"""Evaluations the paper reports and the original code never shipped.

``loading``       a trained model from a best-parameters file (its stored arguments)
``likelihood``    marginal likelihood by importance sampling (SB-VAE and Gauss-VAE)
``knn``           exact Euclidean k-nearest-neighbour classification in NumPy blocks
``latent_usage``  active dimensions, average stick weights, decoder weight norms
``regression``    the short seeded MNIST run the test suite compares with a reference

The ``reproduce`` module puts these numbers beside the published ones.
Importing this package does not import Aesara; ``loading`` and ``likelihood`` do.
"""
