"""benchmarks.report on recorded campaigns: medians, paired ratios, skips, markdown, plot.

``data/ceo-2026-12-01.jsonl`` is the campaign behind issue 18's table, as the shared
harness recorded it (its peers file, then its hypercorn file with ``trio_rooms_hc``
renamed to ``trio_rooms_hypercorn``, the name ``nox -s bench`` gives that transport).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from benchmarks import plot, report, report_cli

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "ceo-2026-12-01.jsonl"
ROOT = Path(__file__).parent.parent.parent


def _figure(key: str) -> report.Figure:
    return next(f for f in report.FIGURES if f.key == key)


def _value(summary: report.Summary, key: str, server: str) -> str:
    cell = summary.cell(_figure(key), server)
    assert cell is not None, (key, server)
    return report.fmt(cell.median)


def _line(server: str, scenario: str, rep: int, cpu: float, **extra: object) -> str:
    """A result line shaped like the harness's, for s3, with only what the report reads."""
    line: dict[str, object] = {
        "server": server,
        "scenario": scenario,
        "ok": True,
        "round_trips_per_s": 1000.0,
        "measure": {"server_cpu_us_per_round_trip": cpu, "loadgen_cores": 0.5},
        "campaign": {"rep": rep, "attempt": 1},
        "contended": False,
    }
    line.update(extra)
    return json.dumps(line)


@pytest.fixture(scope="module")
def recorded() -> report.Summary:
    return report.summarize(report.load(RECORDED))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # issue 18's table, column by column: trio_rooms, websockets, picows, Node ws, Bun
        ("s1_cpu", ["0.76", "7.54", "5.14", "6.19", "0.31"]),
        ("s3_cpu", ["48.4", "27.7", "13.2", "12.2", "8.80"]),
        ("s3_rate", ["19,644", "34,634", "66,403", "78,550", "79,777"]),
        ("s2_p99", ["7.75", "7.13", "6.63", "7.99", "6.09"]),
        ("s4_cpu", ["0.692", "0.224", "0.134", "0.138", "0.024"]),
        ("s4_rate", ["1,402", "3,339", "4,291", "4,209", "5,075"]),
        ("s4_rss", ["27.0", "13.4", "28.5", "8.60", "2.94"]),
    ],
)
def test_recorded_campaign_gives_the_issue_table(
    recorded: report.Summary, key: str, expected: list[str]
) -> None:
    """The recorded campaign's medians are the figures issue 18 published from it."""
    servers = ["trio_rooms", "websockets", "picows", "node_ws", "bun"]
    assert [_value(recorded, key, server) for server in servers] == expected


def test_hypercorn_ratios_are_paired_by_round(recorded: report.Summary) -> None:
    """The hypercorn transport's ratios to the raw ASGI peer are issue 18's 1.00x, 0.82x, 1.22x."""
    ratios = {
        key: recorded.ratio(_figure(key), "trio_rooms_hypercorn", "hypercorn_trio")
        for key in ("s1_rate", "s3_rate", "s3_cpu")
    }
    assert {key: f"{r:.2f}" for key, r in ratios.items() if r is not None} == {
        "s1_rate": "1.00",
        "s3_rate": "0.82",
        "s3_cpu": "1.22",
    }


def test_a_rate_is_marked_where_the_load_generator_saturates(recorded: report.Summary) -> None:
    """A rate measured with the load generator at its limit is marked; the others are not."""
    cells = [recorded.cell(_figure("s1_rate"), s) for s in ("trio_rooms", "websockets")]
    assert [cell.saturated if cell else None for cell in cells] == [False, True]
    row = next(r for r in report.values_table(recorded).splitlines() if r.startswith("| s1 deliv"))
    assert "130,215 †" in row
    assert "1,273,795 |" in row
    assert report.notes(recorded).startswith("† the load generator was the limit")


def test_paired_ratio_is_the_median_of_each_rounds_ratio() -> None:
    """A ratio pairs the runs of one round, not the medians of all rounds."""
    lines = [
        _line("trio_rooms", "s3", 1, 10.0),
        _line("websockets", "s3", 1, 20.0),
        _line("trio_rooms", "s3", 2, 30.0),
        _line("websockets", "s3", 2, 30.0),
        _line("trio_rooms", "s3", 3, 100.0),
        _line("websockets", "s3", 3, 25.0),
    ]
    summary = report.summarize(report.parse(lines))
    # rounds: 0.5, 1.0, 4.0 -> 1.0; a ratio of medians would be 30 / 25 = 1.2
    assert summary.ratio(_figure("s3_cpu"), "trio_rooms", "websockets") == 1.0


def test_a_contended_round_counts_only_when_no_round_is_clean() -> None:
    """A clean retry replaces its contended attempt, and contended rounds drop beside clean ones."""
    lines = [
        _line("trio_rooms", "s3", 1, 99.0, contended=True),
        _line("trio_rooms", "s3", 1, 10.0),
        _line("trio_rooms", "s3", 2, 99.0, contended=True),
        _line("trio_rooms", "s3", 3, 20.0),
        _line("websockets", "s3", 1, 50.0, contended=True),
        _line("websockets", "s3", 2, 70.0, contended=True),
        _line("trio_rooms", "s3", 4, 1.0, ok=False),
    ]
    summary = report.summarize(report.parse(lines))
    ours = summary.cell(_figure("s3_cpu"), "trio_rooms")
    theirs = summary.cell(_figure("s3_cpu"), "websockets")
    assert (ours, theirs) == (
        report.Cell(median=15.0, rounds=2, saturated=False),
        report.Cell(median=60.0, rounds=2, saturated=False),
    )
    assert (summary.counted, summary.contended) == (4, 2)
    assert "2 of the 4 runs counted were contended" in report.notes(summary)


