"""The claims ledger of a finished smoke run (results/paper/claims.{md,csv}): every claim links to a
figure or table that exists beside it, the summary counts agree with the claims, and the ledger
records the run it came from. Reads the run of tests/test_rerun.py's fixture: slow."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from headstart.claims import PROVENANCE, ROLES
from headstart.stats import VERDICTS
from test_rerun import finished  # noqa: F401  (the module's fixture: a finished smoke run)

pytestmark = pytest.mark.slow


def test_every_claim_links_to_an_existing_figure_or_table_and_the_summary_adds_up(finished):  # noqa: F811
    paper = finished / "results/paper"
    csv = pd.read_csv(paper / "claims.csv", keep_default_na=False)
    md = (paper / "claims.md").read_text()
    assert len(csv) > 0
    assert set(csv["study"]) == {"reference", "growth", "up", "jepa", "blotch"}
    missing = csv[csv["where"] == ""]
    assert missing.empty, f"claims without a figure or table: {missing['claim'].tolist()}"
    for where in sorted(set(csv["where"])):
        assert (paper / where).is_file() and (paper / where).stat().st_size > 0, where
        assert f"[{where}]({where})" in md
    # the summary table: one row per study and one for all, each agreeing with the claims
    for study, g in [*csv.groupby("study"), ("all", csv)]:
        label = "**all**" if study == "all" else study
        row = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", md, re.M)
        assert row, study
        counts = [int(x) for x in row.group(1).split(" | ")]
        expected = [len(g), *[int((g["verdict"] == v).sum()) for v in VERDICTS],
                    *[int((g["role"] == r).sum()) for r in ROLES]]
        assert counts == expected, (study, counts, expected)
    # provenance: the smoke scale and generated data, in the header and in every row of the CSV
    assert "**Provenance.** scale: smoke · data: built-in generated · commit: " in md
    for k in PROVENANCE:
        assert csv[f"run_{k}"].nunique() == 1 and csv[f"run_{k}"].iloc[0], k
    assert csv["run_scale"].iloc[0] == "smoke"
