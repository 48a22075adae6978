"""A real dpzero server in a subprocess, for the TAP tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``dpzero serve`` on a free loopback port."""

    def __init__(
        self,
        store: Path,
        state_dir: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.args = args
        self.state_dir = state_dir
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = state_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tap_url(self) -> str:
        return self.url + "/api/tap"

    def start(self) -> ServerProcess:
        cmd = [
            sys.executable, "-m", "dpzero.cli", "serve", "--store", str(self.store),
            "--port", str(self.port), "--state-dir", str(self.state_dir), *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(self.tap_url + "/availability", timeout=2)
                if r.status_code == 200 and "<available>true</available>" in r.text:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become available")

    def stop(self, hard: bool = False) -> None:
        if self.process is None:
            return
        if hard:
            # Kill the whole process group's main process as a crash would.
            self.process.send_signal(signal.SIGKILL)
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def tap_server(
    tiny_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server over the tiny store, shared by the read-only TAP tests."""
    server = ServerProcess(tiny_store, tmp_path_factory.mktemp("tap") / "state").start()
    yield server
    server.stop()