def test_a_peer_not_built_or_failing_the_check_is_skipped_with_its_reason() -> None:
    """Skip records and failed protocol checks become skipped columns with their reasons."""
    lines = [
        json.dumps({"record": "campaign", "date": "2026-12-01", "machine": "2 cores"}),
        json.dumps({"record": "skipped", "server": "bun", "reason": "no AVX2"}),
        json.dumps({"server": "picows", "scenario": "check", "ok": False, "failures": ["pong"]}),
        json.dumps({"server": "trio_rooms", "scenario": "check", "ok": True}),
        _line("trio_rooms", "s3", 1, 10.0),
    ]
    campaign = report.parse(lines)
    summary = report.summarize(campaign)
    assert summary.servers == ("trio_rooms", "picows", "bun")
    assert summary.skipped == {"bun": "no AVX2", "picows": "failed the protocol check: ['pong']"}
    row = next(r for r in report.values_table(summary).splitlines() if r.startswith("| s3 echo: s"))
    assert row == "| s3 echo: server CPU µs per round trip | 10.0 | skipped | skipped |"
    assert "Skipped `bun`: no AVX2." in report.notes(summary)
    assert "†" not in report.notes(summary)  # no rate was measured at the load generator's limit
    assert report.markdown(campaign, summary).startswith("# `nox -s bench`, 2026-12-01\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "line 2: expected a JSON object"),
        ("{not json", "line 2: expected a JSON object"),
        ('{"scenario": "s1"}', "line 2: a result line needs a server and a scenario"),
    ],
)
def test_a_line_that_is_no_result_is_an_error_naming_it(text: str, message: str) -> None:
    """A line that is not a result or record is a ReportError with its line number."""
    with pytest.raises(report.ReportError, match=re.escape(message)):
        report.parse([_line("trio_rooms", "s3", 1, 10.0), text])


def test_replace_section_swaps_only_the_generated_lines() -> None:
    """The README's lines outside the markers stay as they are."""
    old = f"## Performance\n\nintro\n\n{report.README_BEGIN}\nold\n{report.README_END}\n\nrest\n"
    new_section = f"{report.README_BEGIN}\nnew\n{report.README_END}"
    new = report.replace_section(old, new_section)
    assert new == f"## Performance\n\nintro\n\n{new_section}\n\nrest\n"


@pytest.mark.parametrize(
    "readme",
    [
        "no markers",
        f"{report.README_BEGIN}\n{report.README_BEGIN}\n{report.README_END}",
        f"{report.README_END}\n{report.README_BEGIN}",
    ],
)
def test_replace_section_without_one_pair_of_markers_is_an_error(readme: str) -> None:
    """A README without exactly one ordered pair of markers is refused, not rewritten."""
    with pytest.raises(report.ReportError, match="expected"):
        report.replace_section(readme, "section")


def test_plot_draws_every_ratio_into_a_png(recorded: report.Summary, tmp_path: Path) -> None:
    """The plot is a readable PNG image of the ratios."""
    import matplotlib.image

    path = tmp_path / "ratios.png"
    plot.plot(recorded, path, title="recorded")
    image = matplotlib.image.imread(path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert image.shape[0] > 400
    assert image.shape[1] > 800


def test_main_writes_the_report_plot_and_readme_section(tmp_path: Path) -> None:
    """The command line writes the markdown and PNG and links both from the README."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.README_BEGIN}\n{report.README_END}\n\nend\n")
    results = tmp_path / "results"
    results.mkdir()
    md, png = results / "r.md", results / "r.png"
    report_cli.main([str(RECORDED), "--md", str(md), "--png", str(png), "--readme", str(readme)])
    text = readme.read_text()
    assert "![trio_rooms ÷ peers](results/r.png)" in text
    assert "[results/r.md](results/r.md)" in text
    assert text.endswith(f"{report.README_END}\n\nend\n")
    assert report.ratio_table(report.summarize(report.load(RECORDED))) in md.read_text()
    assert png.stat().st_size > 0


def test_the_readme_section_is_the_one_its_campaign_gives() -> None:
    """The README's generated section is what report.py makes of the JSON lines it links."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(report.README_BEGIN), readme.index(report.README_END)
    section = readme[start : end + len(report.README_END)]
    links: Mapping[str, str] = {
        kind: re.findall(rf"\((benchmarks/results/[^)]+\.{kind})\)", section)[0]
        for kind in ("md", "png")
    }
    campaign = report.load(ROOT / (links["md"].removesuffix(".md") + ".jsonl"))
    expected = report.readme_section(
        campaign, report.summarize(campaign), links["md"], links["png"]
    )
    assert section == expected
    assert (ROOT / links["png"]).is_file()
