"""Operations CLI for a deployed stack or the local stack: `python -m devstack.ops --help`.

Commands: `secrets` (WeChat credentials and EncodingAESKey rotation), `redrive` (dead-letter queue
back to its source queue), `menu` (WeChat custom menu), `resend-notice` and `export`. They log what
they did with counts to standard error and never print an OpenID, a message text or a secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The commands reuse the functions' shared package `intake` (layers/shared), as the tests do.
_SHARED_LAYER = str(Path(__file__).resolve().parents[2] / "layers" / "shared")
if _SHARED_LAYER not in sys.path:
    sys.path.insert(0, _SHARED_LAYER)
