"""Claims: one line per claim of the study, with its statistic, 95% CI, n and verdict.

Each study's report rule writes ``results/<study>/claims.csv`` with the columns of :class:`Claim`;
the ``claims`` rule gathers them into ``results/paper/claims.{md,csv}``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import pandas as pd

from headstart.stats import VERDICTS, holm  # noqa: E402  (one definition of the verdict words)

#: A claim's role: confirmatory claims of one study form one family, decided with the Holm
#: correction over their p-values (:func:`apply_holm`); exploratory claims keep the per-claim 95% rule.
ROLES = ("confirmatory", "exploratory")


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
    n_what: str = ""            # what n counts, e.g. "replicates (pre-training runs)"
    p_value: float = math.nan   # p of the claim's test: one-sided in the claimed direction, two-sided for a
                                # claim that two arms differ (NaN: a bound or an estimate, no test)
    p_holm: float = math.nan    # Holm-adjusted p within the study's confirmatory family (NaN: not in it)
    role: str = "confirmatory"  # confirmatory | exploratory (ROLES)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.claim!r}: verdict {self.verdict!r} not one of {VERDICTS}")
        if self.role not in ROLES:
            raise ValueError(f"claim {self.claim!r}: role {self.role!r} not one of {ROLES}")


def apply_holm(claims: list[Claim], alpha: float = 0.05) -> list[Claim]:
    """Decide a study's confirmatory claims as one family with the Holm step-down correction.

    Every confirmatory claim with a finite ``p_value`` (one-sided, or two-sided for a claim of a difference) enters the family; its Holm-adjusted
    p is stored in ``p_holm`` and its verdict stays 'supported' only when its per-claim verdict is
    (the 95% CI on the claimed side) and ``p_holm < alpha``; 'not supported' (the CI wholly on the
    other side) stays; anything else is 'inconclusive'. Exploratory claims and claims without a
    p-value (bounds, worst cases) keep their per-claim verdict."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    family = [i for i, c in enumerate(claims) if c.role == "confirmatory" and math.isfinite(c.p_value)]
    if not family:
        return list(claims)
    adjusted = holm([claims[i].p_value for i in family])
    out = list(claims)
    for i, p in zip(family, adjusted):
        c = claims[i]
        v = c.verdict if c.verdict == "not supported" else (
            "supported" if c.verdict == "supported" and p < alpha else "inconclusive")
        out[i] = replace(c, p_holm=float(p), verdict=v,
                         rule=f"{c.rule}; Holm-adjusted p < {alpha:g} over the {len(family)} confirmatory "
                              f"claims of the study (p_Holm = {p:.3g})")
    return out


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


#: What each run scale means for a reader of the ledger (config ``scale``).
SCALES = {
    "paper": "**Run: paper config.** The verdicts below are results of the configured experiments.",
    "smoke": ("**Run: SMOKE — a wiring check, not a result.** Tiny models, few steps and built-in data; "
              "the verdicts below say only that every claim is computed end to end. Do not cite them."),
    "cpu-slice": ("**Run: CPU slice — a reduced run, not the paper config.** Smaller models and fewer steps "
                  "than the paper config; read the verdicts as evidence at that scale only."),
}


def render_markdown(df: pd.DataFrame, scale: str = "paper", synthetic: bool = False) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    data = (" **Data: built-in generated data sets, not the real corpora.**" if synthetic else "")
    lines = [
        "# Claims",
        "",
        SCALES[scale] + data,
        "",
        "One line per claim: the statistic, its 95% confidence interval (— where a worst case over",
        "all units is the statistic), n and what it counts, and the verdict with the rule that decided it.",
        "",
        "**Verdict rule.** A directional claim is *supported* when its 95% CI lies wholly on the claimed",
        "side, *not supported* when it lies wholly on the other side, *inconclusive* otherwise; bound",
        "claims compare a worst case with a stated bar. **Multiple testing:** the *confirmatory* claims",
        "of one study form one family; each carries a p-value (one-sided in the claimed direction, two-sided",
        "for a claim that two arms differ), and a confirmatory claim is",
        "supported only when its Holm-adjusted p (p_holm) is below α = 0.05 (family-wise error rate",
        "within the study). *Exploratory* claims are decided one by one and are marked so.",
        "",
    ]
    for study, group in df.groupby("study", sort=False):
        lines.append(f"## {study}")
        lines.append("")
        for c in group.itertuples(index=False):
            ci = "—" if c.ci_low != c.ci_low else f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"
            role = getattr(c, "role", "confirmatory")
            p = getattr(c, "p_holm", math.nan)
            ptxt = f", p_holm = {_num(p)}" if isinstance(p, float) and p == p else ""
            tag = " *(exploratory)*" if role == "exploratory" else ""
            what = getattr(c, "n_what", "")
            what = f" {what}" if isinstance(what, str) and what else ""
            lines.append(
                f"- {c.claim}{tag}: {c.statistic} = {_num(c.value)}, 95% CI {ci}, n = {c.n}{what}{ptxt}"
                f" — **{c.verdict}** ({c.rule})"
            )
        lines.append("")
    return "\n".join(lines)
