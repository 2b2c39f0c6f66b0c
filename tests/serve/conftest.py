"""A real ``mlineage serve`` on loopback (a subprocess), and boto3 clients for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.helpers import wait_until

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
KEYS = {
    "AKIDACCOUNTA0000001": {"secret_access_key": "secret-a", "account_id": ACCOUNT_A},
    "AKIDACCOUNTB0000001": {"secret_access_key": "secret-b", "account_id": ACCOUNT_B},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    home: Path

    def client(
        self, key: str | None = "AKIDACCOUNTA0000001", secret: str | None = None, **config: Any
    ) -> Any:
        access = key or "AKIDNOAUTH"
        return boto3.client(
            "sagemaker",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=access,
            aws_secret_access_key=secret or KEYS.get(access, {}).get("secret_access_key", "x"),
            config=Config(retries={"max_attempts": 1}, **config),
        )


def start_server(home: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlineage.cli",
            "--home",
            str(home),
            "serve",
            "--port",
            str(port),
            *args,
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("serve did not start: " + (home / "serve.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 - loopback
                return True
        except OSError:
            return False

    try:
        wait_until(healthy, "serve answered /healthz", timeout=60, pause=0.1)
    except BaseException:
        proc.kill()
        raise
    return Server(url, proc, home)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve")
    creds = home / "credentials.json"
    creds.write_text(json.dumps(KEYS))
    srv = start_server(home / "home", "--credentials", str(creds))
    yield srv
    stop_server(srv)


@pytest.fixture
def sm(server: Server) -> Any:
    """A boto3 sagemaker client of account A."""
    return server.client()


@pytest.fixture
def unique() -> Callable[[str], str]:
    counter = iter(range(10**9))
    stamp = str(time.monotonic_ns())[-8:]

    def make(prefix: str) -> str:
        return f"{prefix}-{stamp}-{next(counter)}"

    return make
