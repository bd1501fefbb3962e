"""Token id sequences held packed, as the sim engine and the cluster simulator keep them.

A prompt of thousands of tokens held as a tuple of Python ints costs an object per token to
build, to copy (each slice or concatenation touches every one) and to free. Packed in an
`array('Q')` (8 bytes a token, unsigned: every id a tokenizer can give, the sim model's
reach 2**64 - 1; workers/sim/tokenizer.py), slicing and
concatenating are memcpy, comparing is a loop over machine words, and block hashing
(cache/block_hash.py) reads the bytes as they are. Arrays compare equal only to arrays:
compare a packed sequence with a tuple as `tuple(ids) == ...`.

Building one from Python ints goes through numpy (array('Q', ints) converts each int by a
slow path); a range, which is how the cluster simulator's synthetic ids come, is built by
numpy without any Python int.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np

TYPECODE = "Q"
TokenIds = array  # array('Q'); `array[int]` in annotations


def pack(ids: Iterable[int]) -> array[int]:
    """ids as a packed sequence; a packed one is returned as it is (not copied).
    OverflowError for an id outside [0, 2**64)."""
    if type(ids) is array and ids.typecode == TYPECODE:
        return ids
    if type(ids) is range and ids.step == 1:
        return pack_range(ids.start, ids.stop)
    out = array(TYPECODE)
    values = np.asarray(ids if isinstance(ids, (list, tuple, range)) else list(ids),
                        dtype=np.uint64)
    out.frombytes(memoryview(values).cast("B"))  # type: ignore[arg-type]  # numpy's stubs lack __buffer__
    return out


def pack_range(start: int, stop: int) -> array[int]:
    """array('Q', range(start, stop)), built without a Python int per id."""
    out = array(TYPECODE)
    if stop > start:
        out.frombytes(memoryview(np.arange(start, stop, dtype=np.uint64)).cast("B"))  # type: ignore[arg-type]
    return out


def packed(*ids: int) -> array[int]:
    """A short packed sequence of the given ids (e.g. a salt token)."""
    return array(TYPECODE, ids)


def unsigned(ids: array[int]) -> memoryview:
    """The ids as a memoryview (format 'Q'), without a copy: what block hashing reads
    (cache/block_hash.py). Slicing the view copies nothing. While a view lives, its array
    cannot grow (nothing here grows one in place): release it (`with`)."""
    return memoryview(ids)
