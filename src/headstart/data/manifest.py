"""Render the provenance records of the prepared data sets (data/<name>/provenance.json) as the
paper's data table, results/paper/data.md."""
from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v).replace("|", "\\|")


def render_manifest(records: list[dict]) -> str:
    lines = ["# Data", "", "Where each prepared data set came from (data/<name>/provenance.json).", ""]
    for rec in sorted(records, key=lambda r: r.get("name", "")):
        lines.append(f"## {rec.get('name', '?')}")
        lines.append("")
        files = rec.get("files", {})
        for key, value in rec.items():
            if key in ("name", "files"):
                continue
            lines.append(f"- {key}: {_fmt(value)}")
        if files:
            lines += ["", "| file | bytes | sha256 |", "|---|---:|---|"]
            items = files.items() if isinstance(files, dict) else ((f.get("name", f.get("path", "?")), f) for f in files)
            for name, info in items:
                info = info if isinstance(info, dict) else {}
                lines.append(f"| {name} | {_fmt(info.get('bytes', ''))} | `{info.get('sha256', '')}` |")
        lines.append("")
    return "\n".join(lines)
