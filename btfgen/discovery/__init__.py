"""Record types of perf event arrays and ring buffers: bytecode, DWARF, C headers."""
