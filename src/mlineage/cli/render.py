"""How results are printed: tables, CSV, JSON, lineage trees, DOT and Mermaid. Pure: it
formats the result objects it is given and never reads the store."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mlineage.query.lineage import LineageResult
from mlineage.query.store import VertexLabel

# piped output is not cut at 80 columns: scripts and logs get whole lines
_WIDTH = None if sys.stdout.isatty() else 100_000
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


class PlainTable(Table):
    """A table whose cells are plain text: data never reads as rich markup (a ``[/]`` in a
    URI or an error made rich raise, a ``[red]`` recoloured the rest)."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


def print_table(table: PlainTable) -> None:
    """Print a table without cutting an ARN: a column holding ARNs is as wide as its longest
    one and the other columns fold to make room. When even that does not fit (a narrow
    terminal), each row is printed as a block of ``column value`` lines instead."""
    fold_min = 8  # narrowest a folded column may get
    needed = 0
    for column in table.columns:
        texts = [c.plain if isinstance(c, Text) else str(c) for c in column.cells]
        longest = max((len(c) for c in texts if c.startswith("arn:")), default=0)
        if longest:
            column.min_width = max(longest, column.min_width or 0)
            column.no_wrap = True
            needed += longest + 3
        else:
            column.overflow = "fold"
            needed += min(fold_min, max((len(c) for c in texts), default=0)) + 3
    if table.row_count == 0 or needed <= out.width:
        out.print(table)
        return
    names = [str(c.header) for c in table.columns]
    width = max(len(n) for n in names)
    by_column = [list(c.cells) for c in table.columns]
    for n in range(table.row_count):
        out.print(f"[dim]-- {escape(str(table.title or 'row'))} {n + 1} --[/]")
        for name, cells in zip(names, by_column, strict=True):
            out.print(f"[bold]{escape(name.ljust(width))}[/] ", cells[n], sep="")


