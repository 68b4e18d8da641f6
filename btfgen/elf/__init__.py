"""The compiled object: a ``.bpf.o`` (or raw BTF file) read into a checked model.

Owns: ELF loading (``image``), the object model (``model``: programs, maps,
globals), map definitions (``maps``), program types from section names
(``sections``), DATASEC fix-ups (``datasec``) and the reader tying them
together (``reader``).
May import: ``errors``, ``uapi``, the ``btf_*`` modules.  Nothing above.
"""
