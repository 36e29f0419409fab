"""Claims: one line per claim of the study, with its statistic, 95% CI, n and verdict.

Each study's report rule writes ``results/<study>/claims.csv`` with the columns of :class:`Claim`;
the ``claims`` rule gathers them into ``results/paper/claims.{md,csv}``.
"""
from __future__ import annotations

import datetime
import math
import os
import re
import subprocess
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
    where: str = ""             # the figure or table that shows it: a file name under results/paper/

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.claim!r}: verdict {self.verdict!r} not one of {VERDICTS}")
        if self.role not in ROLES:
            raise ValueError(f"claim {self.claim!r}: role {self.role!r} not one of {ROLES}")


def shown_in(claims: list[Claim], where: str) -> list[Claim]:
    """The claims, each without a ``where`` now shown in ``where`` (a file name under results/paper/)."""
    return [c if c.where else replace(c, where=where) for c in claims]


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


#: Provenance keys of the ledger (:func:`provenance`), in the order they are shown.
PROVENANCE = ("scale", "data", "commit", "device", "written")


def git_commit(repo: str | os.PathLike = ".") -> str:
    """The checked-out commit of ``repo`` (short hash, "+ uncommitted changes" when tracked files
    differ from it), or a sentence saying why there is none (not a git checkout, no git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except FileNotFoundError:
        return "unknown (git not installed)"
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "unknown (not a git checkout)"
    return f"`{head}`" + (" + uncommitted changes" if dirty else "")


def provenance(scale: str, synthetic: bool, device: str, repo: str | os.PathLike = ".") -> dict[str, str]:
    """What the ledger records about the run it came from (:data:`PROVENANCE`): the config's scale,
    the data (built-in or real), the commit, the device setting and the machine's accelerator, and
    when the ledger was written (UTC)."""
    import torch

    accel = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return {"scale": {"paper": "paper config", "smoke": "smoke", "cpu-slice": "CPU slice"}[scale],
            "data": "built-in generated" if synthetic else "real (data_dir)",
            "commit": git_commit(repo),
            "device": f"`{device}` ({accel} where the ledger was written)",
            "written": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per study (in ledger order) and in all: how many claims, and how many of them are supported,
    not supported and inconclusive; how many are confirmatory and exploratory."""
    rows = []
    for study, g in [*df.groupby("study", sort=False), ("all", df)]:
        row = {"study": study, "claims": len(g)}
        row.update({v: int((g["verdict"] == v).sum()) for v in VERDICTS})
        role = g["role"] if "role" in g else pd.Series(["confirmatory"] * len(g))
        row.update({r: int((role == r).sum()) for r in ROLES})
        rows.append(row)
    return pd.DataFrame(rows, columns=["study", "claims", *VERDICTS, *ROLES])


