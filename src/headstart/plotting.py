"""One figure style for the whole paper: seaborn 'ticks' on a colour-blind palette, PNG + PDF."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: workflow jobs never open windows
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from headstart.io import atomic_path  # noqa: E402

PALETTE = "colorblind"


def use_style() -> None:
    sns.set_theme(context="paper", style="ticks", palette=PALETTE, font_scale=1.1)
    plt.rcParams.update({
        "figure.dpi": 150,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
        "svg.hashsalt": "headstart",
    })


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.0, height: float = 3.0, **kw):
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save(fig, *paths: str | os.PathLike) -> None:
    """Save one figure to each path (format from the suffix), atomically, then close it."""
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            # metadata without dates keeps the PDF byte-stable across re-runs
            meta = {"CreationDate": None} if path.suffix == ".pdf" else None
            fig.savefig(tmp, format=path.suffix.lstrip("."), metadata=meta)
    plt.close(fig)


def scale_banner(fig, scale: str) -> None:
    """Mark a figure of a reduced run (smoke, CPU slice) as such, in red above the panels; the paper
    config's figures carry no banner."""
    from headstart.claims import SCALES

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    if scale != "paper":
        fig.suptitle(SCALES[scale].split(".")[0].replace("**", ""), fontsize=9, color="firebrick", y=1.0, va="bottom")


def legend_outside(ax, handles=None, labels=None, title: str | None = None, fontsize: float = 8):
    """The legend of a figure to the right of ``ax`` (its rightmost panel), outside every panel, so
    that it never covers data: ``handles``/``labels`` as given, else ``ax``'s own; a legend that
    ``ax`` already has (seaborn draws one inside) is replaced, keeping its title. Returns the legend
    (None when there is nothing to label)."""
    old = ax.get_legend()
    if title is None and old is not None and old.get_title().get_text():
        title = old.get_title().get_text()
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if old is not None:
        old.remove()
    if not handles:
        return None
    return ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     frameon=False, fontsize=fontsize, title_fontsize=fontsize)
