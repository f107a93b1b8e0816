"""Regenerate the paper's claims on a scenario's results table: the command line of the ``claims`` package
(``experiments/claims/``, one module per claim).

    .venv/bin/python experiments/claims.py --claim all --scenario tiny-news
    .venv/bin/python experiments/claims.py --claim table1 --table TABLE --surrogate SURROGATE
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the package beside this file, not this file
    from claims import main

    sys.exit(main())
