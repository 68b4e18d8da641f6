"""Where the benchmarks leave their figures: benchmarks/results/, one text table
and one JSON file per run, named ``PREFIX-YYYYmmdd-HHMMSS``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def save_results(prefix: str, text: str, data: Any) -> Path:
    """Write ``text`` and ``data`` (as JSON); returns the text file's path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{prefix}-{stamp}.txt"
    path.write_text(text + "\n")
    (RESULTS / f"{prefix}-{stamp}.json").write_text(json.dumps(data, indent=1, default=str))
    return path
