"""The setuptools build step: ``[tool.btfgen]`` skeletons built by ``pip``.

Owns: the configuration (``config``), compiling with clang (``clang``) and the
``build_btfgen`` command with its entry-point hook (``plugin``).
May import: everything below the front ends, ``gen`` included.  The hook module
is loaded by every setuptools build, so it imports the generator lazily.
"""
