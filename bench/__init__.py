"""Benchmarks: `make bench` (python -m bench) measures and rewrites BENCHMARKS.md."""

import sys
from pathlib import Path

# The shared package lives in a Lambda layer folder, not in site-packages.
_SHARED = str(Path(__file__).resolve().parent.parent / "layers" / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
