"""Every full run's verdicts on the issue's targets, kept in the repo: how often each is met.

    .venv/bin/python -m bench.runs [--write]

On a shared 2-core machine one run can meet or miss a target by the machine's noise alone, so
a single RESULTS.md cannot say whether a target is met reliably. Each full ``make bench``
appends one line to ``bench/runs.jsonl`` (when, which code, every target's verdict), and
``bench/RUNS.md`` shows every run on record, target by target.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import msgspec

from .report import Document, Verdict, table, targets

BENCH = Path(__file__).resolve().parent
LOG = BENCH / "runs.jsonl"
PAGE = BENCH / "RUNS.md"
# What a run itself writes: changes to these do not make the measured code "dirty".
_OUTPUTS = ("results.json", "results-quick.json", "results.png", "RESULTS.md", LOG.name, PAGE.name)


class Run(msgspec.Struct, frozen=True):
    date: str
    code: str  # the commit measured (short hash), "-dirty" with uncommitted changes
    seconds: float
    target_rounds: int  # rounds at 100 connections, where the round-trip targets are
    verdicts: list[Verdict]


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
        verdicts=targets(document["results"]),
    )


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
    """RUNS.md: for each target, how many runs met it and every run's figure."""
    by_target: dict[str, list[Verdict | None]] = {}
    for number, run in enumerate(runs):
        for verdict in run.verdicts:
            by_target.setdefault(verdict.target, [None] * len(runs))[number] = verdict
    rows = []
    for target, verdicts in by_target.items():
        judged = sorted(
            (v for v in verdicts if v is not None and v.value is not None),
            key=lambda v: v.value or 0.0,
        )
        met = sum(1 for v in judged if v.met)
        middle = judged[(len(judged) - 1) // 2 : len(judged) // 2 + 1]
        median = " to ".join(v.brief for v in middle) or "-"
        figures = ", ".join(
            "-" if v is None else (v.brief if v.met is not False else f"**{v.brief}**")
            for v in verdicts
        )
        rows.append([target, f"{met} of {len(judged)}", median, figures])
    listed = [
        [number, run.date, run.code, f"{run.seconds:.0f}", run.target_rounds]
        for number, run in enumerate(runs, start=1)
    ]
    return f"""# The targets across full runs

One run of `make bench` on a shared 2-core machine can meet or miss a target by the machine's
noise alone, so `RESULTS.md` (the latest run) cannot say whether a target is met reliably. Every
full run appends its verdicts to `bench/runs.jsonl`; this page shows them all
(`python -m bench.runs --write` regenerates it). A missed target's figure is in bold; the
median run is the middle one by that target's figure (with an even number of runs, the two
middle ones). The log starts with the first run whose round trips were paired with their own
round's ceiling (commit 0450720); runs before it computed the ratios otherwise.

{table("Targets", ["target", "met in", "median run", "each run, first to last"], rows)}
{table("Runs", ["run", "date", "code measured", "suite s", "rounds at 100"], listed)}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.name}")
    args = parser.parse_args()
    print(write_page() if args.write else page(load()))


if __name__ == "__main__":
    main()
