"""Sparsity-Exploiting Diffusion for sparse AnnData."""
__version__ = "0.1.0"
