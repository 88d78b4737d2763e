"""Jet observables of detector images (pixels as massless particles) and their comparison.

Each non-zero pixel ``i`` of an event is a massless particle with transverse momentum
``pT_i`` = the pixel value, at the pixel centre ``(η_i, φ_i)`` (``var["eta"]``, ``var["phi"]``)::

    E   = Σ pT_i cosh η_i          px = Σ pT_i cos φ_i
    pz  = Σ pT_i sinh η_i          py = Σ pT_i sin φ_i
    pt  = sqrt(px² + py²)          mass = sqrt(max(E² − px² − py² − pz², 0))

Everything is computed over the stored non-zeros only (cost O(nnz)); nothing of shape
``(n_events, n_pixels)`` is ever densified.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import wasserstein_distance

from sc_sed.data import validated_csr

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

#: Observables compared by :func:`compare_physics`.
OBSERVABLES = ("pt", "mass", "n_hits")


def _event_matrix(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    if layer is not None and layer not in adata.layers:
        msg = f"Layer {layer!r} not found in `adata.layers`; available: {list(adata.layers)}."
        raise KeyError(msg)
    matrix = adata.X if layer is None else adata.layers[layer]
    return validated_csr(  # a canonical copy; the input is never touched
        matrix, what="Pixel values (transverse momenta)", nonnegative=True, dtype=np.float64,
        hint="transverse momenta must be finite and non-negative",
    )  # fmt: skip


def _pixel_coordinates(
    adata: AnnData, eta_key: str, phi_key: str, reference: AnnData | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-feature ``(eta, phi)``, borrowing them from ``reference`` when absent but the features match."""
    source = adata
    if not {eta_key, phi_key} <= set(adata.var.columns):
        if reference is not None and reference.var_names.equals(adata.var_names):
            source = reference
        else:
            msg = (
                f"`adata.var` needs pixel centres {eta_key!r} and {phi_key!r}; build the data with "
                "`sc_sed.data.from_images(..., eta=..., phi=...)` or pass `eta_key`/`phi_key`."
            )
            raise KeyError(msg)
    eta = source.var[eta_key].to_numpy(dtype=np.float64)
    phi = source.var[phi_key].to_numpy(dtype=np.float64)
    return eta, phi


def jet_observables(
    adata: AnnData,
    *,
    layer: str | None = None,
    eta_key: str = "eta",
    phi_key: str = "phi",
) -> pd.DataFrame:
    """Per-event jet transverse momentum, invariant mass and number of hits.

    Each non-zero pixel is a massless particle with ``pT`` equal to its value at its pixel
    centre ``(η, φ)``: ``E = pT cosh η``, ``p = pT (cos φ, sin φ, sinh η)``. The jet
    ``pt = |Σ pT_i (cos φ_i, sin φ_i)|`` (magnitude of the summed transverse momentum vector),
    ``mass = sqrt(max(E² − |p|², 0))`` of the summed four-momentum, ``n_hits`` the number of
    non-zero pixels. Computed over the non-zeros only.

    Parameters
    ----------
    adata
        Events × pixels with non-negative values, e.g. from :func:`sc_sed.data.from_images`.
    layer
        Layer to read instead of ``X``.
    eta_key, phi_key
        ``var`` columns with the pixel centres.

    Returns
    -------
    DataFrame indexed by ``obs_names`` with float columns ``pt``, ``mass`` and integer
    ``n_hits``; empty events have all three equal to 0.
    """
    csr = _event_matrix(adata, layer)
    eta, phi = _pixel_coordinates(adata, eta_key, phi_key)
    return _observables(csr, eta, phi, adata.obs_names)


