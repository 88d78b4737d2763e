"""AnnData-facing models."""

from ._sed import SEDModel

__all__ = ["SEDModel"]
