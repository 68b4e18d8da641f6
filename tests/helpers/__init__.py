"""Test helpers, imported as ``tests.helpers.<module>``.

``build`` (compile BPF C, run the CLI, paths), ``lint`` (the one ruff / mypy
--strict helper), ``gen`` (generate and import a module), ``btf_builder`` (BTF
blobs by hand), ``corpus`` (the libbpf-tools objects), ``mutate`` (fuzz
mutations), ``event_progs``, ``plain_record``, ``runtime_zoo``, ``bpf_leaks``, ``maps_zoo``
(a BPF object with every typed map kind).
"""
