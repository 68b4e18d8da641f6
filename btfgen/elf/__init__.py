"""The compiled object: ELF sections, maps, programs and globals of a ``.bpf.o``."""
