"""Record types of perf event arrays and ring buffers, which BTF does not state.

Owns: the one resolver (``resolve``: sources in order, strongest first) and its
sources: bytecode analysis (``bytecode``), DWARF (``dwarf``) and C headers
(``header``).
May import: ``errors``, ``uapi``, ``btf_*``, ``elf``.  Nothing above.
"""
