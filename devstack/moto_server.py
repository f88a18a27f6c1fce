"""moto in server mode on 127.0.0.1, in a child process of its own.

The child keeps moto's state out of the parent: a test process that also uses `moto.mock_aws` cannot
reset or intercept the local stack's resources. Run `python -m devstack.moto_server` to start one by
hand. It prints `MOTO_PORT=<port>` once it listens and stops when its standard input closes or on
SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import requests

ROOT = Path(__file__).resolve().parent.parent
LOCAL_REGION = "us-east-1"
PORT_LINE_PREFIX = "MOTO_PORT="

logger = logging.getLogger(__name__)


def fake_aws_environment(endpoint_url: str, region: str = LOCAL_REGION) -> dict[str, str]:
    """Return the variables that point every AWS SDK call at moto with fake credentials.

    The shared config and credentials files are set to /dev/null and instance metadata is disabled
    so that no profile or metadata address can supply real credentials.
    """
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class MotoServer:
    """A `python -m devstack.moto_server` child process; `url` is its endpoint."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> MotoServer:
        environment = {**os.environ, **fake_aws_environment("")}
        environment.pop("AWS_ENDPOINT_URL")
        environment.pop("AWS_PROFILE", None)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_server"],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = self._read_port()
        self.url = f"http://127.0.0.1:{port}"
        self._wait_until_serving()
        logger.info("moto server started at %s (pid %s)", self.url, self._process.pid)
        return self

    def _read_port(self) -> int:
        assert self._process is not None
        assert self._process.stdout is not None
        found: list[int] = []
        stdout = self._process.stdout

        def read() -> None:
            for line in stdout:
                if line.startswith(PORT_LINE_PREFIX):
                    found.append(int(line.removeprefix(PORT_LINE_PREFIX)))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self._start_timeout)
        if not found:
            self.stop()
            raise RuntimeError(
                f"moto server did not report its port within {self._start_timeout:.0f} s; "
                "run `python -m devstack.moto_server` to see its error"
            )
        return found[0]

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=2)
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server at {self.url} did not accept connections") from None
                time.sleep(0.05)
            else:
                return

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logger.info("moto server stopped")

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    from moto.server import ThreadedMotoServer

    # Werkzeug logs one line per request; the local stack logs its own invocations instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"{PORT_LINE_PREFIX}{port}", flush=True)

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())

    def wait_for_stdin_eof() -> None:
        sys.stdin.read()
        stopped.set()

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
