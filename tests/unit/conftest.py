"""Unit tests import the bundled stack's packages (shop.*) straight from the checkout."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "stack") not in sys.path:
    sys.path.insert(0, str(REPO / "stack"))
