"""Every full run's verdicts on the issue's targets, kept in the repo: how often each is met.

    .venv/bin/python -m bench.runs [--write]

On a shared 2-core machine one run can meet or miss a target by the machine's noise alone, so
a single run cannot say whether a target is met reliably. Each full ``make bench`` appends one
line to ``bench/runs.jsonl`` (when, which code, every target's verdict and the figure it was
judged on), and ``bench/RUNS.md`` shows every run on record, target by target, judged under
today's rules (bench/targets.py), with the verdict on their median.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import msgspec

from .report import Document, table
from .targets import RULES, RULES_VERSION, Run, met_cell, standings, verdicts

BENCH = Path(__file__).resolve().parent
LOG = BENCH / "runs.jsonl"
PAGE = BENCH / "RUNS.md"
# What a run itself writes: changes to these do not make the measured code "dirty".
_OUTPUTS = ("results.json", "results-quick.json", "results.png", "RESULTS.md", LOG.name, PAGE.name)


def measured_code(repo: Path = BENCH.parent) -> str:
    """The commit the working tree is at, and whether the code in it has been changed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *(f":(exclude)bench/{name}" for name in _OUTPUTS),
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if changed else head


def run_of(document: Document) -> Run:
    return Run(
        date=document["date"],
        code=document.get("code", "unknown"),
        seconds=round(document["seconds"], 1),
        target_rounds=document["plan"]["target_rounds"],
        verdicts=verdicts(document["results"]),
        rules=RULES_VERSION,
    )


def on_record(document: Document) -> list[Run]:
    """The runs on record, and ``document``'s run last unless it is on record already."""
    runs = load()
    this = run_of(document)
    if not any(run.date == this.date and run.code == this.code for run in runs):
        runs.append(this)
    return runs


def record(document: Document) -> None:
    """Append a full run's verdicts to the log and write RUNS.md from the whole log."""
    with LOG.open("ab") as out:
        out.write(msgspec.json.encode(run_of(document)) + b"\n")
    write_page()


def write_page() -> str:
    text = page(load())
    PAGE.write_text(text)
    return text


def load() -> list[Run]:
    if not LOG.exists():
        return []
    decoder = msgspec.json.Decoder(Run)
    return [decoder.decode(line) for line in LOG.read_bytes().splitlines() if line.strip()]


def page(runs: list[Run]) -> str:
    """RUNS.md: for each target, every run's figure, how many met it, the median's verdict."""
    rows = []
    for standing in standings(runs):
        rule = RULES.get(standing.key)
        judged = rule is not None and rule.ok is not None
        met_in = f"{standing.met_count} of {standing.measured}" if judged else "not judged"
        if not standing.measured:
            met_in = "never measured"
        figures = ", ".join(
            "-" if v is None else (v.brief if v.met is not False else f"**{v.brief}**")
            for v in standing.each
        )
        rows.append([standing.target, met_in, standing.brief, met_cell(standing.met), figures])
    listed = [
        [number, run.date, run.code, f"{run.seconds:.0f}", run.target_rounds, run.rules]
        for number, run in enumerate(runs, start=1)
    ]
    by_target = table(
        "Targets",
        ["target", "met in", "median", "met by the median", "each run, first to last"],
        rows,
    )
    by_run = table(
        "Runs", ["run", "date", "code measured", "suite s", "rounds at 100", "rules"], listed
    )
    return f"""# The targets across full runs

One run of `make bench` on a shared 2-core machine can meet or miss a target by the machine's
noise alone, so each target is judged on the median of every full run on record, and
`RESULTS.md` shows the latest run's figure beside that verdict. Every full run appends its
verdicts, with the figures they were judged on, to `bench/runs.jsonl`; this page shows them all
(`python -m bench.runs --write` regenerates it). A missed target's figure is in bold; "median"
is the median of the runs' figures (with an even number of runs, the mean of the two middle
ones), and "met by the median" is the target's verdict. The log starts with the first run whose
round trips were paired with their own round's ceiling (commit 0450720); runs before it
computed the ratios otherwise.

Every figure on this page is judged under today's rules, the targets as the first column words
them, whichever rules its run was recorded under (the runs' last column):

- rules 1: fsync-off round trips at >= 75% of the ceiling; the login storm judged with fsync
  always, the only mode it was measured in.
- rules 2 (today's): fsync-off round trips at >= 70% of the ceiling, since the hop to the
  state-owner task that the design requires costs about 4 us of the 20 or so a message the
  server spends beyond the ceiling; the login storm judged with fsync off, where it measures
  what it is about (hashing must not starve the event loop), its fsync always figure shown for
  information. The storm figures that runs under rules 1 recorded are
  fsync always ones, and stand in that row; those runs measured no fsync-off storm.

{by_target}
{by_run}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.name}")
    args = parser.parse_args()
    print(write_page() if args.write else page(load()))


if __name__ == "__main__":
    main()
