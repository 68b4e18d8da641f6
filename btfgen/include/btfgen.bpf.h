/* SPDX-License-Identifier: MIT */
/*
 * btfgen.bpf.h -- tell btfgen the record type of a perf event array or ring
 * buffer map, so the generated skeleton delivers typed records.
 *
 *     #include <btfgen.bpf.h>      (python -c 'import btfgen, os;
 *                                   print(os.path.dirname(btfgen.__file__) + "/include")')
 *     struct { __uint(type, BPF_MAP_TYPE_RINGBUF); ... } events SEC(".maps");
 *     BTFGEN_RECORD(events, struct event);
 *
 * How: a global pointer `__btfgen_record__<map>` of type `<type> *` in the
 * ELF section ".btfgen".  Its BTF VAR (and so the record type) is in the
 * object's BTF; libbpf skips sections it does not know, so the object loads
 * unchanged (no map, no program, no relocation is added).  The
 * _Static_asserts make a misspelt map or an incomplete type a compile error.
 */
#ifndef __BTFGEN_BPF_H__
#define __BTFGEN_BPF_H__

#define BTFGEN_RECORD(map, type)                                              \
	_Static_assert(sizeof(map) > 0, "BTFGEN_RECORD: no map " #map);         \
	_Static_assert(sizeof(type) > 0, "BTFGEN_RECORD: incomplete " #type);   \
	type *__btfgen_record__##map                                          \
		__attribute__((section(".btfgen"), used))

#endif /* __BTFGEN_BPF_H__ */
