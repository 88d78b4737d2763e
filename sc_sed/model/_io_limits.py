"""Types and ranges of the numbers a model file may hold, checked before anything is built.

Every :class:`~sc_sed.SEDModel` and :class:`~sc_sed.module.SEDModule` argument a saved
model names has a check here; sizes (``n_hidden``, ``n_layers``, ``max_nonzero``, ...) are
bounded so that a hand-edited or hostile file fails at once instead of trying to allocate
a module of absurd size. The bounds are far above any model this package trains; the
tensor file then bounds the real size exactly (the module is first built on PyTorch's
``meta`` device and compared with it, see :func:`sc_sed.model._io.restore_model`).

A check returns ``None`` for a good value and otherwise what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: Largest number of features, rows, layer width, layers, attention heads and categories.
MAX_FEATURES = 100_000_000
MAX_ROWS = 10**12
MAX_WIDTH = 1 << 15
MAX_LAYERS = 256
MAX_HEADS = 1024
MAX_CATEGORIES = 1 << 20
_MAX_PLAIN_STRING = 256
_MAX_PLAIN_ITEMS = 64

Check = Callable[[Any], "str | None"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer (not a boolean)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a finite Python or NumPy integer or float (not a boolean)."""
    return (is_int(value) or isinstance(value, float | np.floating)) and math.isfinite(value)


def integer(lo: int, hi: int, *, none: bool = False) -> Check:
    """Check for an integer in ``[lo, hi]`` (or None when ``none``)."""
    expected = f"an integer in [{lo}, {hi}]" + (" or null" if none else "")

    def check(value: Any) -> str | None:
        if value is None and none:
            return None
        return None if is_int(value) and lo <= value <= hi else expected

    return check


def number(lo: float, hi: float, *, hi_open: bool = False) -> Check:
    """Check for a finite number in ``[lo, hi]`` (``[lo, hi)`` when ``hi_open``)."""
    expected = f"a finite number in [{lo}, {hi}{')' if hi_open else ']'}"

    def check(value: Any) -> str | None:
        ok = is_real(value) and lo <= value and (value < hi if hi_open else value <= hi)
        return None if ok else expected

    return check


def choice(*options: str) -> Check:
    """Check for one of the strings ``options``."""

    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in options else f"one of {options}"

    return check


def boolean(value: Any) -> str | None:
    """Check for a boolean."""
    return None if isinstance(value, bool | np.bool_) else "a boolean"


def widths(lo: int, hi: int, max_len: int) -> Check:
    """Check for a non-empty list or tuple of at most ``max_len`` integers in ``[lo, hi]``."""
    expected = f"a list of 1 to {max_len} integers in [{lo}, {hi}]"

    def check(value: Any) -> str | None:
        ok = isinstance(value, list | tuple) and 1 <= len(value) <= max_len
        return None if ok and all(is_int(v) and lo <= v <= hi for v in value) else expected

    return check


def plain(value: Any) -> str | None:
    """Check for a small plain value (arguments added after this schema was written).

    Null, a boolean, a bounded number, a short string, or a short flat list of these.
    """
    if isinstance(value, list | tuple):
        if len(value) > _MAX_PLAIN_ITEMS or any(isinstance(v, list | tuple) for v in value):
            return f"a plain value or a flat list of at most {_MAX_PLAIN_ITEMS}"
        return next((p for p in map(plain, value) if p), None)
    ok = (
        value is None
        or isinstance(value, bool | np.bool_)
        or (is_int(value) and abs(value) <= 2**31)
        or (is_real(value) and abs(value) <= 1e12)
        or (isinstance(value, str) and len(value) <= _MAX_PLAIN_STRING)
    )
    return None if ok else "a plain value (null, boolean, number below 2**31, short string)"


#: The value likelihoods a model file may name.
VALUE_LIKELIHOODS = ("ztnb", "ztpoisson", "lognormal", "gaussian", "categorical", "logcount")

