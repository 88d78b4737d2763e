"""Readers of public interaction tables, the user split and the independent-items baseline.

Helpers of ``benchmarks/recsys.py``. The tables are read from paths given on the command line;
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

import sc_sed


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline()


def read_movielens(path: str | Path) -> AnnData:
    """MovieLens ratings: ``ratings.csv`` (latest, 25M, 20M; header ``userId,movieId,...``),
    ``u.data`` (100k: tab-separated, no header) or ``ratings.dat`` (1M/10M: ``::``-separated).

    The format is detected from the first line; the timestamp column is ignored.
    """
    path = Path(path)
    first = _first_line(path)
    names = ["user", "item", "rating", "timestamp"]
    if "::" in first:
        df = pd.read_csv(path, sep="::", header=None, names=names, engine="python")
    elif "\t" in first:
        df = pd.read_csv(path, sep="\t", header=None, names=names)
    elif first.lower().startswith("userid,"):
        df = pd.read_csv(path, usecols=[0, 1, 2])
        df.columns = names[:3]
    else:
        msg = (
            f"{path.name}: not a MovieLens ratings file (expected ratings.csv with a "
            "'userId,movieId,rating,...' header, ml-100k's tab-separated u.data or "
            "ml-1m's '::'-separated ratings.dat). Use --table for other layouts."
        )
        raise ValueError(msg)
    return sc_sed.data.from_interactions(df, user_col="user", item_col="item", value_col="rating")


def read_lastfm(path: str | Path) -> AnnData:
    """hetrec2011 Last.fm ``user_artists.dat``: tab-separated ``userID artistID weight``."""
    df = pd.read_csv(path, sep="\t")
    expected = ["userID", "artistID", "weight"]
    if list(df.columns[:3]) != expected:
        msg = (
            f"{Path(path).name}: expected the columns {expected} of hetrec2011 "
            f"user_artists.dat, got {list(df.columns)}. Use --table for other layouts."
        )
        raise ValueError(msg)
    return sc_sed.data.from_interactions(
        df, user_col="userID", item_col="artistID", value_col="weight"
    )


def read_table(path: str | Path, *, user_col: str, item_col: str, value_col: str | None) -> AnnData:
    """Any CSV/TSV with a header: tab-separated when the first line holds a tab, else commas."""
    sep = "\t" if "\t" in _first_line(Path(path)) else ","
    df = pd.read_csv(path, sep=sep)
    return sc_sed.data.from_interactions(
        df, user_col=user_col, item_col=item_col, value_col=value_col
    )


def split_users(n_users: int, heldout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random training and held-out user indices (sorted), ``heldout`` the held-out share."""
    perm = np.random.default_rng(seed).permutation(n_users)
    n_held = max(1, round(heldout * n_users))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def independent_items(train: AnnData, n_users: int, seed: int) -> AnnData:
    """Users with independent items: a cheap reference a recommender person would ask for.

    Each synthetic user takes the number of interactions of a random training user, that
    many distinct items drawn in proportion to their training popularity, and for each item a
    value drawn from that item's training values.
    """
    rng = np.random.default_rng(seed)
    X = sparse.csc_matrix(train.X)
    popularity = X.getnnz(axis=0).astype(np.float64)
    p = popularity / popularity.sum()
    n_items_seen = int((popularity > 0).sum())
    lengths = np.minimum(rng.choice(sparse.csr_matrix(X).getnnz(axis=1), size=n_users), n_items_seen)
    rows, cols, vals = [], [], []
    for user, length in enumerate(lengths):
        items = np.sort(rng.choice(X.shape[1], size=length, replace=False, p=p))
        starts, ends = X.indptr[items], X.indptr[items + 1]
        picks = starts + (rng.random(length) * (ends - starts)).astype(np.int64)
        rows.append(np.full(length, user))
        cols.append(items)
        vals.append(X.data[picks])
    coo = sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_users, X.shape[1]),
    )
    obs = pd.DataFrame(index=[f"independent_{u}" for u in range(n_users)])
    return AnnData(X=coo.tocsr().astype(np.float32), obs=obs, var=train.var[[]].copy())
