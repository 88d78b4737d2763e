"""Exact, pickle-free JSON encoding of the plain data a saved model carries.

JSON knows dicts, lists, strings, numbers, booleans and null. A model's registry and
attributes also hold tuples, NumPy scalars and NumPy arrays (category lists, statistics,
indices); these are written as small tagged objects and read back with the same dtype,
shape and values (floats go through ``repr``, which round-trips exactly). Nothing else is
accepted: saving an unsupported object fails, and decoding rebuilds only these types, so a
model file can never name a class to construct.
"""

from __future__ import annotations

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


def decode(value: Any, where: str = "") -> Any:
    """Invert :func:`encode`; malformed tagged objects raise :class:`CodecError`."""
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if ARRAY_TAG in value:
        return _decode_array(value, where)
    if SCALAR_TAG in value:
        _keys(value, {SCALAR_TAG, "value"}, where)
        dtype = _dtype(value[SCALAR_TAG], where)
        if dtype.kind == "O" or isinstance(value["value"], dict | list):
            raise CodecError(f"{where}: malformed NumPy scalar {value!r}.")
        return dtype.type(value["value"])
    if TUPLE_TAG in value:
        _keys(value, {TUPLE_TAG}, where)
        if not isinstance(value[TUPLE_TAG], list):
            raise CodecError(f"{where}: malformed tuple {value!r}.")
        return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(value[TUPLE_TAG]))
    return {k: decode(v, f"{where}/{k}") for k, v in value.items()}


def _keys(value: dict, expected: set, where: str) -> None:
    if set(value) != expected:
        msg = f"{where}: expected the keys {sorted(expected)}, found {sorted(value)}."
        raise CodecError(msg)


def _dtype(text: Any, where: str) -> np.dtype:
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except TypeError:
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
    ok_shape = isinstance(shape, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )
    if not ok_shape or not isinstance(data, list) or len(data) != int(np.prod(shape)):
        raise CodecError(f"{where}: array shape {shape!r} does not match its {len(data)} values.")
    if dtype.kind == "O":
        out = np.empty(len(data), dtype=object)
        for i, v in enumerate(data):
            item = decode(v, f"{where}[{i}]")
            if isinstance(item, dict | list):
                raise CodecError(f"{where}[{i}]: object arrays hold only scalars.")
            out[i] = item
        return out.reshape(shape)
    if any(isinstance(v, dict | list) for v in data):
        raise CodecError(f"{where}: numeric arrays hold only numbers.")
    try:
        return np.array(data, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as err:
        raise CodecError(f"{where}: values do not fit dtype {dtype}: {err}") from err
