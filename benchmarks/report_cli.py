"""``python -m benchmarks.report_cli FILE.jsonl [--md F] [--png F] [--readme README.md]``.

The command line of `benchmarks.report` (the table) and `benchmarks.plot` (the plot),
apart from both so that neither imports the other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import OURS, load, markdown, readme_section, replace_section, summarize


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The ratio table and plot of a campaign.")
    parser.add_argument("jsonl", type=Path, help="the campaign's JSON lines")
    parser.add_argument("--md", type=Path, help="write the markdown report here")
    parser.add_argument("--png", type=Path, help="draw the ratios here (needs matplotlib)")
    parser.add_argument("--readme", type=Path, help="refresh this README's generated section")
    args = parser.parse_args(argv)
    jsonl: Path = args.jsonl
    md: Path | None = args.md
    png: Path | None = args.png
    readme: Path | None = args.readme
    campaign = load(jsonl)
    summary = summarize(campaign)
    report = markdown(campaign, summary)
    print(report)
    if md is not None:
        md.write_text(report + "\n", encoding="utf-8")
    if png is not None:
        from benchmarks.plot import plot  # matplotlib: heavy, and only the bench session has it

        meta = campaign.meta
        title = f"{OURS} ÷ peers, `nox -s bench`, {meta.get('date')}, {meta.get('rounds')} round(s)"
        plot(summary, png, title=f"{title}\n{meta.get('machine')}")
    if readme is not None:
        if md is None or png is None:
            parser.error("--readme links the report and the plot: give --md and --png too")
        base = readme.resolve().parent
        section = readme_section(
            campaign,
            summary,
            md.resolve().relative_to(base).as_posix(),
            png.resolve().relative_to(base).as_posix(),
        )
        readme.write_text(
            replace_section(readme.read_text(encoding="utf-8"), section), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
