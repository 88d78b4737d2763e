"""Detector images <-> sparse AnnData."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.data._images import from_images, to_images


def assert_canonical(X, dtype=np.float32) -> None:
    assert type(X) is sp.csr_matrix
    assert X.dtype == dtype
    assert X.has_sorted_indices
    assert np.all(X.data != 0)


@pytest.fixture
def images(rng):
    imgs = rng.gamma(2.0, 1.0, size=(6, 4, 5)).astype(np.float32)
    imgs[rng.random(imgs.shape) < 0.7] = 0.0
    return imgs


def test_round_trip_3d(images):
    before = images.copy()
    adata = from_images(images)
    assert_canonical(adata.X)
    assert adata.shape == (6, 20)
    assert adata.uns["sc_sed_image"]["shape"] == [4, 5]
    assert adata.var_names[7] == "px_1_2"
    assert adata.var.loc["px_1_2", "row"] == 1
    assert adata.var.loc["px_1_2", "col"] == 2
    assert adata.var["row"].dtype == np.int64
    restored = to_images(adata)
    assert restored.shape == images.shape
    np.testing.assert_array_equal(restored, images)
    np.testing.assert_array_equal(images, before)


def test_round_trip_flat_dense_and_sparse(images):
    flat = images.reshape(6, 20)
    for data in (flat, sp.csr_matrix(flat)):
        adata = from_images(data, image_shape=(4, 5))
        np.testing.assert_array_equal(to_images(adata), images)


def test_float64_bit_exact(rng):
    imgs = rng.random((2, 3, 3))
    np.testing.assert_array_equal(to_images(from_images(imgs, dtype=np.float64)), imgs)


def test_eta_phi_per_axis_and_per_pixel(images):
    eta = np.array([-1.5, -0.5, 0.5, 1.5])
    phi = np.linspace(-1, 1, 5)
    adata = from_images(images, eta=eta, phi=phi)
    assert adata.var.loc["px_2_3", "eta"] == 0.5
    assert adata.var.loc["px_2_3", "phi"] == phi[3]
    per_pixel = from_images(
        images, eta=adata.var["eta"].to_numpy(), phi=adata.var["phi"].to_numpy()
    )
    pd.testing.assert_frame_equal(per_pixel.var, adata.var)


def test_obs_is_kept_and_copied(images):
    obs = pd.DataFrame({"label": list("aabbcc")}, index=[f"e{i}" for i in range(6)])
    adata = from_images(images, obs=obs)
    assert list(adata.obs_names) == list(obs.index)
    adata.obs["label"] = "z"
    assert obs["label"].tolist() == list("aabbcc")


def test_to_images_handles_reordered_pixels(images):
    adata = from_images(images)
    shuffled = adata[:, adata.var_names[::-1]].copy()
    np.testing.assert_array_equal(to_images(shuffled), images)


def test_layer(images):
    adata = from_images(images)
    adata.layers["energy"] = adata.X * 2
    np.testing.assert_array_equal(to_images(adata, layer="energy"), 2 * images)


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (np.ones(5), {}, "shape"),
        (np.ones((2, 2, 2, 2)), {}, "shape"),
        (np.ones((2, 6)), {}, "image_shape"),
        (np.ones((2, 6)), {"image_shape": (2, 2)}, "columns"),
        (np.ones((2, 2, 3)), {"image_shape": (3, 2)}, "disagrees"),
        (-np.ones((2, 2, 2)), {}, "non-negative"),
        (np.full((2, 2, 2), np.nan), {}, "NaN"),
        (np.ones((2, 2, 2)), {"eta": [0.0, 1.0, 2.0]}, "eta"),
        (np.ones((2, 2, 3)), {"phi": [0.0, 1.0]}, "phi"),
        (np.ones((2, 2, 2)), {"obs": pd.DataFrame(index=["a"])}, "rows"),
        ([[[1.0, 2.0], [3.0]]], {}, "ragged"),
    ],
)
def test_bad_input(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_images(data, **kwargs)


def test_to_images_needs_image_metadata():
    from sc_sed.data._coo import from_dense

    with pytest.raises(KeyError, match="image_shape"):
        to_images(from_dense(np.eye(3)))
    with pytest.raises(KeyError, match="px_"):
        to_images(from_dense(np.eye(4)), image_shape=(2, 2))


def test_to_images_on_generated_like_data(images):
    """A generated AnnData keeps the var_names but may lack var columns and uns."""
    adata = from_images(images)
    bare = adata.copy()
    bare.var = bare.var.iloc[:, :0]
    bare.uns = {}
    np.testing.assert_array_equal(to_images(bare, image_shape=(4, 5)), images)


def test_to_images_rejects_values_outside_grid(images):
    adata = from_images(images)
    with pytest.raises(ValueError, match="outside"):
        to_images(adata, image_shape=(2, 5))
