"""The arms of ``benchmarks/augmentation.py``: each returns the synthetic rare cells it adds.

An arm sees only the cut training set (``cut.train``: every type's training cells, the rare
type cut to ``n_rare``); validation and test cells never reach a generator. Count arms return
a CSR matrix of ``n_synth`` rows of counts; SMOTE returns log-normalised rows (it lives in PCA
space, mapped back to genes by the PCA's inverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from _augment_score import Space, lognorm, smote

import sc_sed

LAYER = "counts"
#: Tiny SED sizes for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4, "denoiser_widths": (16, 8)}


@dataclass
class Cut:
    """One (set, type, n_rare, seed) training set and what the arms need to know of it."""

    train: Any  # AnnData, the cut training set (layer "counts")
    labels_key: str
    rare: str
    n_synth: int
    seed: int

    @property
    def rare_rows(self) -> np.ndarray:
        """Positions of the rare type's training cells in ``train``."""
        return np.flatnonzero(self.train.obs[self.labels_key].astype(str).to_numpy() == self.rare)


def duplicates(cut: Cut) -> sp.csr_matrix:
    """Random oversampling: ``n_synth`` rare training cells drawn with replacement."""
    rng = np.random.default_rng(cut.seed)
    rows = rng.choice(cut.rare_rows, cut.n_synth, replace=True)
    return sp.csr_matrix(cut.train.layers[LAYER][rows])


def smote_rows(cut: Cut) -> np.ndarray:
    """SMOTE in the PCA space of the cut training set, mapped back to log-normalised genes."""
    space = Space(lognorm(cut.train.layers[LAYER]), cut.seed)
    pcs = space.project(lognorm(cut.train.layers[LAYER][cut.rare_rows]))
    return space.inverse(smote(pcs, cut.n_synth, cut.seed)).astype(np.float32)


def scvi_rows(cut: Cut, args) -> sp.csr_matrix:
    """scVI conditioned on the label (:class:`sc_sed.baselines.ScVIPrior`), rare cells sampled.

    ``ScVIPrior`` registers the label as scVI's batch covariate, so the decoder is conditioned
    on it; ``z`` is drawn from the N(0, I) prior (not a label-specific posterior) and the
    library size from the training cells of the label.
    """
    from sc_sed.baselines import ScVIPrior

    train = cut.train.copy()
    model = ScVIPrior(train, layer=LAYER, labels_key=cut.labels_key)
    model.train(
        args.scvi_epochs, train_size=1.0, accelerator=args.device, seed=cut.seed,
        enable_progress_bar=False,
    )  # fmt: skip
    labels = {cut.rare: cut.n_synth}
    out = model.generate(None, labels=labels, seed=cut.seed, enable_progress_bar=False)
    return sp.csr_matrix(out.X)


def train_sed(cut: Cut, args) -> sc_sed.SEDModel:
    """SED with its defaults (``SEDModel(adata); model.train()``), epochs overridable."""
    train = cut.train.copy()
    sc_sed.SEDModel.setup_anndata(train, layer=LAYER, labels_key=cut.labels_key)
    model = sc_sed.SEDModel(train, **(SMOKE_SED if args.smoke else {}))
    model.train(
        args.sed_epochs, args.sed_diffusion_epochs, accelerator=args.device, seed=cut.seed,
        enable_progress_bar=False,
    )  # fmt: skip
    return model


def sed_label_rows(model: sc_sed.SEDModel, cut: Cut, guidance: float, args) -> sp.csr_matrix:
    """SED label-conditional: ``n_synth`` cells of the rare label at ``guidance``."""
    out = model.generate(
        None, labels={cut.rare: cut.n_synth}, guidance_scale=guidance, n_steps=args.n_steps,
        seed=cut.seed, enable_progress_bar=False,
    )  # fmt: skip
    return sp.csr_matrix(out.X)


def sed_like_rows(model: sc_sed.SEDModel, cut: Cut, args) -> sp.csr_matrix:
    """SED ``like=`` the rare training cells (default strength), cycling through them."""
    templates = cut.train[cut.rare_rows].copy()
    out = model.generate(
        cut.n_synth, like=templates, n_steps=args.n_steps, seed=cut.seed, enable_progress_bar=False
    )
    return sp.csr_matrix(out.X)
