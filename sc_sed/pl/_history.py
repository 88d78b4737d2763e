"""``history``: loss curves of both training stages (autoencoder and latent diffusion)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._utils import ORIGIN_COLORS, _finish, _multi_axes, _single_axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

#: The history keys of each stage's losses: (stage title, train key, validation key).
STAGES = (
    ("autoencoder", "train_loss", "validation_loss"),
    ("diffusion", "train_diffusion_loss", "validation_diffusion_loss"),
)


def _curves(model: Any) -> dict[str, dict[str, pd.Series]]:
    """Return the logged loss curves of each stage that has any, by stage and split."""
    history = getattr(model, "history_", None) or {}
    curves: dict[str, dict[str, pd.Series]] = {}
    for stage, *keys in STAGES:
        found = {}
        for split, key in zip(("train", "validation"), keys, strict=True):
            frame = history.get(key)
            if frame is not None and len(frame):
                found[split] = frame[key].astype(float).dropna()
        if found:
            curves[stage] = found
    if not curves:
        msg = (
            "The model has no training history to plot: call `model.train()` first (or load a "
            "model saved after training)."
        )
        raise RuntimeError(msg)
    return curves


def _draw(ax: Axes, stage: str, curves: dict[str, pd.Series], *, prefix: str = "") -> None:
    for (split, series), color in zip(curves.items(), ORIGIN_COLORS, strict=False):
        style = "-" if split == "train" else "--"
        ax.plot(series.index, series.to_numpy(), style, color=color, label=f"{prefix}{split}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)


def history(
    model: Any,
    *,
    ax: Axes | None = None,
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> Axes | list[Axes] | None:
    """Loss per epoch of both training stages, training and validation, from ``model.history_``.

    The autoencoder's loss (``train_loss``, ``validation_loss``) and the latent diffusion's
    (``train_diffusion_loss``, ``validation_diffusion_loss``) are on different scales, so by
    default each stage gets its own panel. Validation curves appear when validation ran
    (with early stopping, or ``check_val_every_n_epoch=1`` passed to ``train``).

    Parameters
    ----------
    model
        A trained :class:`~sc_sed.SEDModel` (or any model with a scvi-tools style
        ``history_``: a dict of per-epoch DataFrames).
    ax
        One Axes for every curve (the y-axis is then logarithmic when all losses are
        positive); leave None to draw one panel per stage.
    axs
        Axes for the panels, one per trained stage.
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes (``ax=``) or the list of panels, unless the figure was shown.

    Raises
    ------
    RuntimeError
        When the model has no training history (it was not trained).
    """
    if ax is not None and axs is not None:
        msg = "Pass `ax=` (one Axes for every curve) or `axs=` (one per stage), not both."
        raise ValueError(msg)
    curves = _curves(model)
    if ax is not None:
        panel = _single_axes(ax)
        for stage, found in curves.items():
            _draw(panel, stage, found, prefix=f"{stage} ")
        if all((s > 0).all() for found in curves.values() for s in found.values()):
            panel.set_yscale("log")
        return _finish(panel, show=show, axes_given=True)
    panels = _multi_axes(axs, len(curves))
    for panel, (stage, found) in zip(panels, curves.items(), strict=False):
        _draw(panel, stage, found)
        panel.set_title(stage)
    return _finish(panels, show=show, axes_given=axs is not None)
