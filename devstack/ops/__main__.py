"""`python -m devstack.ops`: see devstack/ops/cli.py."""

from __future__ import annotations

import sys

from devstack.ops.cli import main

sys.exit(main())
