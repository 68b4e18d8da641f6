"""``btfgen dump`` and ``btfgen info``: the object and its BTF shown to people."""
