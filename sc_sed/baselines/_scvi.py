"""ScVIPrior: scVI trained on the counts, then sampled from its prior."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from tqdm.auto import tqdm

from sc_sed._validation import progress_flag
from sc_sed.nn import sample_gamma

from ._common import BaselineModel

if TYPE_CHECKING:
    from scvi.model import SCVI

logger = logging.getLogger(__name__)


def negative_binomial(
    mu: torch.Tensor,
    theta: torch.Tensor,
    *,
    zi_probs: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Seeded (zero-inflated) negative-binomial counts as a gamma–Poisson mixture.

    Parameters
    ----------
    mu
        ``(n, D)`` means.
    theta
        Inverse dispersions, broadcastable to ``mu``.
    zi_probs
        Optional zero-inflation probabilities, same shape as ``mu``.
    generator
        Source of randomness.

    Returns
    -------
    ``(n, D)`` integer-valued float counts.
    """
    theta = theta.expand_as(mu).contiguous()
    rate = sample_gamma(theta, generator) * (mu / theta)
    counts = torch.poisson(rate, generator=generator)
    if zi_probs is not None:
        dropped = torch.rand(mu.shape, generator=generator, device=mu.device) < zi_probs
        counts = counts.masked_fill(dropped, 0.0)
    return counts


class ScVIPrior(BaselineModel):
    """scVI sampled from its prior: ``z ~ N(0, I)``, observed library size, NB counts.

    Trains :class:`scvi.model.SCVI` on the counts (on an internal AnnData, so the user's
    AnnData is not modified). Generation draws ``z`` from the standard normal prior, a
    library size from the training rows (of the requested label when there are labels),
    and counts from the decoder's negative binomial (mean = ``px_scale`` × library,
    inverse dispersion ``px_r``), all with one seeded generator. Nothing masks features
    that are never non-zero in the data, so scVI writes counts into them.

    Labels: with ``labels_key`` and ``condition_on_labels=True`` (default) the label is
    registered as scVI's batch covariate, so the decoder is conditioned on it; with
    ``condition_on_labels=False`` scVI is unconditional and the label only drives the
    library-size draw (and ``obs``).

    Parameters
    ----------
    adata
        Training rows × features with integer counts (not modified).
    layer
        Layer holding the counts; None uses ``X``.
    labels_key
        Optional categorical ``obs`` column.
    n_latent
        scVI latent size.
    n_hidden
        scVI hidden width.
    n_layers
        scVI hidden layers.
    gene_likelihood
        ``"nb"`` or ``"zinb"`` (then zero-inflation is sampled too).
    condition_on_labels
        Register ``labels_key`` as scVI's batch covariate (see above).
    **scvi_kwargs
        Further :class:`scvi.model.SCVI` arguments.
    """

    method = "scvi_prior"

    def __init__(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        labels_key: str | None = None,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 1,
        gene_likelihood: Literal["nb", "zinb"] = "nb",
        condition_on_labels: bool = True,
        **scvi_kwargs: Any,
    ):
        super().__init__(adata, layer=layer, labels_key=labels_key)
        if gene_likelihood not in ("nb", "zinb"):
            msg = f"gene_likelihood must be 'nb' or 'zinb', got {gene_likelihood!r}."
            raise ValueError(msg)
        if not self.is_integer_:
            logger.warning(
                "ScVIPrior expects integer counts; the data are not integers (pass layer= with raw counts)."
            )
        self.condition_on_labels = bool(condition_on_labels and labels_key is not None)
        self.scvi_ = self._build_scvi(n_latent=n_latent, n_hidden=n_hidden, n_layers=n_layers,
                                      gene_likelihood=gene_likelihood, **scvi_kwargs)  # fmt: skip
        del self._x

    def _build_scvi(self, **kwargs: Any) -> SCVI:
        from scvi.model import SCVI

        obs = pd.DataFrame(index=pd.Index([str(i) for i in range(self._x.shape[0])]))
        batch_key = None
        if self.condition_on_labels:
            batch_key = "label"
            categories = list(self.conditions_[0].categories)
            obs[batch_key] = pd.Categorical.from_codes(
                self.train_codes_[:, 0], categories=categories
            )
        inner = AnnData(X=self._x, obs=obs, var=pd.DataFrame(index=self.var_names_))
        SCVI.setup_anndata(inner, batch_key=batch_key)
        return SCVI(inner, **kwargs)

    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 128,
        lr: float = 1e-3,
        train_size: float = 1.0,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        seed: int = 0,
        enable_progress_bar: bool = True,
        progress_bar: bool | None = None,
        **train_kwargs: Any,
    ) -> None:
        """Train scVI (see :meth:`scvi.model.SCVI.train`).

        Parameters
        ----------
        max_epochs
            Epochs (None: scVI's default for the data size).
        batch_size
            Minibatch size.
        lr
            Learning rate.
        train_size
            Fraction of rows used for training (the rest for scVI's validation).
        accelerator, devices
            Passed to Lightning.
        seed
            Seeds torch's global generators before training.
        enable_progress_bar
            Show the progress bar.
        progress_bar
            Deprecated spelling of ``enable_progress_bar``.
        **train_kwargs
            Further :meth:`scvi.model.SCVI.train` arguments.
        """
        progress_bar = progress_flag(enable_progress_bar, progress_bar)
        plan_kwargs = {"lr": lr, **train_kwargs.pop("plan_kwargs", {})}
        torch.manual_seed(seed)
        self.scvi_.train(
            max_epochs=max_epochs, batch_size=batch_size, train_size=train_size, accelerator=accelerator,
            devices=devices, plan_kwargs=plan_kwargs, enable_progress_bar=progress_bar, **train_kwargs,
        )  # fmt: skip
        self.scvi_.module.eval()
        self.is_trained_ = True

    @torch.inference_mode()
    def _sample(
        self, codes: np.ndarray, library: np.ndarray, generator: torch.Generator
    ) -> torch.Tensor:
        module = self.scvi_.module
        device = module.device
        z = torch.randn((codes.shape[0], module.n_latent), generator=generator, device=device)
        log_lib = torch.as_tensor(np.log(library), dtype=torch.float32, device=device)[:, None]
        batch = (
            codes[:, :1] if self.condition_on_labels else np.zeros((codes.shape[0], 1), np.int64)
        )
        px = module.generative(z, log_lib, torch.as_tensor(batch, device=device))["px"]
        zi = px.zi_probs if hasattr(px, "zi_logits") else None
        return negative_binomial(px.mu, px.theta, zi_probs=zi, generator=generator)

    def generate(
        self,
        n_cells: int | None = 1000,
        labels: Any = None,
        *,
        seed: int = 0,
        batch_size: int = 256,
        enable_progress_bar: bool = True,
        progress_bar: bool | None = None,
    ) -> AnnData:
        """Sample counts from scVI's prior.

        Parameters
        ----------
        n_cells
            Number of rows; may be None when ``labels`` is a list or a dict of counts.
        labels
            One category, a list (one per row) or a dict ``{category: n}`` of
            ``labels_key``; None draws labels in training proportions.
        seed
            Seed of every random draw (labels, library sizes, ``z``, counts).
        batch_size
            Rows generated together; memory is ``(batch_size, D)``.
        enable_progress_bar
            Show a progress bar.
        progress_bar
            Deprecated spelling of ``enable_progress_bar``.

        Returns
        -------
        AnnData like :meth:`sc_sed.SEDModel.generate` output (CSR float32 integer counts).
        """
        progress_bar = progress_flag(enable_progress_bar, progress_bar)
        self._require_trained("generate")
        if int(batch_size) < 1:
            msg = f"batch_size must be a positive integer, got {batch_size}."
            raise ValueError(msg)
        codes, library = self._draw(n_cells, labels, seed)
        generator = torch.Generator(device=self.scvi_.module.device).manual_seed(seed)
        parts = []
        starts = range(0, codes.shape[0], int(batch_size))
        for start in tqdm(starts, desc="Generating", disable=not progress_bar, unit="batch"):
            part = slice(start, start + int(batch_size))
            parts.append(
                sp.csr_matrix(self._sample(codes[part], library[part], generator).cpu().numpy())
            )
        return self._output(
            sp.vstack(parts, format="csr"), codes, seed=seed,
            condition_on_labels=self.condition_on_labels,
        )  # fmt: skip
