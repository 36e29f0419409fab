"""Claims verdicts and rendering; atomic output writing."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from headstart.claims import (Claim, bound_verdict, check_frame, equivalence_verdict, git_commit, provenance,
                              render_markdown, render_rst, shown_in, summary_table, to_frame)
from headstart.io import atomic_path, markdown_table, read_table, write_table


@pytest.mark.parametrize("lo, hi, verdict", [
    (-0.01, 0.01, "supported"),        # inside the margin
    (0.03, 0.05, "not supported"),     # wholly above
    (-0.09, -0.02, "not supported"),   # wholly below (touching the margin counts as outside)
    (-0.01, 0.04, "inconclusive"),     # straddles the margin
    (math.nan, 0.0, "inconclusive"),
])
def test_equivalence_verdict(lo, hi, verdict):
    assert equivalence_verdict(lo, hi, 0.02) == verdict


def test_bound_verdict():
    assert bound_verdict(1e-6, 1e-5) == "supported"
    assert bound_verdict(2e-5, 1e-5) == "not supported"
    assert bound_verdict(math.nan, 1e-5) == "not supported"
    assert bound_verdict(0.0, 0.0) == "supported"


def test_claim_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        Claim("s", "c", "stat", 1.0, 0.0, 2.0, 3, "probably", "rule")


def test_render_one_line_per_claim_with_statistic_ci_n_and_verdict():
    df = to_frame([
        Claim("reference", "A holds", "max |Δ|", 3e-7, np.nan, np.nan, 4, "supported", "worst ≤ 1e-05"),
        Claim("reference", "B holds", "mean Δ", 0.004, -0.001, 0.009, 3, "inconclusive", "CI within ±0.02"),
    ])
    md = render_markdown(check_frame(df, "test"))
    lines = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert len(lines) == 2
    assert "max |Δ| = 3.00e-07" in lines[0] and "n = 4" in lines[0] and "**supported**" in lines[0]
    assert "[-0.001, 0.009]" in lines[1] and "**inconclusive**" in lines[1]


def test_the_ledger_says_what_kind_of_run_it_came_from():
    """A smoke run's ledger says at the top that it is a wiring check, with generated data; the
    role, what n counts and the Holm-adjusted p appear on the line."""
    df = to_frame([Claim("up", "C holds", "Δ", -0.2, -0.3, -0.1, 3, "supported", "CI < 0", n_what="replicates",
                         p_value=0.01, p_holm=0.02), Claim("up", "D holds", "Δ", 0.1, -0.1, 0.3, 3, "inconclusive",
                                                           "CI < 0", role="exploratory")])
    smoke = render_markdown(check_frame(df, "t"), scale="smoke", synthetic=True)
    assert "SMOKE — a wiring check, not a result" in smoke and "built-in generated data" in smoke
    assert "paper config" in render_markdown(df) and "SMOKE" not in render_markdown(df)
    c, d = [ln for ln in smoke.splitlines() if ln.startswith("- ")]
    assert "n = 3 replicates, p_holm = 0.02" in c and "*(exploratory)*" in d and "p_holm" not in d
    with pytest.raises(ValueError, match="scale"):
        render_markdown(df, scale="big")


def test_the_ledger_summarises_each_study_and_links_each_claim_to_its_figure():
    claims = [Claim("growth", "E", "Δ", 1.0, 0.5, 1.5, 3, "supported", "CI > 0"),
              Claim("growth", "F", "Δ", 0.0, -1.0, 1.0, 3, "inconclusive", "CI > 0", role="exploratory"),
              Claim("jepa", "G", "Δ", -1.0, -1.5, -0.5, 3, "not supported", "CI > 0", where="jepa_probe.md")]
    claims = shown_in(claims, "growth_diffs.png")
    assert [c.where for c in claims] == ["growth_diffs.png", "growth_diffs.png", "jepa_probe.md"]
    table = summary_table(to_frame(claims)).set_index("study")
    assert table.loc["growth"].tolist() == [2, 1, 0, 1, 1, 1]      # claims, supported, not, inconclusive, conf., expl.
    assert table.loc["jepa"].tolist() == [1, 0, 1, 0, 1, 0]
    assert table.loc["all"].tolist() == [3, 1, 1, 1, 2, 1]
    md = render_markdown(to_frame(claims), scale="smoke",
                         provenance={"scale": "smoke", "commit": "`abc`", "device": "`cpu`", "written": "today"})
    assert "**Provenance.** scale: smoke · commit: `abc` · device: `cpu` · written: today" in md
    assert "| growth | 2 | 1 | 0 | 1 | 1 | 1 |" in md and "| **all** | 3 | 1 | 1 | 1 | 2 | 1 |" in md
    lines = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert lines[0].endswith("Shown in [growth_diffs.png](growth_diffs.png).")
    assert lines[2].endswith("Shown in [jepa_probe.md](jepa_probe.md).")
    # the summary comes before the verdict rule and the claims
    assert md.index("| **all** |") < md.index("**Verdict rule.**") < md.index("## growth")


def test_provenance_names_the_commit_or_why_there_is_none(tmp_path):
    import subprocess

    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "f.txt").write_text("1")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_commit(tmp_path) == f"`{head}`"
    (tmp_path / "f.txt").write_text("2")
    assert git_commit(tmp_path) == f"`{head}` + uncommitted changes"
    prov = provenance("smoke", True, "cpu", tmp_path)
    assert prov["scale"] == "smoke" and prov["data"] == "built-in generated" and prov["commit"].startswith(f"`{head}`")
    assert prov["device"].startswith("`cpu`") and prov["written"].endswith("UTC")


def test_check_frame_names_the_file_and_missing_columns():
    with pytest.raises(ValueError, match=r"bad\.csv.*verdict"):
        check_frame(pd.DataFrame({"study": ["x"]}), "bad.csv")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_table_round_trip(tmp_path, suffix):
    df = pd.DataFrame({"step": [0, 1], "metric": ["a", "b"], "value": [0.5, 1.5]})
    write_table(df, tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(read_table(tmp_path / f"t{suffix}"), df)


def test_unknown_table_format_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"t\.xlsx"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx")
    assert not (tmp_path / "t.xlsx").exists()


def test_markdown_table_escapes_pipes():
    md = markdown_table(pd.DataFrame({"a|b": ["x|y"], "v": [0.123456]}))
    assert "x\\|y" in md and "0.1235" in md


def test_the_rst_ledger_renders_like_the_markdown_one():
    """render_rst: the same ledger as reStructuredText for the report's first page: the run and its
    provenance, the summary as a table, one line per claim with its text shown literally (|Δ|,
    p_holm, * and _ are not markup) and a named reference to the result that shows it."""
    docutils_core = pytest.importorskip("docutils.core")
    claims = [Claim("growth", "E holds *here*", "max |Δ| of x_", 1.0, 0.5, 1.5, 3, "supported", "CI > 0",
                    n_what="replicates", p_value=0.01, p_holm=0.02, where="growth_diffs.png"),
              Claim("growth", "F", "Δ", 0.0, -1.0, 1.0, 3, "inconclusive", "CI > 0", role="exploratory"),
              Claim("jepa", "G", "Δ", -1.0, -1.5, -0.5, 3, "not supported", "CI > 0", where="jepa_probe.md")]
    df = to_frame(claims)
    prov = {"scale": "smoke", "commit": "`abc`", "device": "`cpu`", "written": "today"}
    rst = render_rst(df, scale="smoke", synthetic=True, provenance=prov)
    # the including page's sections and the report's link targets (snakemake adds one per result)
    page = ("Title\n=====\n\nLedger\n------\n\n" + rst + "\n\n.. _growth_diffs.png: javascript:show('g')\n"
            ".. _jepa_probe.md: javascript:show('j')\n")
    html = docutils_core.publish_parts(page, writer="html",      # the writer Snakemake's report uses
                                       settings_overrides={"report_level": 2, "halt_level": 5})["html_body"]
    assert "system-message" not in html, html
    assert "SMOKE — a wiring check" in html and 'literal">abc<' in html and 'literal">cpu<' in html
    assert html.count("<tr>") == 1 + 3      # header, growth, jepa, all
    assert "E holds *here*: max |Δ| of x_ = 1, 95% CI [0.5, 1.5], n = 3 replicates, p_holm = 0.02" in html
    assert "<em>(exploratory)</em>" in html and "<strong>not supported</strong>" in html
    assert html.count('href="javascript:show(') == 2
    assert "growth_diffs.png</a>" in html and "jepa_probe.md</a>" in html
    assert [ln for ln in rst.splitlines() if ln.startswith("~")] == ["~~~~~~", "~~~~"]
    # the same claims, line for line, as the Markdown ledger
    md = render_markdown(df, scale="smoke", synthetic=True, provenance=prov)
    assert sum(ln.startswith("- ") for ln in rst.splitlines()) == sum(ln.startswith("- ") for ln in md.splitlines()) == 3
    with pytest.raises(ValueError, match="scale"):
        render_rst(df, scale="big")
