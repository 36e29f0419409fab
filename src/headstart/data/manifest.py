"""Render the provenance records of the prepared data sets (data/<name>/provenance.json) as the
paper's data table, results/paper/data.md."""
from __future__ import annotations

import json
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "`" + json.dumps(v, sort_keys=True) + "`"
    return str(v).replace("|", "\\|")


def _file_table(title: str, files: dict, cols: list[str]) -> list[str]:
    lines = ["", f"{title}:", "", "| " + " | ".join(["file"] + cols) + " |",
             "|" + "|".join(["---"] * (len(cols) + 1)) + "|"]
    for name, info in files.items():
        info = info if isinstance(info, dict) else {}
        cells = [f"`{info[c]}`" if c == "sha256" and c in info else _fmt(info.get(c, "")) for c in cols]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return lines


def render_manifest(records: list[dict]) -> str:
    lines = ["# Data", "", "Where each prepared data set came from (data/<name>/provenance.json).", ""]
    for rec in sorted(records, key=lambda r: r.get("name", "")):
        lines.append(f"## {rec.get('name', '?')}")
        lines.append("")
        for key, value in rec.items():
            if key not in ("name", "files", "inputs"):
                lines.append(f"- {key}: {_fmt(value)}")
        if rec.get("inputs"):
            lines += _file_table("Inputs", rec["inputs"], ["source", "path", "bytes", "prefix", "sha256", "note"])
        if rec.get("files"):
            lines += _file_table("Prepared files", rec["files"], ["bytes", "sha256"])
        lines.append("")
    return "\n".join(lines)