def _summary_markdown(df: pd.DataFrame) -> list[str]:
    table = summary_table(df)
    head = ["study", "claims", *VERDICTS, *ROLES]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in table.itertuples(index=False):
        cells = [f"**{r[0]}**" if r[0] == "all" else r[0], *map(str, r[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


#: The ledger's explanation of a line and of the verdict rule, as text both Markdown and
#: reStructuredText read the same way (``*emphasis*``, ``**strong**``; no code spans or links).
HOW_TO_READ = (
    "One line per claim: the statistic, its 95% confidence interval (— where a worst case over\n"
    "all units is the statistic), n and what it counts, and the verdict with the rule that decided it."
)
VERDICT_RULE = (
    "**Verdict rule.** A directional claim is *supported* when its 95% CI lies wholly on the claimed\n"
    "side, *not supported* when it lies wholly on the other side, *inconclusive* otherwise; bound\n"
    "claims compare a worst case with a stated bar. **Multiple testing:** the *confirmatory* claims\n"
    "of one study form one family; each carries a p-value (one-sided in the claimed direction, two-sided\n"
    "for a claim that two arms differ), and a confirmatory claim is\n"
    "supported only when its Holm-adjusted p (p_holm) is below α = 0.05 (family-wise error rate\n"
    "within the study). *Exploratory* claims are decided one by one and are marked so."
)


def _run_lines(scale: str, synthetic: bool, provenance: dict[str, str] | None) -> tuple[str, str]:
    """The ledger's first two paragraphs (Markdown): what kind of run it is, and its provenance ('' if none)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    data = (" **Data: built-in generated data sets, not the real corpora.**" if synthetic else "")
    prov = ""
    if provenance:
        prov = "**Provenance.** " + " · ".join(f"{k}: {provenance[k]}" for k in PROVENANCE if k in provenance)
    return SCALES[scale] + data, prov


def _claim_line(c, text=lambda s: s) -> tuple[str, str]:
    """One claim as a line (without the link to its figure, with ``text`` applied to its free
    text), and the file name of the figure or table that shows it ('' if none)."""
    ci = "—" if c.ci_low != c.ci_low else f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"
    role = getattr(c, "role", "confirmatory")
    p = getattr(c, "p_holm", math.nan)
    ptxt = f", p_holm = {_num(p)}" if isinstance(p, float) and p == p else ""
    tag = " *(exploratory)*" if role == "exploratory" else ""
    what = getattr(c, "n_what", "")
    what = f" {text(what)}" if isinstance(what, str) and what else ""
    where = getattr(c, "where", "")
    line = (f"{text(c.claim)}{tag}: {text(c.statistic)} = {_num(c.value)}, 95% CI {ci}, n = {c.n}{what}{text(ptxt)}"
            f" — **{c.verdict}** ({text(c.rule)}).")
    return line, where if isinstance(where, str) else ""


def render_markdown(df: pd.DataFrame, scale: str = "paper", synthetic: bool = False,
                    provenance: dict[str, str] | None = None) -> str:
    """The ledger: the run's scale and provenance, a summary per study, the verdict rule, then one
    line per claim with a link to the figure or table that shows it (``where``, a file beside the
    ledger in results/paper/)."""
    run, prov = _run_lines(scale, synthetic, provenance)
    lines = ["# Claims", "", run, "", *([prov, ""] if prov else []), *_summary_markdown(df), "",
             HOW_TO_READ, "", VERDICT_RULE, ""]
    for study, group in df.groupby("study", sort=False):
        lines.append(f"## {study}")
        lines.append("")
        for c in group.itertuples(index=False):
            line, where = _claim_line(c)
            lines.append(f"- {line}" + (f" Shown in [{where}]({where})." if where else ""))
        lines.append("")
    return "\n".join(lines)


_RST_SPECIAL = re.compile(r"([\\`*_|<>\[\]])")


def _rst_escape(text: str) -> str:
    """Free text as reStructuredText shows it literally: every inline-markup character escaped."""
    return _RST_SPECIAL.sub(r"\\\1", text)


def _rst_from_markdown_spans(text: str) -> str:
    """The ledger's own Markdown prose (bold, emphasis, code spans) as reStructuredText."""
    return re.sub(r"`([^`]+)`", r"``\1``", text)


def render_rst(df: pd.DataFrame, scale: str = "paper", synthetic: bool = False,
               provenance: dict[str, str] | None = None, heading: str = "~") -> str:
    """The ledger of :func:`render_markdown` as a reStructuredText fragment, for the first page of
    the Snakemake report (report/workflow.rst includes it): no title of its own; one section per
    study underlined with ``heading`` (the including document's next level); each claim's figure or
    table as a named reference (```growth_diffs.png`_``), which the report resolves to that result."""
    run, prov = _run_lines(scale, synthetic, provenance)
    table = summary_table(df)
    head = ["study", "claims", *VERDICTS, *ROLES]
    lines = [_rst_from_markdown_spans(run), "", *([_rst_from_markdown_spans(prov), ""] if prov else []),
             ".. list-table:: Verdicts per study", "   :header-rows: 1", ""]
    for row in [head, *table.itertuples(index=False)]:
        cells = [f"**{v}**" if v == "all" else _rst_escape(str(v)) for v in row]
        lines += [f"   * - {cells[0]}", *[f"     - {v}" for v in cells[1:]]]
    lines += ["", HOW_TO_READ, "", VERDICT_RULE, ""]
    for study, group in df.groupby("study", sort=False):
        lines += [study, heading * max(len(study), 4), ""]
        for c in group.itertuples(index=False):
            line, where = _claim_line(c, _rst_escape)
            lines.append(f"- {line}" + (f" Shown in `{where}`_." if where else ""))
        lines.append("")
    return "\n".join(lines)
