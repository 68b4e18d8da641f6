"""The setuptools build step: ``[tool.btfgen]``, clang, and ``build_btfgen``."""
