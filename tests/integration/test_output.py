"""Output for people and for scripts, through the real CLI: ARNs are never cut (on a narrow
terminal either), CSV ends lines in ``\\n`` and has fixed columns and a header even when
empty, JSON columns come out as JSON, data never reads as rich markup, and the lineage
prints as a tree, as Graphviz that `dot` parses and as escaped Mermaid, failed jobs marked."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlineage.query.catalog import KINDS, SUMMARY_COLUMNS
from tests.helpers import CLI, run_cli

ENDPOINT = "arn:aws:sagemaker:us-east-1:000000000000:context/churn-prediction-aws-endpoint"
# a URI with everything that breaks a DOT string, Mermaid text or rich markup
NASTY_URI = 's3://out/a\\b"c<b>x</b>#35;[/][red]&|'
FAILED_JOB = "nasty-failed-job"


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, stdin=stdin)


def on_terminal(home: Path, columns: int, *args: str) -> str:
    """What a user sees on a terminal this many columns wide (a real pty)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "dumb"}
    proc = subprocess.Popen(
        [*CLI, "--home", str(home), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("output") / "home"
    run(home, "demo")
    created = {
        "event_type": "JobCreated",
        "payload": {
            "job_type": "TrainingJob",
            "job_name": FAILED_JOB,
            "inputs": [{"name": "train", "uri": "s3://acme-ml-demo/prepared/train/"}],
            "outputs": [{"name": "model", "uri": NASTY_URI}],
        },
    }
    failed = {
        "event_type": "JobStatusChanged",
        "payload": {
            "job_type": "TrainingJob",
            "job_name": FAILED_JOB,
            "status": "Failed",
            "failure_reason": "OOM [/] at step 3",
        },
    }
    run(home, "publish", "-", stdin=json.dumps(created) + "\n" + json.dumps(failed) + "\n")
    return home


def arns_of(home: Path, kind: str) -> list[str]:
    page = json.loads(run(home, "list", kind, "--format", "json", "--max-results", "100").stdout)
    key = next(k for k in page if k.endswith("Summaries"))
    return [v for s in page[key] for k, v in s.items() if k.endswith("Arn")]


@pytest.mark.parametrize("columns", [80, 120, 200])
@pytest.mark.parametrize("kind", ["artifacts", "trial-components", "associations"])
def test_arns_are_never_cut_on_a_terminal(home: Path, kind: str, columns: int) -> None:
    arns = arns_of(home, kind)
    assert arns
    shown = on_terminal(home, columns, "list", kind, "--max-results", "100")
    for arn in arns:
        assert arn in shown, f"{arn} cut at {columns} columns:\n{shown}"
    assert "…" not in shown


def test_arns_are_never_cut_when_piped(home: Path) -> None:
    text = run(home, "query-lineage", ENDPOINT, "--direction", "Ascendants").stdout
    vertices = json.loads(
        run(home, "query-lineage", ENDPOINT, "--direction", "Ascendants", "--format", "json").stdout
    )["Vertices"]
    for v in vertices:
        assert v["Arn"] in text
    assert "…" not in text


def test_csv_ends_lines_in_newline_and_keeps_its_header_when_empty(home: Path) -> None:
    raw = run(home, "sql", "--format", "csv", "SELECT job_name FROM jobs ORDER BY 1").stdout
    assert "\r" not in raw
    assert raw.splitlines()[0] == "job_name"
    empty = run(home, "sql", "--format", "csv", "SELECT job_name FROM jobs WHERE false").stdout
    assert empty == "job_name\n"


@pytest.mark.parametrize("kind", KINDS)
def test_list_csv_has_the_kinds_fixed_columns_on_every_page_and_when_empty(
    home: Path, kind: str
) -> None:
    columns = list(SUMMARY_COLUMNS[kind])
    cli_kind = kind.replace("_", "-")
    first = run(home, "list", cli_kind, "--format", "csv", "--max-results", "1")
    rows = list(csv.reader(io.StringIO(first.stdout)))
    assert rows[0] == columns
    assert "\r" not in first.stdout
    # every key a summary has is one of the columns, on every page
    page = json.loads(
        run(home, "list", cli_kind, "--format", "json", "--max-results", "100").stdout
    )
    summaries = next(v for k, v in page.items() if k.endswith("Summaries"))
    assert {k for s in summaries for k in s} <= set(columns)
    token = re.search(r"--next-token (\S+)", first.stderr)
    if token:
        second = run(
            home,
            "list",
            cli_kind,
            "--format",
            "csv",
            "--max-results",
            "1",
            "--next-token",
            token.group(1),
        )
        assert next(csv.reader(io.StringIO(second.stdout))) == columns
    empty = run(
        home, "list", cli_kind, "--format", "csv", "--created-before", "2000-01-01T00:00:00Z"
    )
    assert empty.stdout == ",".join(columns) + "\n"


def test_sql_json_gives_json_columns_as_json(home: Path) -> None:
    rows = json.loads(
        run(
            home,
            "sql",
            "--format",
            "json",
            "SELECT job_name, metrics FROM jobs WHERE job_name = 'churn-xgb-2026-01-15'",
        ).stdout
    )
    assert rows == [
        {
            "job_name": "churn-xgb-2026-01-15",
            "metrics": {"train:auc": 0.947, "validation:auc": 0.912},
        }
    ]


def test_data_never_reads_as_markup(home: Path) -> None:
    text = run(home, "list", "artifacts", "--max-results", "100").stdout
    assert json.dumps(NASTY_URI)[1:-1] in text  # in the Source column, as compact JSON
    reason = run(
        home,
        "sql",
        "SELECT status_message FROM trial_components "
        f"WHERE trial_component_name LIKE '{FAILED_JOB}%'",
    )
    assert "OOM [/] at step 3" in reason.stdout


def test_tree_shows_every_vertex_under_its_start(home: Path) -> None:
    args = ["query-lineage", ENDPOINT, "--direction", "Ascendants"]
    tree = run(home, *args, "--format", "tree").stdout
    lines = tree.splitlines()
    assert lines[0] == "Endpoint churn-prediction-aws-endpoint"
    result = json.loads(run(home, *args, "--format", "json").stdout)
    for v in result["Vertices"]:
        name = v["Arn"].rsplit("/", 1)[-1]
        assert name in tree or v["Arn"] in tree or v["Type"] in tree, v
    assert "Produced ← TrainingJob churn-xgb-2026-01-15-aws-training-job Completed" in tree
    assert "(shown above)" in tree  # a vertex reached twice is expanded once
    assert len([ln for ln in lines if "←" in ln]) == len(result["Edges"])


def test_tree_marks_a_failed_job(home: Path) -> None:
    model = arns_of_uri(home, NASTY_URI)
    tree = run(home, "query-lineage", model, "--direction", "Ascendants", "--format", "tree").stdout
    assert f"{FAILED_JOB}" in tree
    assert "Failed" in tree
    assert NASTY_URI in tree.splitlines()[0]


def arns_of_uri(home: Path, uri: str) -> str:
    rows = json.loads(
        run(
            home,
            "sql",
            "--format",
            "json",
            f"SELECT arn FROM artifacts WHERE source_uri = '{uri.replace(chr(39), chr(39) * 2)}'",
        ).stdout
    )
    assert len(rows) == 1, rows
    return str(rows[0]["arn"])


def test_dot_output_parses_escapes_and_marks_the_failed_job(home: Path) -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI needs Graphviz's dot (apt-get install graphviz)", pytrace=False)
        pytest.skip("no Graphviz dot here")
    model = arns_of_uri(home, NASTY_URI)
    dot = run(home, "query-lineage", model, "--direction", "Ascendants", "--format", "dot").stdout
    # Graphviz itself reads it back, labels unescaped exactly
    parsed = subprocess.run(
        ["dot", "-Tjson"], input=dot, capture_output=True, text=True, check=True, timeout=60
    )
    nodes = json.loads(parsed.stdout)["objects"]
    # the text Graphviz draws for each node (its label, unescaped)
    labels = {" ".join(op["text"] for op in n["_ldraw_"] if op["op"] == "T"): n for n in nodes}
    assert f"Model {NASTY_URI}" in labels, sorted(labels)
    failed = [n for text, n in labels.items() if FAILED_JOB in text]
    assert len(failed) == 1
    assert f"TrainingJob {FAILED_JOB}-aws-training-job (Failed)" in labels
    assert failed[0]["color"] == "#c0392b"
    start = labels[f"Model {NASTY_URI}"]
    assert start["penwidth"] == "3"
    assert start["shape"] == "note"  # artifacts are notes, jobs boxes


def test_mermaid_output_escapes_text_and_marks_the_failed_job(home: Path) -> None:
    model = arns_of_uri(home, NASTY_URI)
    text = run(
        home, "query-lineage", model, "--direction", "Ascendants", "--format", "mermaid"
    ).stdout
    labels = re.findall(r'^  (n\d+)\["(.*)"\]$', text, re.M)
    assert labels
    for _, label in labels:
        assert not set(label) & set('"<>|'), label  # all as entity codes
        assert not re.search(r"#(?!35;|quot;|lt;|gt;|amp;|124;)", label), label
    decoded = {
        node: re.sub(
            r"#(35|quot|lt|gt|amp|124);",
            lambda m: {"35": "#", "quot": '"', "lt": "<", "gt": ">", "amp": "&", "124": "|"}[
                m.group(1)
            ],
            label,
        )
        for node, label in labels
    }
    assert f"Model {NASTY_URI}" in decoded.values()
    failed = next(node for node, label in decoded.items() if FAILED_JOB in label)
    assert f"  class {failed} failed" in text.splitlines()
    assert "(Failed)" in decoded[failed]
