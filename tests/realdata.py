"""Where the real kneeKL224 data is: ``../shared/data/kneeKL224`` beside the checkout, or
``$KNEEOA_DATA``. Tests marked ``realdata`` skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("KNEEOA_DATA") or REPO.parent / "shared" / "data" / "kneeKL224")
