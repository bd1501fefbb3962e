"""Packed token id sequences (workers/sim/token_ids.py): the same ids in every form."""

from __future__ import annotations

from array import array

import pytest

from workers.sim.token_ids import pack, pack_range, packed, unsigned

BIG = 1 << 61  # the cluster simulator's shared prefixes' ids lie up here
TOP = (1 << 64) - 1  # the sim tokenizer's ids reach it (8 bytes of UTF-8 from 0xC3 up)


@pytest.mark.parametrize("ids", [range(0), range(3, 9), range(BIG, BIG + 40), range(2, 20, 3),
                                 [5, TOP, 9], (BIG, 0, 1 << 63), iter([1, 2, 3])])
def test_pack_keeps_every_id_in_order(ids: object) -> None:
    expect = list(ids)  # type: ignore[call-overload]
    if not isinstance(ids, (range, list, tuple)):
        ids = iter(expect)
    got = pack(ids)  # type: ignore[arg-type]
    assert type(got) is array and got.typecode == "Q" and got.tolist() == expect


def test_packed_sequences_are_not_copied_and_slice_and_join_as_arrays() -> None:
    a = pack_range(10, 20)
    assert pack(a) is a and pack_range(5, 5).tolist() == []
    joined = packed(TOP) + a[:2] + pack([7])
    assert joined.tolist() == [TOP, 10, 11, 7] and joined[1:] == pack([10, 11, 7])
    assert tuple(joined) == (TOP, 10, 11, 7)  # an array equals only arrays: compare tuples


def test_the_view_reads_the_same_ids_without_a_copy() -> None:
    a = pack([1, 2, BIG, TOP])
    with unsigned(a) as view:
        assert view.format == "Q" and view[:3].tolist() == [1, 2, BIG] and view[3] == TOP
        a[0] = 9
        assert view[0] == 9  # the same memory


@pytest.mark.parametrize("ids", [[1, -1], [1 << 64], (0, -5)])
def test_ids_outside_64_unsigned_bits_are_refused(ids: list[int]) -> None:
    with pytest.raises(OverflowError):
        pack(ids)