def _observables(
    csr: sp.csr_matrix, eta: np.ndarray, phi: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    pix_eta, pix_phi, pt = eta[csr.indices], phi[csr.indices], csr.data
    if pt.size and not (np.all(np.isfinite(pix_eta)) and np.all(np.isfinite(pix_phi))):
        msg = "Some non-zero pixels have no finite eta/phi centre; check `var` (padding features must stay zero)."
        raise ValueError(msg)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))

    def total(component: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=component, minlength=csr.shape[0])

    px, py = total(pt * np.cos(pix_phi)), total(pt * np.sin(pix_phi))
    pz, energy = total(pt * np.sinh(pix_eta)), total(pt * np.cosh(pix_eta))
    mass2 = energy**2 - px**2 - py**2 - pz**2
    return pd.DataFrame(
        {
            "pt": np.hypot(px, py),
            "mass": np.sqrt(np.maximum(mass2, 0.0)),
            "n_hits": np.diff(csr.indptr).astype(np.int64),
        },
        index=pd.Index(index, copy=True),
    )


def _distances(real_obs: pd.DataFrame, synth_obs: pd.DataFrame, group: str) -> list[dict]:
    return [
        {
            "metric": f"{name}_wasserstein",
            "group": group,
            "value": float(wasserstein_distance(real_obs[name], synth_obs[name])),
            "better": "lower",
            "ideal": 0.0,
        }
        for name in OBSERVABLES
    ]


def _group_labels(adata: AnnData, groupby: str, *, what: str) -> np.ndarray:
    if groupby not in adata.obs.columns:
        msg = f"`groupby={groupby!r}` is not a column of `{what}.obs`; available: {list(adata.obs.columns)}."
        raise KeyError(msg)
    return adata.obs[groupby].astype(str).to_numpy()


def compare_physics(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    synth_layer: str | None = None,
    groupby: str | None = None,
    eta_key: str = "eta",
    phi_key: str = "phi",
) -> pd.DataFrame:
    """1-Wasserstein distances between real and synthetic jet observables.

    Parameters
    ----------
    real
        Held-out real events × pixels with ``var[eta_key]``/``var[phi_key]``.
    synth
        Generated events over the same pixels; when its ``var`` lacks the pixel centres but its
        ``var_names`` equal ``real``'s, the centres of ``real`` are used.
    layer
        Layer of ``real`` to read instead of ``X``.
    synth_layer
        Layer of ``synth`` to read instead of ``X`` (default: ``X``).
    groupby
        ``obs`` column present in both (e.g. ``"particle"``): also compare within each of its
        groups that both sets contain.
    eta_key, phi_key
        ``var`` columns with the pixel centres.

    Returns
    -------
    Tidy DataFrame (the layout of :func:`sc_sed.tl.evaluate`) with columns ``metric``
    (``"pt_wasserstein"``, ``"mass_wasserstein"``, ``"n_hits_wasserstein"``), ``group``
    (``"all"``, then each group), ``value`` (:func:`scipy.stats.wasserstein_distance` of the
    per-event :func:`jet_observables`, in the data's units), ``better`` (``"lower"``) and
    ``ideal`` (``0.0``).
    """
    if real.n_obs == 0 or synth.n_obs == 0:
        msg = f"Both `real` and `synth` need events, got {real.n_obs} and {synth.n_obs}."
        raise ValueError(msg)
    obs_real = jet_observables(real, layer=layer, eta_key=eta_key, phi_key=phi_key)
    eta, phi = _pixel_coordinates(synth, eta_key, phi_key, reference=real)
    obs_synth = _observables(_event_matrix(synth, synth_layer), eta, phi, synth.obs_names)
    rows = _distances(obs_real, obs_synth, "all")
    if groupby is not None:
        labels_real = _group_labels(real, groupby, what="real")
        labels_synth = _group_labels(synth, groupby, what="synth")
        for group in pd.unique(labels_real):
            if np.any(labels_synth == group):
                rows += _distances(
                    obs_real[labels_real == group], obs_synth[labels_synth == group], group
                )
            else:
                logger.warning("Group %r of %r has no synthetic events; skipped.", group, groupby)
    return pd.DataFrame(rows, columns=["metric", "group", "value", "better", "ideal"])
