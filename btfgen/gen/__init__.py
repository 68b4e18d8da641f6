"""``btfgen gen`` and ``btfgen check``: selected types rendered into a Python module."""
