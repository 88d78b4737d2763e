"""Every default of SED in one place: the module's settings and the recipe chosen from the data.

Two kinds of defaults live here, and nowhere else:

- :data:`MODULE_DEFAULTS` (a frozen :class:`ModuleDefaults`): the settings of
  :class:`~sc_sed.module.SEDModule`, :class:`~sc_sed.nn.SetEncoder` and
  :class:`~sc_sed.nn.ARDecoder` that do not depend on the data. The research switches in it
  hold the measured winners (``benchmarks/README.md``); the other values stay reachable as
  ``SEDModule`` keywords (``SEDModel(adata, **module_kwargs)``).
- :data:`PRESETS` and :func:`choose_recipe`: the sizes and training budgets ``SEDModel`` and
  ``SEDModel.train`` choose from the data and the device, as scvi-tools chooses its epochs
  from the number of cells. A value the user passes always wins.

The recipe table (``preset="auto"`` is ``"gpu"`` when CUDA is available, else ``"cpu"``):

==============================  =====================  =====================
setting                         ``"cpu"``              ``"gpu"``
==============================  =====================  =====================
n_latent / n_hidden / n_ff      32 / 64 / 128          64 / 128 / 256
n_layers / n_heads              1 / 2                  2 / 4
n_encoder_pcs                   32 (at most rows - 1 and features - 1)
denoiser_widths                 8, 8, 4, 2 × n_latent: 256-256-128-64 / 512-512-256-128
autoencoder batch_size          16                     32
autoencoder optimiser steps     1,000                  3,000
autoencoder epochs              steps / minibatches per epoch, 1 to 400
diffusion optimiser steps       3,200 below 1,000 training rows, else 6,000
diffusion epochs                steps / minibatches per epoch, 1 to 2,000
==============================  =====================  =====================

The ``"cpu"`` column is the CPU recipe that was measured: width 64, one layer, two heads,
a 32-d latent, 16-row minibatches (the mouse-bladder preset: about 760 autoencoder steps and
the full 6,000 diffusion steps; the PBMC demo and the tutorials: the same width, 600-1,900
steps, 100 diffusion epochs = 3,200 steps on ~500 rows). On a CPU a step costs about in
proportion to its rows, so small minibatches give more steps per second. The ``"gpu"``
column keeps the earlier model defaults. The diffusion's step count does not depend on the
number of features; the 6,000 steps were needed on the 20k-gene bladder cells
(``benchmarks/README.md``). The latent denoiser's widths follow the latent's size
(:func:`denoiser_widths`; a given ``n_latent`` moves them too): a denoiser of half the width of
the earlier fixed 512-512-256-128 scored alike on a 32-d latent on three seeds and trains in
half the time (``benchmarks/README.md``, Training time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

Preset = Literal["auto", "cpu", "gpu"]


@dataclass(frozen=True)
class ModuleDefaults:
    """Data-independent settings of the SED module (the winners of the measured A/B tests).

    Attributes
    ----------
    n_latent, n_hidden, n_ff, n_layers, n_heads
        Sizes when a module is built from integers alone (the ``"gpu"`` preset's sizes;
        ``SEDModel`` passes the recipe's).
    dropout_rate
        Transformer dropout.
    n_memory
        Memory tokens made from the latent for the decoder's cross-attention.
    index_base
        Base of the sinusoidal feature-index code.
    token_dropout
        Training-time probability of masking a decoder input pair.
    learned_index_embedding
        A learned per-feature vector added to the fixed index code.
    hazard_init
        The index head starts as independent detections at each feature's training rate.
    current_block_hazard
        Factorised head: the block just emitted from gets the probability that one of its
        remaining features is detected.
    encoder_size_features
        The encoder's head also reads each row's size (off: its A/B was inconclusive).
    context_width
        Width of the SiLU layer on the decoder's direct path from the latent to every
        feature (0: a linear path of rank ``context_rank``).
    context_rank
        Rank of that linear path when ``context_width=0``.
    value_latent_term
        ``"tied"``: each feature's value law has its own offsets and a latent term tied to
        its detection term (``"free"``, ``"none"``: research alternatives).
    kl_weight
        Weight β of the autoencoder's KL term.
    denoiser_widths
        Widths of the MLP U-Net denoiser.
    n_embed
        Noise-level/condition embedding width.
    denoiser_dropout
        Dropout in the denoiser.
    cond_dropout
        Probability of dropping each condition in diffusion training.
    self_cond_prob
        Probability of self-conditioning in diffusion training.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.
    """

    n_latent: int = 64
    n_hidden: int = 128
    n_ff: int = 256
    n_layers: int = 2
    n_heads: int = 4
    dropout_rate: float = 0.1
    n_memory: int = 4
    index_base: float = 10_000.0
    token_dropout: float = 0.25
    learned_index_embedding: bool = True
    hazard_init: bool = True
    current_block_hazard: bool = True
    encoder_size_features: bool = False
    context_width: int = 128
    context_rank: int = 8
    value_latent_term: Literal["tied", "free", "none"] = "tied"
    kl_weight: float = 1e-6
    denoiser_widths: tuple[int, ...] = (512, 512, 256, 128)
    n_embed: int = 128
    denoiser_dropout: float = 0.0
    cond_dropout: float = 0.1
    self_cond_prob: float = 0.5
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0


#: The defaults every layer (model, module, encoder, decoder) takes its values from.
MODULE_DEFAULTS = ModuleDefaults()


@dataclass(frozen=True)
class PresetTable:
    """One column of the recipe table (see the module docstring)."""

    n_latent: int
    n_hidden: int
    n_ff: int
    n_layers: int
    n_heads: int
    n_encoder_pcs: int
    batch_size: int
    autoencoder_steps: int
    diffusion_steps: int
    small_data_rows: int
    small_data_diffusion_steps: int


PRESETS: dict[str, PresetTable] = {
    "cpu": PresetTable(
        n_latent=32,
        n_hidden=64,
        n_ff=128,
        n_layers=1,
        n_heads=2,
        n_encoder_pcs=32,
        batch_size=16,
        autoencoder_steps=1000,
        diffusion_steps=6000,
        small_data_rows=1000,
        small_data_diffusion_steps=3200,
    ),
    "gpu": PresetTable(
        n_latent=MODULE_DEFAULTS.n_latent,
        n_hidden=MODULE_DEFAULTS.n_hidden,
        n_ff=MODULE_DEFAULTS.n_ff,
        n_layers=MODULE_DEFAULTS.n_layers,
        n_heads=MODULE_DEFAULTS.n_heads,
        n_encoder_pcs=32,
        batch_size=32,
        autoencoder_steps=3000,
        diffusion_steps=6000,
        small_data_rows=1000,
        small_data_diffusion_steps=6000,
    ),
}
#: Recipe fields that are sizes of the module (chosen when the model is built).
SIZE_FIELDS = ("n_latent", "n_hidden", "n_ff", "n_layers", "n_heads", "n_encoder_pcs")
#: The latent denoiser's widths as multiples of the latent size (see :func:`denoiser_widths`).
DENOISER_WIDTH_MULTIPLES = (8, 8, 4, 2)
#: Widths of the denoiser of every model file that does not name its own (the fixed default
#: before the widths followed the latent size).
EARLIER_DENOISER_WIDTHS = (512, 512, 256, 128)


def denoiser_widths(n_latent: int) -> tuple[int, ...]:
    """Return the recipe's latent-denoiser widths for an ``n_latent``-d latent.

    :data:`DENOISER_WIDTH_MULTIPLES` times ``n_latent``: 256-256-128-64 for the CPU recipe's
    32-d latent, 512-512-256-128 for the GPU recipe's 64-d one.

    Parameters
    ----------
    n_latent
        Size of the latent.

    Returns
    -------
    The widths of the MLP U-Net's levels, widest first.
    """
    return tuple(m * int(n_latent) for m in DENOISER_WIDTH_MULTIPLES)


#: Largest epoch counts the recipe chooses (autoencoder, diffusion).
MAX_AUTOENCODER_EPOCHS, MAX_DIFFUSION_EPOCHS = 400, 2000


def resolve_preset(preset: str) -> str:
    """``"cpu"`` or ``"gpu"``; ``"auto"`` is ``"gpu"`` when CUDA is available."""
    if preset == "auto":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if preset not in PRESETS:
        msg = f"preset must be 'auto', 'cpu' or 'gpu', got {preset!r}."
        raise ValueError(msg)
    return preset


def choose_sizes(preset: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a recipe's module sizes: the preset's, with every non-None ``given`` value on top.

    Parameters
    ----------
    preset
        ``"auto"``, ``"cpu"`` or ``"gpu"``.
    given
        The user's values by :data:`SIZE_FIELDS` name (None: choose).

    Returns
    -------
    ``{"preset": "cpu" or "gpu", "n_latent": ..., ..., "n_encoder_pcs": ...}``; the model
    caps ``n_encoder_pcs`` at ``min(rows, features) - 1``.
    """
    name = resolve_preset(preset)
    sizes = {f: getattr(PRESETS[name], f) for f in SIZE_FIELDS}
    sizes.update({k: v for k, v in (given or {}).items() if v is not None})
    return {"preset": name, **sizes}


def _epochs(n_batches: int, steps: int, cap: int) -> int:
    return int(min(cap, max(1, math.ceil(steps / max(1, n_batches)))))


def autoencoder_epochs(preset: str, n_batches: int) -> int:
    """Autoencoder epochs of a preset for ``n_batches`` minibatches per epoch."""
    steps = PRESETS[resolve_preset(preset)].autoencoder_steps
    return _epochs(n_batches, steps, MAX_AUTOENCODER_EPOCHS)


def diffusion_epochs(preset: str, n_rows: int, n_batches: int) -> int:
    """Diffusion epochs of a preset for ``n_rows`` training latents in ``n_batches`` minibatches."""
    table = PRESETS[resolve_preset(preset)]
    small = n_rows < table.small_data_rows
    steps = table.small_data_diffusion_steps if small else table.diffusion_steps
    return _epochs(n_batches, steps, MAX_DIFFUSION_EPOCHS)


def batch_size(preset: str) -> int:
    """Autoencoder minibatch size of a preset."""
    return PRESETS[resolve_preset(preset)].batch_size


# -- model files of earlier versions --------------------------------------------------------

#: ``SEDModel`` arguments of earlier versions that are now ``SEDModule`` keywords
#: (``SEDModel(adata, **module_kwargs)``) or, for ``n_encoder_pcs``, a recipe size.
RETIRED_MODEL_ARGUMENTS = (
    "n_ff",
    "dropout_rate",
    "n_memory",
    "block_size",
    "hazard_init",
    "current_block_hazard",
    "encoder_size_features",
    "n_encoder_pcs",
    "context_width",
    "value_latent_term",
    "kl_weight",
    "denoiser_widths",
    "cond_dropout",
)
#: Settings that model files of earlier versions do not name, with the value those models
#: were built (and trained) with.
EARLIER_DEFAULTS = {
    "hazard_init": False,
    "current_block_hazard": False,
    "n_encoder_pcs": 0,
    "context_width": 0,
    "value_latent_term": "none",
}
#: Preset of a model file without one (its sizes are explicit; this sets re-training budgets).
EARLIER_PRESET = "gpu"


def upgrade_init_params(params: Any) -> Any:
    """Rewrite a saved model's ``init_params`` from earlier versions into the current form.

    Earlier ``SEDModel`` arguments that are now module keywords move from ``non_kwargs``
    into ``kwargs["module_kwargs"]``; settings a file does not name get the value its model
    was built with (:data:`EARLIER_DEFAULTS`), so the same module is rebuilt. Current files
    come back unchanged; anything that is not a well-formed ``init_params`` is returned
    as it is (the schema check reports it).

    Parameters
    ----------
    params
        The decoded ``init_params`` of a model file.

    Returns
    -------
    The upgraded ``init_params`` (a new dict; the argument is not modified).
    """
    if not isinstance(params, Mapping) or set(params) != {"non_kwargs", "kwargs"}:
        return params
    non_kwargs, kwargs = params["non_kwargs"], params["kwargs"]
    if not isinstance(non_kwargs, Mapping) or not isinstance(kwargs, Mapping):
        return params
    module_kwargs = kwargs.get("module_kwargs", {})
    if not isinstance(module_kwargs, Mapping):
        return params  # malformed: left to the schema
    if "preset" in non_kwargs:  # written since the recipe existed
        if "denoiser_widths" in module_kwargs:
            return params  # written by this version
        module_kwargs = {**module_kwargs, "denoiser_widths": EARLIER_DENOISER_WIDTHS}
        return {
            "non_kwargs": dict(non_kwargs),
            "kwargs": {**kwargs, "module_kwargs": module_kwargs},
        }
    non_kwargs, module_kwargs = dict(non_kwargs), dict(module_kwargs)
    for key in RETIRED_MODEL_ARGUMENTS:
        if key in non_kwargs:
            module_kwargs[key] = non_kwargs.pop(key)
    for key, value in EARLIER_DEFAULTS.items():
        module_kwargs.setdefault(key, value)
    module_kwargs.setdefault("denoiser_widths", EARLIER_DENOISER_WIDTHS)
    non_kwargs["preset"] = EARLIER_PRESET
    return {"non_kwargs": non_kwargs, "kwargs": {**kwargs, "module_kwargs": module_kwargs}}


#: ``value_likelihood="auto"`` (the table in :class:`~sc_sed.SEDModel`'s docstring):
#: at most this many distinct non-zero values can be a vocabulary ("categorical") ...
CATEGORICAL_MAX_VALUES = 32
#: ... when the largest of them holds at least this share of the non-zeros (a ceiling, as
#: the top rating has; in counts the largest value is a rare tail value).
CATEGORICAL_MIN_TOP_SHARE = 0.05
#: Integer counts whose median non-zero value is at least this ...
LOGCOUNT_MIN_MEDIAN = 10.0
#: ... and whose largest value is at least this many times the median are "logcount".
LOGCOUNT_MIN_SPREAD = 100.0
#: The "logcount" law reaches this many times the largest registered value ...
LOGCOUNT_HEADROOM = 10.0
#: ... and never beyond 2**24, the largest integer float32 outputs hold exactly.
LOGCOUNT_MAX_VALUE = 2.0**24
