"""``btfgen gen`` and ``btfgen check``: selected types rendered into a Python module.

Owns: type selection (``select``), the record model (``model``), value plans and
record code (``plans``, ``record_code``, ``record_methods``), the cffi cdef
(``cdef``), the skeleton (``skeleton``), safe names (``naming``), options
(``options``), rendering (``module``), ``check`` and atomic writes (``output``).
May import: ``errors``, ``uapi``, ``btf_*``, ``elf``, ``discovery`` and
``btfgen.runtime.map_types``; the rest of the runtime only as text it writes.
"""
