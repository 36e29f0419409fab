"""Claims: one line per claim of the study, with its statistic, 95% CI, n and verdict.

Each study's report rule writes ``results/<study>/claims.csv`` with the columns of :class:`Claim`;
the ``claims`` rule gathers them into ``results/paper/claims.{md,csv}``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import pandas as pd

from headstart.stats import VERDICTS  # noqa: E402  (one definition of the verdict words)


@dataclass(frozen=True)
class Claim:
    study: str
    claim: str          # the claim, in words
    statistic: str      # what was measured, e.g. "max |Δ logits|" or "mean paired Δ bpb"
    value: float
    ci_low: float       # NaN where no interval applies (e.g. a worst case over all units)
    ci_high: float
    n: int              # independent units the statistic rests on (configs, seeds, repeats)
    verdict: str
    rule: str           # how the verdict was decided, e.g. "max ≤ 1e-05" or "95% CI within ±0.02"

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.claim!r}: verdict {self.verdict!r} not one of {VERDICTS}")


COLUMNS = [f.name for f in fields(Claim)]


def bound_verdict(worst: float, bar: float) -> str:
    """A bound claim ("the difference never exceeds bar"): the worst case over all units decides."""
    if not math.isfinite(worst):
        return "not supported"
    return "supported" if worst <= bar else "not supported"


def equivalence_verdict(ci_low: float, ci_high: float, margin: float) -> str:
    """Equivalence within ±margin (two one-sided tests at the CI's level): supported when the whole
    CI lies inside (-margin, margin), not supported when it lies wholly outside, else inconclusive."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    if -margin < ci_low and ci_high < margin:
        return "supported"
    if ci_low >= margin or ci_high <= -margin:
        return "not supported"
    return "inconclusive"


def to_frame(claims: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([asdict(c) for c in claims], columns=COLUMNS)


def check_frame(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: claims table lacks columns {missing} (expected {COLUMNS})")
    bad = sorted(set(df["verdict"]) - set(VERDICTS))
    if bad:
        raise ValueError(f"{source}: unknown verdicts {bad} (expected one of {VERDICTS})")
    return df[COLUMNS]


def _num(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:.3g}" if (x == 0 or 1e-3 <= abs(x) < 1e4) else f"{x:.2e}"


def render_markdown(df: pd.DataFrame) -> str:
    lines = [
        "# Claims",
        "",
        "One line per claim: the statistic, its 95% confidence interval (— where a worst case over",
        "all units is the statistic), n, and the verdict with the rule that decided it.",
        "",
    ]
    for study, group in df.groupby("study", sort=False):
        lines.append(f"## {study}")
        lines.append("")
        for c in group.itertuples(index=False):
            ci = "—" if c.ci_low != c.ci_low else f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"
            lines.append(
                f"- {c.claim}: {c.statistic} = {_num(c.value)}, 95% CI {ci}, n = {c.n}"
                f" — **{c.verdict}** ({c.rule})"
            )
        lines.append("")
    return "\n".join(lines)
