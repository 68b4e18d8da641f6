"""btfgen: typed Python from the BTF of compiled eBPF objects."""

__version__ = "0.1.0"
