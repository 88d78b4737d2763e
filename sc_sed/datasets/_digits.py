"""scikit-learn's bundled 8×8 hand-written digits as sparse images."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.datasets import load_digits

from sc_sed.data import from_images


def digits() -> AnnData:
    """Hand-written digits as sparse 8×8 images, one feature per pixel (offline).

    Shape 1,797 images × 64 pixels, about 49% zeros; pixel values are integer intensities
    0–16 stored as float32. Source: UCI ML hand-written digits (optical recognition test set,
    Alpaydin & Kaynak 1998), bundled with scikit-learn as ``sklearn.datasets.load_digits``.
    Licence: CC BY 4.0 (UCI); scikit-learn is BSD-3-Clause.

    Returns
    -------
    AnnData built by :func:`sc_sed.data.from_images` (``var`` has ``row``/``col``,
    ``uns["sc_sed_image"]`` the 8×8 shape, so :func:`sc_sed.data.to_images` restores the
    images) with the label in ``obs["digit"]`` (categorical ``"0"``–``"9"``).
    """
    bunch = load_digits()
    labels = pd.Categorical(bunch.target.astype(str), categories=[str(d) for d in range(10)])
    obs = pd.DataFrame({"digit": labels}, index=[f"digit_{i:04d}" for i in range(len(labels))])
    adata = from_images(np.asarray(bunch.images), obs=obs)
    adata.uns["sc_sed_dataset"] = {"name": "digits"}
    return adata
