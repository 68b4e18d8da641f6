"""``struct plain`` of the drain tests: plain C fields only (built by the C
record builders), filled by a BPF program from a sequence number, and the
values a reader must see for each."""

from __future__ import annotations

import struct
from typing import Any

#: C text for a BPF program: the struct and ``fill_plain(p, seq)``.
PLAIN_C = r"""
/* plain fields only: built by the C bulk decoder (records_fast) */
struct plain {
	__u64 seq;
	__s64 neg;
	__u32 u32;
	__s32 s32;
	__u16 u16;
	__s16 s16;
	__u8 u8;
	__s8 s8;
	_Bool odd;
	char name[13];
	double half;
};

static __always_inline void fill_plain(struct plain *p, __u64 seq)
{
	p->seq = seq;
	p->neg = -(__s64)seq;
	p->u32 = seq * 65537;
	p->s32 = -(__s32)seq * 3;
	p->u16 = seq * 5;
	p->s16 = -(__s16)seq;
	p->u8 = seq;
	p->s8 = -(__s8)seq;
	p->odd = seq & 1;
	p->name[0] = 'n';
	p->name[1] = '0' + seq % 10;
	if (seq % 3 == 0)
		p->name[2] = 'x';
	*(__u64 *)&p->half = 0x3FF0000000000000ULL + (seq << 32); /* no floats in BPF */
}
"""

#: sizeof(struct plain)
PLAIN_SIZE = 56


def plain_expected(seq: int) -> dict[str, Any]:
    """Every field of ``struct plain`` that ``fill_plain`` writes for ``seq``."""
    def wrap(v: int, bits: int) -> int:
        v &= (1 << bits) - 1
        return v - (1 << bits) if v >> (bits - 1) else v

    return {"seq": seq, "neg": -seq, "u32": seq * 65537 & 0xFFFFFFFF, "s32": wrap(-seq * 3, 32),
            "u16": seq * 5 & 0xFFFF, "s16": wrap(-seq, 16), "u8": seq & 0xFF, "s8": wrap(-seq, 8),
            "odd": bool(seq & 1),
            "name": b"n" + str(seq % 10).encode() + (b"x" if seq % 3 == 0 else b""),
            "half": struct.unpack("<d", struct.pack("<Q", 0x3FF0000000000000 + (seq << 32)))[0]}
