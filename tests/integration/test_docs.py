"""Executed docs: every Python snippet of README.md and docs/*.md runs as written, and every
name the package exports imports.

A snippet runs in a fresh process against a home where `mlineage demo` ran (the docs refer
to the demo's ARNs and URIs). A snippet that talks to `mlineage serve` gets a server of its
own, started with the credentials file docs/serve.md writes, on a free port in place of
8080; one that imports the SageMaker SDK runs in the SDK's venv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlineage
from tests.kafka_broker import skip_or_fail
from tests.serve.conftest import start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SDK_PYTHON = Path(os.environ.get("MLINEAGE_TEST_SDK_PYTHON", REPO / ".venv-sdk/bin/python"))
SERVER = "127.0.0.1:8080"
CLI = [sys.executable, "-m", "mlineage.cli"]


def snippets() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        blocks = re.findall(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M)
        found += [(f"{doc.relative_to(REPO)}#{i + 1}", code) for i, code in enumerate(blocks)]
    return found


SNIPPETS = snippets()


def test_the_docs_have_python_snippets() -> None:
    """The collection works (a broken pattern would make the test below vacuous)."""
    assert {name.split("#")[0] for name, _ in SNIPPETS} >= {
        "README.md",
        "docs/query.md",
        "docs/serve.md",
        "docs/accounts.md",
    }


def test_every_exported_name_imports() -> None:
    for name in mlineage.__all__:
        assert getattr(mlineage, name) is not None, name
    code = "from mlineage import *; import sys; print('duckdb' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == "True"  # the star import resolves the lazy names too
    light = subprocess.run(
        [sys.executable, "-c", "import mlineage, sys; print('duckdb' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert light.stdout.strip() == "False", "importing the recorder should not load DuckDB"


def docs_credentials() -> dict[str, object]:
    """The credentials file docs/serve.md tells a reader to write."""
    text = (REPO / "docs/serve.md").read_text()
    match = re.search(r"cat > credentials.json <<'EOF'\n(.*?)\nEOF", text, re.S)
    assert match, "docs/serve.md no longer writes credentials.json"
    creds: dict[str, object] = json.loads(match.group(1))
    return creds


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("docs") / "home"
    proc = subprocess.run(
        [*CLI, "--home", str(home), "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.mark.parametrize(("name", "code"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_the_snippet_runs_as_written(name: str, code: str, demo_home: Path, tmp_path: Path) -> None:
    python = sys.executable
    env = {**os.environ, "MLINEAGE_HOME": str(demo_home), "AWS_EC2_METADATA_DISABLED": "true"}
    if re.search(r"^(import|from) [\w., ]*\bsagemaker\b", code, re.M):
        if not SDK_PYTHON.exists():
            skip_or_fail(f"no SageMaker SDK venv at {SDK_PYTHON}: `make .venv-sdk/.installed`")
        python = str(SDK_PYTHON)
    server = None
    if SERVER in code:
        creds = tmp_path / "credentials.json"
        creds.write_text(json.dumps(docs_credentials()))
        server = start_server(tmp_path / "serve-home", "--credentials", str(creds))
        code = code.replace(SERVER, server.url.removeprefix("http://"))
    try:
        script = tmp_path / "snippet.py"
        script.write_text(code)
        proc = subprocess.run(
            [python, str(script)],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
    finally:
        if server is not None:
            stop_server(server)
    assert proc.returncode == 0, f"{name} failed:\n{code}\n{proc.stderr[-3000:]}"
    if "print(" in code:
        assert proc.stdout.strip(), f"{name} printed nothing"
