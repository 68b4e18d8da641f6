"""``python -m btfgen``."""

from btfgen.cli import script

script()
