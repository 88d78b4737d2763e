"""Sparsity-Exploiting Diffusion (SED) for sparse AnnData: generation with exact zeros."""

__version__ = "0.1.0"

from . import data, datasets, pl, tl  # noqa: E402

__all__ = ["SEDModel", "__version__", "data", "datasets", "pl", "tl"]


def __getattr__(name: str):
    # The model needs torch, scvi-tools and Lightning; import them on first use so that
    # the data adapters, tools and plots stay light.
    if name == "SEDModel":
        from .model import SEDModel

        return SEDModel
    if name == "baselines":  # comparison models; import on demand (torch, scvi-tools)
        import importlib

        return importlib.import_module(".baselines", __name__)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