def print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Rows as a table, CSV (``\\n`` line ends, a header even when empty) or JSON."""

    def cell(v: Any) -> Any:
        return v.isoformat() if hasattr(v, "isoformat") else v

    if fmt == "json":
        objects = [{n: cell(v) for n, v in zip(names, r, strict=True)} for r in rows]
        sys.stdout.write(json.dumps(objects, default=str, indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(names)
        w.writerows([[cell(v) for v in r] for r in rows])
    else:
        table = PlainTable(*names, show_lines=False)
        for r in rows:
            table.add_row(*["NULL" if v is None else str(cell(v)) for v in r])
        print_table(table)
        out.print(f"[dim]{len(rows)} row(s)[/]")


def plain_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_value(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


def flatten(summary: dict[str, Any]) -> dict[str, Any]:
    """One level deep, for tables and CSV: nested values become compact JSON."""
    return {
        k: json.dumps(plain_value(v), sort_keys=True)
        if isinstance(v, dict | list)
        else plain_value(v)
        for k, v in summary.items()
    }


_BAD_STATUSES = frozenset({"Failed", "Stopped", "Stopping"})


def _dot_text(text: str) -> str:
    """A Graphviz quoted string's content: backslashes and quotes escaped, lines kept."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid_text(text: str) -> str:
    """Mermaid label text: entity codes for what Mermaid would read as markup or HTML."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "|": "#124;"}
    return "".join(codes.get(c, c) for c in text.replace("\n", " "))


# lineage type -> Graphviz shape and fill, Mermaid class
_DOT_STYLE = {
    "Artifact": ("note", "#e8f1fb"),
    "TrialComponent": ("box", "#eaf6e6"),
    "Context": ("hexagon", "#fdf3e1"),
    "Action": ("parallelogram", "#f3e8fb"),
}


_MERMAID_CLASSES = [
    "  classDef Artifact fill:#e8f1fb,stroke:#4a78b5",
    "  classDef TrialComponent fill:#eaf6e6,stroke:#4c8a3f",
    "  classDef Context fill:#fdf3e1,stroke:#b5852d",
    "  classDef Action fill:#f3e8fb,stroke:#7e4ab5",
    "  classDef failed fill:#fde0dc,stroke:#c0392b,stroke-dasharray:4 2",
]


def _dot(
    starts: list[str], arns: list[str], result: LineageResult, shown: dict[str, VertexLabel]
) -> list[str]:
    ids = {arn: f"n{i}" for i, arn in enumerate(arns)}
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, style=filled, fontsize=10];"]
    for arn in arns:
        info = shown.get(arn)
        shape, fill = _DOT_STYLE.get(info.lineage_type if info else "", ("box", "white"))
        label = info.label if info else arn
        attrs = [f'label="{_dot_text(label)}"', f'tooltip="{_dot_text(arn)}"', f"shape={shape}"]
        if info is not None and info.status in _BAD_STATUSES:
            attrs += ['fillcolor="#fde0dc"', 'color="#c0392b"', 'style="filled,dashed"']
            attrs[0] = f'label="{_dot_text(f"{label} ({info.status})")}"'
        else:
            attrs.append(f'fillcolor="{fill}"')
        if arn in starts:
            attrs.append("penwidth=3")
        lines.append(f"  {ids[arn]} [{', '.join(attrs)}];")
    for e in result.edges:
        lines.append(
            f"  {ids[e.source_arn]} -> {ids[e.destination_arn]} "
            f'[label="{_dot_text(e.association_type or "")}", fontsize=8];'
        )
    return [*lines, "}"]


def _mermaid(
    starts: list[str], arns: list[str], result: LineageResult, shown: dict[str, VertexLabel]
) -> list[str]:
    ids = {arn: f"n{i}" for i, arn in enumerate(arns)}
    lines = ["graph LR"]
    for arn in arns:
        info = shown.get(arn)
        label = info.label if info else arn
        if info is not None and info.status in _BAD_STATUSES:
            label = f"{label} ({info.status})"
        lines.append(f'  {ids[arn]}["{_mermaid_text(label)}"]')
    for e in result.edges:
        assoc = _mermaid_text(e.association_type or "")
        lines.append(
            f"  {ids[e.source_arn]} -->|{assoc}| {ids[e.destination_arn]}"
            if assoc
            else f"  {ids[e.source_arn]} --> {ids[e.destination_arn]}"
        )
    lines += _MERMAID_CLASSES
    for arn in arns:
        info = shown.get(arn)
        if info is None:
            continue
        klass = "failed" if info.status in _BAD_STATUSES else info.lineage_type
        lines.append(f"  class {ids[arn]} {klass}")
    lines += [f"  style {ids[arn]} stroke-width:3px" for arn in starts if arn in ids]
    return lines


def _tree_label(arn: str, info: VertexLabel | None) -> str:
    if info is None:
        return escape(arn)
    typ, _, name = info.label.partition(" ")
    text = f"[cyan]{escape(typ)}[/] {escape(name)}"
    if info.status is not None:
        color = (
            "red"
            if info.status in _BAD_STATUSES
            else "green"
            if info.status == "Completed"
            else "yellow"
        )
        text += f" [{color}]{escape(info.status)}[/]"
    return text


def lineage_trees(
    starts: list[str], result: LineageResult, shown: dict[str, VertexLabel], direction: str
) -> list[Tree]:
    """The result as one tree per start: Ascendants hang under what they produced
    (``←``), descendants under what produced them (``→``), both ways with Both. A vertex
    reached again is shown once more, marked, and not expanded again."""
    near: dict[str, list[tuple[str, str, str]]] = {}
    for e in result.edges:
        assoc = e.association_type or ""
        if direction in ("Descendants", "Both"):
            near.setdefault(e.source_arn, []).append((assoc, "→", e.destination_arn))
        if direction in ("Ascendants", "Both"):
            near.setdefault(e.destination_arn, []).append((assoc, "←", e.source_arn))
    seen: set[str] = set()

    def grow(node: Tree, arn: str) -> None:
        for assoc, arrow, other in sorted(near.get(arn, [])):
            again = other in seen
            seen.add(other)
            child = node.add(
                f"[dim]{escape(assoc)} {arrow}[/] {_tree_label(other, shown.get(other))}"
                + (" [dim](shown above)[/]" if again else "")
            )
            if not again:
                grow(child, other)

    trees = []
    for start in starts:
        seen.add(start)
        tree = Tree(_tree_label(start, shown.get(start)))
        grow(tree, start)
        trees.append(tree)
    return trees


def lineage_arns(starts: list[str], result: LineageResult) -> list[str]:
    """The starts, vertices and edge ends of a result, once each, in that order."""
    return list(
        dict.fromkeys(
            starts
            + [v.arn for v in result.vertices]
            + [a for e in result.edges for a in (e.source_arn, e.destination_arn)]
        )
    )


def print_lineage(
    starts: list[str],
    result: LineageResult,
    shown: dict[str, VertexLabel],
    fmt: str,
    direction: str,
) -> None:
    """``result`` in ``fmt``; ``shown``: the labels of :func:`lineage_arns` (unused for JSON)."""
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    arns = lineage_arns(starts, result)
    if fmt in ("dot", "mermaid"):
        lines = (_dot if fmt == "dot" else _mermaid)(starts, arns, result, shown)
        sys.stdout.write("\n".join(lines) + "\n")
        return
    if fmt == "tree":
        for tree in lineage_trees(starts, result, shown, direction):
            out.print(tree)
    else:
        table = PlainTable("LineageType", "Type", "Name / SourceUri", "Arn", title="Vertices")
        for v in result.vertices:
            info = shown.get(v.arn)
            name = info.label.split(" ", 1)[-1] if info else ""
            table.add_row(v.lineage_type, v.type or "", name, v.arn)
        print_table(table)
        if result.edges:
            edges = PlainTable("Source", "AssociationType", "Destination", title="Edges")
            for e in result.edges:
                src, dst = shown.get(e.source_arn), shown.get(e.destination_arn)
                edges.add_row(
                    src.label if src else e.source_arn,
                    e.association_type or "",
                    dst.label if dst else e.destination_arn,
                )
            print_table(edges)
    notes = [f"{len(result.vertices)} vertices, {len(result.edges)} edges"]
    if result.truncated_by_depth:
        notes.append("cut short by --max-depth: a deeper query returns more")
    if result.next_token:
        notes.append(f"more: --next-token {result.next_token}")
    out.print("[dim]" + "; ".join(notes) + "[/]")
