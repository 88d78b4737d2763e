"""Exact, pickle-free JSON encoding of the plain data a saved model carries.

JSON knows dicts, lists, strings, numbers, booleans and null. A model's registry and
attributes also hold tuples, NumPy scalars and NumPy arrays (category lists, statistics,
indices); these are written as small tagged objects and read back with the same dtype,
shape and values (floats go through ``repr``, which round-trips exactly). Nothing else is
accepted: saving an unsupported object fails, and decoding rebuilds only these types, so a
model file can never name a class to construct.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

ARRAY_TAG = "__ndarray__"
SCALAR_TAG = "__npscalar__"
TUPLE_TAG = "__tuple__"
_TAGS = (ARRAY_TAG, SCALAR_TAG, TUPLE_TAG)
#: dtype kinds that may be stored: bool, signed/unsigned int, float, unicode, object
#: (object arrays hold only encodable elements, e.g. category names).
_KINDS = "biufUO"
_MAX_ITEMSIZE = 1 << 16
#: Limits of what :func:`loads` and :func:`decode` accept: nesting depth of objects and
#: lists, digits of an integer literal (2**64 has 20), characters of a string or key,
#: items of a list or array, dimensions of an array.
MAX_DEPTH = 64
MAX_INT_DIGITS = 20
MAX_STRING = 1 << 16
MAX_ITEMS = 1 << 27
MAX_NDIM = 32
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")


class CodecError(ValueError):
    """A value cannot be encoded, or an encoded value is malformed (``where`` names it)."""


def encode(value: Any, where: str = "") -> Any:
    """Encode ``value`` as JSON-ready data (see the module docstring).

    Parameters
    ----------
    value
        None, bool, int, float, str, tuple, list, dict with string keys, NumPy scalar or
        NumPy array of a supported dtype, nested freely.
    where
        Path of ``value`` in the document, for error messages.

    Returns
    -------
    The encoded value.
    """
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float
        return {SCALAR_TAG: _dtype_str(value.dtype, where), "value": encode(value.item(), where)}
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, np.ndarray):
        return _encode_array(value, where)
    if isinstance(value, tuple):
        return {TUPLE_TAG: [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str) or k in _TAGS]
        if bad:
            msg = (
                f"{where or 'value'}: dict keys must be strings other than {_TAGS}, got {bad[:3]}."
            )
            raise CodecError(msg)
        return {k: encode(v, f"{where}/{k}") for k, v in value.items()}
    msg = f"{where or 'value'}: cannot store an object of type {type(value).__name__} in a model file."
    raise CodecError(msg)


def _dtype_str(dtype: np.dtype, where: str) -> str:
    if dtype.kind not in _KINDS:
        msg = f"{where or 'value'}: NumPy dtype {dtype} cannot be stored in a model file."
        raise CodecError(msg)
    return dtype.str


def _encode_array(array: np.ndarray, where: str) -> dict:
    dtype = _dtype_str(array.dtype, where)
    flat = array.ravel()
    if array.dtype.kind == "O":
        data = [encode(v, f"{where}[{i}]") for i, v in enumerate(flat)]
    else:
        data = flat.tolist()
    return {ARRAY_TAG: dtype, "shape": list(array.shape), "data": data}


class _LongInteger:
    """Stand-in for an integer literal too long to convert (:func:`decode` refuses it)."""

    def __init__(self, n_digits: int):
        self.n_digits = n_digits


def _parse_int(text: str) -> int | _LongInteger:
    n_digits = len(text) - text.startswith("-")
    return int(text) if n_digits <= MAX_INT_DIGITS else _LongInteger(n_digits)


def nesting_depth(data: bytes) -> int:
    """Deepest nesting of objects and lists in JSON text, found without parsing it.

    String literals are skipped; an unterminated one only makes the count an upper bound.
    """
    brackets = _STRING_LITERAL.sub(b"", data).translate(None, delete=_NOT_BRACKET)
    depth = deepest = 0
    for start in range(0, len(brackets), 1 << 20):
        chunk = np.frombuffer(brackets[start : start + (1 << 20)], dtype=np.uint8)
        opens = (chunk == ord("[")) | (chunk == ord("{"))
        run = depth + np.cumsum(np.where(opens, 1, -1), dtype=np.int64)
        deepest, depth = max(deepest, int(run.max())), int(run[-1])
    return deepest


def loads(data: bytes) -> Any:
    """Parse JSON text with bounded nesting and integer size (:class:`CodecError` if not).

    Nesting deeper than :data:`MAX_DEPTH` is refused before parsing (so it can never
    exhaust the stack); integer literals longer than :data:`MAX_INT_DIGITS` digits are
    kept as markers that :func:`decode` refuses, naming where they are. Raises
    ``UnicodeDecodeError`` and ``json.JSONDecodeError`` for text that is not JSON.

    Parameters
    ----------
    data
        UTF-8 JSON text.

    Returns
    -------
    The parsed (not yet decoded) value.
    """
    depth = nesting_depth(data)
    if depth > MAX_DEPTH:
        msg = f"objects and lists are nested {depth} levels deep, more than {MAX_DEPTH}."
        raise CodecError(msg)
    return json.loads(data.decode("utf-8"), parse_int=_parse_int)


def decode(value: Any, where: str = "") -> Any:
    """Invert :func:`encode`; malformed tagged objects raise :class:`CodecError`.

    Strings, lists and integers are bounded (:data:`MAX_STRING`, :data:`MAX_ITEMS`,
    :func:`loads`); the error names where the offending value is.
    """
    if isinstance(value, _LongInteger):
        msg = f"{where}: integer with {value.n_digits} digits (at most {MAX_INT_DIGITS})."
        raise CodecError(msg)
    if isinstance(value, str) and len(value) > MAX_STRING:
        msg = f"{where}: string of {len(value)} characters (at most {MAX_STRING})."
        raise CodecError(msg)
    if isinstance(value, list):
        _check_length(value, where)
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    _check_length(value, where)
    long_keys = [k[:40] + "..." for k in value if len(k) > MAX_STRING]
    if long_keys:
        raise CodecError(f"{where}: keys longer than {MAX_STRING} characters {long_keys}.")
    if ARRAY_TAG in value:
        return _decode_array(value, where)
    if SCALAR_TAG in value:
        _keys(value, {SCALAR_TAG, "value"}, where)
        dtype = _dtype(value[SCALAR_TAG], where)
        item = decode(value["value"], f"{where}/value")
        if dtype.kind == "O" or not _fits_kind(item, dtype.kind):
            raise CodecError(f"{where}: malformed NumPy scalar {value!r:.200}.")
        try:
            return dtype.type(item)
        except (TypeError, ValueError, OverflowError) as err:
            raise CodecError(f"{where}: value does not fit dtype {dtype}: {err}") from err
    if TUPLE_TAG in value:
        _keys(value, {TUPLE_TAG}, where)
        if not isinstance(value[TUPLE_TAG], list):
            raise CodecError(f"{where}: malformed tuple {value!r}.")
        return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(value[TUPLE_TAG]))
    return {k: decode(v, f"{where}/{k}") for k, v in value.items()}


def _check_length(value: list | dict, where: str) -> None:
    if len(value) > MAX_ITEMS:
        raise CodecError(f"{where or 'document'}: {len(value)} items (at most {MAX_ITEMS}).")


def _fits_kind(item: Any, kind: str) -> bool:
    """Whether a decoded JSON value is a value of NumPy dtype kind ``kind`` (no conversion)."""
    if kind == "b":
        return isinstance(item, bool)
    if kind in "iu":
        return isinstance(item, int) and not isinstance(item, bool)
    if kind == "f":
        return isinstance(item, int | float) and not isinstance(item, bool)
    return kind == "U" and isinstance(item, str)


def _keys(value: dict, expected: set, where: str) -> None:
    if set(value) != expected:
        msg = f"{where}: expected the keys {sorted(expected)}, found {sorted(value)}."
        raise CodecError(msg)


def _dtype(text: Any, where: str) -> np.dtype:
    try:
        dtype = np.dtype(text) if isinstance(text, str) and len(text) <= 32 else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in _KINDS or dtype.fields is not None:
        raise CodecError(f"{where}: unsupported dtype {text!r}.")
    if dtype.itemsize > _MAX_ITEMSIZE:  # e.g. "<U999999999" would allocate gigabytes per item
        raise CodecError(f"{where}: dtype {text!r} is implausibly wide.")
    return dtype


def _decode_array(value: dict, where: str) -> np.ndarray:
    _keys(value, {ARRAY_TAG, "shape", "data"}, where)
    dtype = _dtype(value[ARRAY_TAG], where)
    shape, data = value["shape"], value["data"]
    ok_shape = (
        isinstance(shape, list)
        and len(shape) <= MAX_NDIM
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    )
    if not isinstance(data, list):
        raise CodecError(f"{where}: array data must be a list, found {type(data).__name__}.")
    _check_length(data, where)
    if not ok_shape or len(data) != math.prod(shape):
        msg = f"{where}: array shape {shape!r:.200} does not match its {len(data)} values."
        raise CodecError(msg)
    if dtype.kind == "O":
        out = np.empty(len(data), dtype=object)
        for i, v in enumerate(data):
            item = decode(v, f"{where}[{i}]")
            if isinstance(item, dict | list):
                raise CodecError(f"{where}[{i}]: object arrays hold only scalars.")
            out[i] = item
        return out.reshape(shape)
    if not all(_fits_kind(v, dtype.kind) for v in data):
        bad = next(v for v in data if not _fits_kind(v, dtype.kind))
        if isinstance(bad, _LongInteger):
            decode(bad, where)
        msg = f"{where}: an array of dtype {dtype} holds {type(bad).__name__} {bad!r:.80}."
        raise CodecError(msg)
    try:
        return np.array(data, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as err:
        raise CodecError(f"{where}: values do not fit dtype {dtype}: {err}") from err
