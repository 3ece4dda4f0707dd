"""Command line: ``python -m homework.cli release | grade DIR | validate`` (``./course homework ...``).

release    generate the student notebooks into build/homework/release/ and check that
           no hidden test and no solution is in them
grade DIR  autograde DIR/<student>/hwNN/hwNN.ipynb; write grades.csv, feedback.csv and
           feedback.html (default into build/homework/graded/) and print a score table
validate   run every instructor notebook and check that it scores full marks
           (with --release, also that every unfilled student notebook scores zero)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from homework import BUILD_DIR, CELL_TIMEOUT, NOTEBOOK_TIMEOUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m homework.cli", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student release and check it hides what it must")
    g = sub.add_parser("grade", help="autograde a folder of submissions")
    g.add_argument("submissions", type=Path, help="folder holding <student>/hwNN/hwNN.ipynb")
    g.add_argument("--out", type=Path, default=None, help=f"report folder (default {BUILD_DIR / 'graded'})")
    g.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT,
                   help=f"seconds before a cell is interrupted (default {CELL_TIMEOUT})")
    g.add_argument("--notebook-timeout", type=int, default=NOTEBOOK_TIMEOUT,
                   help=f"seconds for a whole notebook (default {NOTEBOOK_TIMEOUT})")
    v = sub.add_parser("validate", help="check that every instructor notebook scores full marks")
    v.add_argument("--release", action="store_true", help="also check that unfilled student notebooks score zero")
    v.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "release":
        from homework.release import release
        try:
            release()
        except RuntimeError as err:
            print(f"release failed: {err}", file=sys.stderr)
            return 1
        print(f"student notebooks in {BUILD_DIR / 'release'}: no hidden tests, no solutions, no outputs")
        return 0
    if args.command == "grade":
        from homework.grade import grade
        report = grade(args.submissions, args.out, cell_timeout=args.cell_timeout,
                       notebook_timeout=args.notebook_timeout)
        print()
        print(report.table())
        print()
        for (student, name), notes in sorted(report.notes.items()):
            for note in notes:
                print(f"note: {student}/{name}: {note}")
        for (student, name), error in sorted(report.failures.items()):
            print(f"FAILED: {student}/{name}: {error}")
        for folder in report.skipped:
            print(f"SKIPPED: folder {folder!r} is not a usable student id")
        print(f"grades:   {report.out / 'grades.csv'}")
        print(f"feedback: {report.out / 'feedback.csv'}, {report.out / 'feedback.html'}")
        return 1 if report.failures or report.skipped else 0
    from homework.validate import validate
    problems = validate(release_too=args.release, cell_timeout=args.cell_timeout)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
