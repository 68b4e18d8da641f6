"""``python -m btfgen``."""

import sys

from btfgen.cli import main

sys.exit(main())
