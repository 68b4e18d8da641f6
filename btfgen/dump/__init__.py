"""``btfgen dump`` and ``btfgen info``: an object and its BTF shown to people.

Owns: bpftool's raw text (``raw``), compilable C (``c``), JSON (``json``) and
the ``info`` summary.
May import: everything below the front ends (``btf_*``, ``elf``, ``discovery``
for ``info``'s record types); not ``gen`` or ``project``.
"""