#: :class:`~sc_sed.SEDModel` arguments and the module keywords it reads (None: chosen from
#: the data).
MODEL_PARAMETERS: dict[str, Check] = {
    "n_latent": integer(1, MAX_WIDTH, none=True),
    "n_hidden": integer(1, MAX_WIDTH, none=True),
    "n_layers": integer(1, MAX_LAYERS, none=True),
    "n_heads": integer(1, MAX_HEADS, none=True),
    "n_ff": integer(1, 4 * MAX_WIDTH, none=True),
    "dropout_rate": number(0, 1, hi_open=True),
    "n_memory": integer(1, MAX_HEADS),
    "preset": choice("auto", "cpu", "gpu"),
    "index_head": choice("auto", "flat", "factorised"),
    "block_size": integer(1, MAX_FEATURES, none=True),
    "value_likelihood": choice("auto", *VALUE_LIKELIHOODS),
    "max_nonzero": integer(1, MAX_FEATURES, none=True),
    "on_long_rows": choice("error", "truncate"),
    "mask_unseen_features": boolean,
    "hazard_init": boolean,
    "current_block_hazard": boolean,
    "encoder_size_features": boolean,
    "n_encoder_pcs": integer(0, 4096, none=True),
    "context_width": integer(0, MAX_WIDTH),
    "value_latent_term": choice("tied", "free", "none"),
    "kl_weight": number(0, 1e6),
    "denoiser_widths": widths(1, MAX_WIDTH, 64),
    "cond_dropout": number(0, 1),
}
#: :class:`~sc_sed.module.SEDModule` arguments a model may pass through ``module_kwargs``.
MODULE_PARAMETERS: dict[str, Check] = {
    "index_base": number(1, 1e12),
    "token_dropout": number(0, 1, hi_open=True),
    "learned_index_embedding": boolean,
    "context_rank": integer(0, 4096),
    "n_embed": integer(1, MAX_WIDTH),
    "denoiser_dropout": number(0, 1, hi_open=True),
    "self_cond_prob": number(0, 1),
    "logsnr_min": number(-100, 100),
    "logsnr_max": number(-100, 100),
}
#: :class:`~sc_sed.module.SEDModule` arguments the model derives from the registry;
#: ``module_kwargs`` may not name them.
DERIVED_MODULE_ARGUMENTS = frozenset(
    {
        "self",
        "n_features",
        "max_nonzero",
        "allowed_features",
        "detection_rate",
        "value_sums",
        "value_vocabulary",
        "value_vocabulary_counts",
        "value_max",
        "n_spectral",
        "spectral_transform",
        "n_cats_per_cond",
    }
)


def parameter_problems(values: Mapping[str, Any], n_features: int) -> list[tuple[str, str]]:
    """``(name, expected)`` for each argument in ``values`` that breaks its check.

    Checks each value against :data:`MODEL_PARAMETERS` or :data:`MODULE_PARAMETERS`
    (:func:`plain` for names neither knows) and the rules that tie arguments together.

    Parameters
    ----------
    values
        Model arguments and module keyword arguments together.
    n_features
        Number of features of the registry.

    Returns
    -------
    The problems, empty when every value is good.
    """
    checks = {**MODEL_PARAMETERS, **MODULE_PARAMETERS}
    out = [(k, p) for k, v in values.items() if (p := checks.get(k, plain)(v))]
    if out:
        return out
    n_hidden, n_heads = values.get("n_hidden"), values.get("n_heads")
    if n_hidden is not None and n_heads is not None and n_hidden % n_heads:
        out.append(("n_heads", f"a divisor of n_hidden={n_hidden}"))
    if (values.get("block_size") or 1) > n_features:
        out.append(("block_size", f"at most the number of features ({n_features})"))
    if values.get("logsnr_min", -15.0) >= values.get("logsnr_max", 15.0):
        out.append(("logsnr_min", "below logsnr_max"))
    return out
