"""`python -m devstack` (what `make local` runs): the local stack in the foreground until Ctrl-C or SIGTERM.

Configuration comes from the environment (see docs/local-stack.md); the defaults run the stack in
safe mode with the credentials of WeChat's official test vector.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from devstack.runner import LocalStack, LocalStackConfig


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # boto3 and the HTTP client log every request at INFO or DEBUG; the stack logs its own events.
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    config = LocalStackConfig.from_environ()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    with LocalStack(config) as stack:
        print(f"WeChat webhook URL: {stack.webhook_url}  (message mode: {config.message_mode})", flush=True)
        print(f"Staff API:          {stack.url}/api", flush=True)
        print(f"WeChat emulator:    {stack.emulator_url}", flush=True)
        print(f"moto endpoint:      {stack.moto_url}", flush=True)
        print("local stack ready; press Ctrl-C to stop", flush=True)
        stopping.wait()
        print("stopping the local stack", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
