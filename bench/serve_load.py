"""Load on ``mlineage serve``: concurrent boto3 clients doing a mix of creates,
associations, lists and QueryLineage, with SigV4, for a fixed time on loopback.

Each client (a thread with its own boto3 client) loops: create an artifact; every other
round create an action and associate the artifact to it; list artifacts of its own type;
QueryLineage from its first artifact; describe what it just created. Afterwards every
entity and association a client was told it created must be in the projection (checked
with Describe / ListAssociations, and in the server's DuckDB file after it stops). Prints
p50 / p99 per operation and the error count; exits 1 on any error or anything missing.

    python bench/serve_load.py --clients 20 --seconds 60 [--accounts 3] [--json out.json]

With ``--accounts N`` the clients are spread over N accounts (client n signs as account
n mod N), and before the load each account shares its lineage group with the next one
(``mlineage share``, the last with the first): every caller then reads through the isolation
rule (its own account plus a grantor's), which is what issue 16 asks to cost within 1.5x of
one account.

Starts its own server (``mlineage serve`` on a free loopback port, embedded log in a
temporary home) unless ``--url`` names one (then ``--key``/``--secret`` too).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

KEY, SECRET, ACCOUNT = "AKIDLOADTEST0000001", "load-secret", "333333333333"


def account_keys(n: int) -> list[tuple[str, str, str]]:
    """(access key, secret, account) of each of ``n`` accounts; the first is the default."""
    return [(KEY, SECRET, ACCOUNT)] + [
        (f"AKIDLOADACCT{i:07d}", f"load-secret-{i}", f"{333333333333 + i:012d}")
        for i in range(1, n)
    ]


def start_server(home: Path, accounts: int = 1) -> tuple[str, subprocess.Popen[bytes]]:
    creds = home / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                key: {"secret_access_key": secret, "account_id": account}
                for key, secret, account in account_keys(accounts)
            }
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlineage.cli",
            "--home",
            str(home / "h"),
            "serve",
            "--port",
            str(port),
            "--credentials",
            str(creds),
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 - loopback
                return url, proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (home / "serve.log").read_text()
                raise SystemExit(f"serve did not start: {log_text}") from None
            time.sleep(0.1)


class Client(threading.Thread):
    def __init__(self, n: int, url: str, key: str, secret: str, until: float, run: str) -> None:
        super().__init__(name=f"client-{n}")
        self.n, self.until, self.run_id = n, until, run
        self.sm = boto3.client(
            "sagemaker",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
        )
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.artifacts: list[str] = []
        self.actions: list[str] = []
        self.associations: list[tuple[str, str]] = []

    def call(self, op: str, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return getattr(self.sm, op)(**kwargs)
        except Exception as exc:
            self.errors.append(f"{op}: {exc}")
            return None
        finally:
            self.latency[op].append(time.perf_counter() - t0)

    def run(self) -> None:
        i = 0
        kind = f"Load{self.n}"
        while time.monotonic() < self.until:
            uri = f"s3://load/{self.run_id}/{self.n}/{i}"
            made = self.call(
                "create_artifact",
                Source={"SourceUri": uri},
                ArtifactType=kind,
                Properties={"client": str(self.n)},
            )
            if made:
                self.artifacts.append(made["ArtifactArn"])
                self.call("describe_artifact", ArtifactArn=made["ArtifactArn"])
            if i % 2 == 0 and made:
                name = f"load-{self.run_id}-{self.n}-{i}"
                action = self.call(
                    "create_action", ActionName=name, ActionType="Step", Source={"SourceUri": uri}
                )
                if action:
                    self.actions.append(name)
                    if self.call(
                        "add_association",
                        SourceArn=made["ArtifactArn"],
                        DestinationArn=action["ActionArn"],
                        AssociationType="ContributedTo",
                    ):
                        self.associations.append((made["ArtifactArn"], action["ActionArn"]))
            self.call("list_artifacts", ArtifactType=kind, MaxResults=20)
            if self.artifacts:
                self.call(
                    "query_lineage",
                    StartArns=[self.artifacts[0]],
                    Direction="Descendants",
                    IncludeEdges=True,
                    MaxDepth=3,
                )
            i += 1

    def missing(self) -> list[str]:
        lost = []
        for arn in self.artifacts:
            try:
                self.sm.describe_artifact(ArtifactArn=arn)
            except Exception:
                lost.append(arn)
        for name in self.actions:
            try:
                self.sm.describe_action(ActionName=name)
            except Exception:
                lost.append(name)
        for source, dest in self.associations:
            got = self.sm.list_associations(SourceArn=source, DestinationArn=dest)
            if not got["AssociationSummaries"]:
                lost.append(f"{source} -> {dest}")
        return lost


def share_around(home: Path, url: str, accounts: int, run: str) -> None:
    """Each account shares with the next (``mlineage share`` on the server's log), then wait
    until the server shows it: the next account can describe an artifact of the first."""
    keys = account_keys(accounts)
    clients = [
        boto3.client(
            "sagemaker",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )
        for key, secret, _ in keys
    ]
    made = [
        c.create_artifact(
            Source={"SourceUri": f"s3://load/{run}/shared/{i}"}, ArtifactType="Shared"
        )["ArtifactArn"]
        for i, c in enumerate(clients)
    ]
    for i, (_, _, owner) in enumerate(keys):
        grantee = keys[(i + 1) % accounts][2]
        subprocess.run(
            [sys.executable, "-m", "mlineage.cli", "--home", str(home / "h"), "share",
             "--owner", owner, "--with", grantee],
            check=True, capture_output=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    for i in range(accounts):
        reader = clients[(i + 1) % accounts]
        while True:
            try:
                reader.describe_artifact(ArtifactArn=made[i])
                break
            except reader.exceptions.ResourceNotFound:
                if time.monotonic() > deadline:
                    raise SystemExit("the shares did not reach the server in 120 s") from None
                time.sleep(0.2)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--url")
    parser.add_argument("--key", default=KEY)
    parser.add_argument("--secret", default=SECRET)
    parser.add_argument("--accounts", type=int, default=1, help="spread clients over N accounts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.accounts < 1 or (args.accounts > 1 and args.url):
        parser.error("--accounts takes N >= 1, and only with the server this script starts")
    with tempfile.TemporaryDirectory(prefix="mlineage-serve-load-") as tmp:
        proc = None
        url = args.url
        if url is None:
            url, proc = start_server(Path(tmp), args.accounts)
        try:
            run = str(time.time_ns())[-8:]
            keys = [(args.key, args.secret, "")]
            if args.accounts > 1:
                share_around(Path(tmp), url, args.accounts, run)
                keys = account_keys(args.accounts)
            until = time.monotonic() + args.seconds
            clients = [
                Client(n, url, *keys[n % len(keys)][:2], until, run) for n in range(args.clients)
            ]
            started = time.monotonic()
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            elapsed = time.monotonic() - started
            lost = [m for c in clients for m in c.missing()]
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(60)
    latency: dict[str, list[float]] = defaultdict(list)
    for c in clients:
        for op, values in c.latency.items():
            latency[op] += values
    errors = [e for c in clients for e in c.errors]
    total = sum(len(v) for v in latency.values())
    print(
        f"{args.clients} clients in {args.accounts} account(s) for {elapsed:.0f} s: "
        f"{total:,} calls "
        f"({total / elapsed:,.0f}/s), {len(errors)} errors, {len(lost)} missing afterwards; "
        f"{sum(len(c.artifacts) for c in clients):,} artifacts, "
        f"{sum(len(c.actions) for c in clients):,} actions, "
        f"{sum(len(c.associations) for c in clients):,} associations created"
    )
    print(f"{'operation':<20} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8}")
    figures = {}
    for op in sorted(latency):
        values = latency[op]
        figures[op] = {
            "calls": len(values),
            "p50_ms": pct(values, 0.5) * 1000,
            "p99_ms": pct(values, 0.99) * 1000,
        }
        print(
            f"{op:<20} {len(values):>7,} {figures[op]['p50_ms']:>8.1f} "
            f"{figures[op]['p99_ms']:>8.1f}"
        )
    for e in errors[:10]:
        print("error:", e)
    for m in lost[:10]:
        print("missing:", m)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "clients": args.clients,
                    "accounts": args.accounts,
                    "seconds": elapsed,
                    "errors": errors,
                    "missing": lost,
                    "operations": figures,
                },
                indent=2,
            )
        )
    sys.exit(1 if errors or lost else 0)


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    main()
