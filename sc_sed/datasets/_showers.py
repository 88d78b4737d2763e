"""Seeded synthetic calorimeter showers: localised energy deposits on an (η, φ) grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from sc_sed.data import from_images

from ._utils import check_positive_ints, pad_features, resolve_n_features

PARTICLES = ("photon", "pion")
#: Most clusters (core + satellites) one event can have.
_MAX_CLUSTERS = 6


def _clusters(
    rng: np.random.Generator, particle: np.ndarray, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return cluster centres ``(n, K, 2)`` in pixels, widths ``(n, K)`` and energy fractions ``(n, K)``.

    Photons deposit one narrow cluster; pions a broader core plus 1–5 satellite clusters.
    """
    n = len(particle)
    centre = (np.array(grid, dtype=np.float64) - 1) / 2 + rng.normal(0.0, 0.5, size=(n, 1, 2))
    offsets = rng.normal(0.0, 0.2 * min(grid), size=(n, _MAX_CLUSTERS, 2))
    offsets[:, 0] = 0.0
    centres = centre + offsets
    is_pion = particle == 1
    widths = np.where(is_pion[:, None], rng.uniform(0.5, 1.0, size=(n, _MAX_CLUSTERS)), 0.0)
    widths[:, 0] = np.where(is_pion, 1.5, 0.7)
    n_satellites = np.where(is_pion, rng.integers(1, _MAX_CLUSTERS, size=n), 0)
    weights = rng.uniform(0.1, 0.4, size=(n, _MAX_CLUSTERS))
    weights[np.arange(_MAX_CLUSTERS)[None, :] > n_satellites[:, None]] = 0.0
    weights[:, 0] = 1.0
    return centres, widths, weights / weights.sum(axis=1, keepdims=True)


def _deposit(
    centres: np.ndarray, widths: np.ndarray, fractions: np.ndarray, grid: tuple[int, int]
) -> np.ndarray:
    """Spread each cluster's energy fraction as a grid-normalised Gaussian; ``(n, H, W)``."""
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    d2 = (rows - centres[..., 0, None, None]) ** 2 + (cols - centres[..., 1, None, None]) ** 2
    safe = np.maximum(widths, 1e-6)[..., None, None]
    profile = np.where(fractions[..., None, None] > 0, np.exp(-d2 / (2 * safe**2)), 0.0)
    norm = np.maximum(profile.sum(axis=(2, 3), keepdims=True), 1e-300)
    return (fractions[..., None, None] * profile / norm).sum(axis=1)


def _centres(bounds: tuple[float, float], size: int) -> np.ndarray:
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        msg = f"Coordinate range must be (low, high) with low < high, got {bounds!r}."
        raise ValueError(msg)
    return lo + (np.arange(size) + 0.5) * (hi - lo) / size


def synthetic_showers(
    n_events: int = 500,
    grid: tuple[int, int] = (16, 16),
    *,
    n_features: int | None = None,
    seed: int = 0,
    eta_range: tuple[float, float] = (-0.8, 0.8),
    phi_range: tuple[float, float] = (-0.8, 0.8),
    mean_energy: float = 50.0,
    threshold: float = 0.1,
) -> AnnData:
    """Seeded calorimeter-like events: energy deposits on an (η, φ) pixel grid with exact zeros.

    Each event is a ``photon`` (one narrow cluster) or a ``pion`` (a broad core plus 1–5
    satellite clusters), with total energy log-normal around ``mean_energy``, multiplicative
    gamma noise per pixel, and pixels below ``threshold`` set to exact zeros (a readout
    threshold). With defaults: 500 events × 256 pixels, about 85% zeros. Source: generated
    here; licence BSD-3-Clause (as sc_sed). The same arguments give an identical AnnData.

    Parameters
    ----------
    n_events
        Number of events (rows).
    grid
        ``(H, W)``: pixels along η (rows) and φ (columns).
    n_features
        Total number of features, ``>= H*W``: appends all-zero features ``"pad_*"``
        (``var["padding"]``, ``row = col = -1``, ``eta``/``phi`` NaN), keeping the non-zeros
        identical. :func:`sc_sed.data.to_images` ignores them.
    seed
        Seed of the NumPy generator.
    eta_range, phi_range
        Detector extent; pixel centres are evenly spaced inside.
    mean_energy
        Median total energy of an event before noise and threshold.
    threshold
        Pixels with energy below this become exact zeros.

    Returns
    -------
    AnnData from :func:`sc_sed.data.from_images`: float32 CSR energies, ``var`` with
    ``row``, ``col``, ``eta``, ``phi``; ``obs["particle"]`` categorical (``"photon"``,
    ``"pion"``) and ``obs["true_energy"]``; ``uns["sc_sed_image"]`` the grid.
    """
    if len(grid) != 2:
        msg = f"`grid` must be (H, W), got {grid!r}."
        raise ValueError(msg)
    check_positive_ints(n_events=n_events, grid_H=grid[0], grid_W=grid[1])
    grid = (int(grid[0]), int(grid[1]))
    total = resolve_n_features(n_features, grid[0] * grid[1], what="pixels")
    if mean_energy <= 0 or threshold < 0:
        msg = f"`mean_energy` must be > 0 and `threshold` >= 0, got {mean_energy}, {threshold}."
        raise ValueError(msg)
    eta, phi = _centres(eta_range, grid[0]), _centres(phi_range, grid[1])
    rng = np.random.default_rng(seed)
    particle = rng.integers(len(PARTICLES), size=n_events)
    energy = rng.lognormal(np.log(mean_energy), 0.4, size=n_events)
    images = energy[:, None, None] * _deposit(*_clusters(rng, particle, grid), grid)
    images *= rng.gamma(shape=4.0, scale=0.25, size=images.shape)
    images[images < threshold] = 0.0
    obs = pd.DataFrame(
        {
            "particle": pd.Categorical.from_codes(particle, categories=list(PARTICLES)),
            "true_energy": energy,
        },
        index=[f"event_{i:0{len(str(n_events - 1))}d}" for i in range(n_events)],
    )
    adata = from_images(images, eta=eta, phi=phi, obs=obs)
    adata.uns["sc_sed_dataset"] = {
        "name": "synthetic_showers",
        "seed": int(seed),
        "n_features": total,
    }
    return pad_features(adata, total, fill={"row": -1, "col": -1, "eta": np.nan, "phi": np.nan})
