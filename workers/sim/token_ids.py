"""Token id sequences held packed, as the sim engine and the cluster simulator keep them.

A prompt of thousands of tokens held as a tuple of Python ints costs an object per token to
build, to copy (each slice or concatenation touches every one) and to free. Packed in an
`array('q')` (8 bytes a token, signed: the engine's salt token is negative), slicing and
concatenating are memcpy, comparing is a loop over machine words, and block hashing
(cache/block_hash.py) reads the bytes as they are. Arrays compare equal only to arrays:
compare a packed sequence with a tuple as `tuple(ids) == ...`.

Building one from Python ints goes through numpy (array('q', ints) converts each int by a
slow path); a range, which is how the cluster simulator's synthetic ids come, is built by
numpy without any Python int.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np

TYPECODE = "q"
TokenIds = array  # array('q'); `array[int]` in annotations


def pack(ids: Iterable[int]) -> array[int]:
    """ids as a packed sequence; a packed one is returned as it is (not copied)."""
    if type(ids) is array and ids.typecode == TYPECODE:
        return ids
    if type(ids) is range and ids.step == 1:
        return pack_range(ids.start, ids.stop)
    out = array(TYPECODE)
    values = np.asarray(ids if isinstance(ids, (list, tuple, range)) else list(ids),
                        dtype=np.int64)
    out.frombytes(memoryview(values).cast("B"))
    return out


def pack_range(start: int, stop: int) -> array[int]:
    """array('q', range(start, stop)), built without a Python int per id."""
    out = array(TYPECODE)
    if stop > start:
        out.frombytes(memoryview(np.arange(start, stop, dtype=np.int64)).cast("B"))
    return out


def packed(*ids: int) -> array[int]:
    """A short packed sequence of the given ids (e.g. a salt token)."""
    return array(TYPECODE, ids)


def unsigned(ids: array[int]) -> memoryview:
    """The same ids viewed as unsigned 64-bit integers, without a copy: what block hashing
    reads (cache/block_hash.py), here without checking each id's sign, for ids known to be
    non-negative (a negative one reads as 2**64 plus it). Slicing the view copies nothing.
    While a view lives, its array cannot grow (nothing here grows one in place)."""
    return memoryview(ids).cast("B").cast("Q")
