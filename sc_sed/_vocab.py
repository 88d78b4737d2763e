"""The token vocabulary of SED: feature ids, then END, START and PAD.

This is the lowest layer of the package (it imports nothing from it), so that
``sc_sed.data``, ``sc_sed.nn``, ``sc_sed.module`` and ``sc_sed.train`` share one
definition of the special ids instead of re-deriving them as arithmetic.

A row with ``l`` non-zeros is the framed sequence
``[START, (i_1, v_1), ..., (i_l, v_l), END, PAD, ...]`` with ``i_1 < ... < i_l``.
Special ids live *after* the feature ids, so feature ids keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenVocabulary:
    """Token ids for ``n_features`` features.

    Parameters
    ----------
    n_features
        Number of features ``D``; feature ids are ``0 .. D - 1``.

    Examples
    --------
    >>> vocab = TokenVocabulary(765)
    >>> vocab.end, vocab.start, vocab.pad, vocab.size
    (765, 766, 767, 768)
    """

    n_features: int

    def __post_init__(self) -> None:
        if int(self.n_features) < 1:
            msg = f"n_features must be a positive integer, got {self.n_features!r}."
            raise ValueError(msg)

    @property
    def end(self) -> int:
        """END: the row has no further non-zero (also the index head's stop class)."""
        return self.n_features

    @property
    def start(self) -> int:
        """START: the first input token of every row."""
        return self.n_features + 1

    @property
    def pad(self) -> int:
        """PAD: filler after END (and in generated output after a row's last pair)."""
        return self.n_features + 2

    @property
    def size(self) -> int:
        """Number of ids: features plus the three special tokens."""
        return self.n_features + 3

    def is_feature(self, ids):
        """Return True where ``ids`` (an int, array or tensor) are feature ids, not special."""
        return ids < self.n_features
