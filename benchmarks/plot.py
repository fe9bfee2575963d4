"""The plot of a ``nox -s bench`` campaign's ratios (matplotlib, imported here only)."""

# matplotlib annotates its methods' **kwargs with nothing, so pyright strict sees every call
# as partially unknown; the arguments passed here are all typed.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from benchmarks import report


def plot(summary: report.Summary, path: Path, *, title: str) -> None:
    """Draw every ratio of ``summary`` as horizontal bars on a log scale into the PNG ``path``.

    Each figure is a group with one bar per comparison; the line at 1x is parity.
    """
    figures = list(reversed(report.FIGURES))  # the first figure on top
    height = 0.8 / len(report.COMPARISONS)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.75 * len(figures)), layout="constrained")
    for index, (subject, baseline) in enumerate(report.COMPARISONS):
        ys: list[float] = []
        xs: list[float] = []
        for row, figure in enumerate(figures):
            ratio = summary.ratio(figure, subject, baseline)
            if ratio is not None and ratio > 0:
                ys.append(row - 0.4 + height * (len(report.COMPARISONS) - index - 0.5))
                xs.append(ratio)
        if not xs:  # a peer not in this campaign: no bars, no legend entry
            continue
        bars = ax.barh(
            ys, xs, height=height, color=f"C{index}", label=f"{report.short(subject)} ÷ {baseline}"
        )
        ax.bar_label(bars, labels=[f"{x:.2g}" for x in xs], fontsize=6, padding=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.set_yticks(
        list(range(len(figures))),
        [f"{f.label}\n({report.direction(f)})" for f in figures],
        fontsize=8,
    )
    ax.set_xlabel("ratio (log scale; 1x = parity)")
    ax.set_title(title, fontsize=9)
    fig.legend(fontsize=7, loc="outside lower center", ncols=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tick(value: float, _position: float | None) -> str:
    return f"{value:g}"  # 0.1, 1, 10 rather than 10^-1
