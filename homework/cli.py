"""Command line: ``python -m homework.cli release | grade DIR | validate | export-sources DEST``.

release         write the student notebooks into build/homework/release/ (the Chinese edition into
                build/homework/release/zh/) and check that no solution and no hidden check is in them
grade DIR       grade DIR/<student>/hwNN/hwNN.ipynb, each in a bubblewrap sandbox; write grades.csv,
                feedback.csv, feedback.html, notes.csv (default into build/homework/graded/)
validate        check every instructor notebook: the format, full marks for its solutions,
                zero for its unfilled release, in English and in Chinese
export-sources  copy (--move: move) the instructor notebooks out of the repository, e.g. into a
                private repository; then pass --source DEST or set COURSE_HOMEWORK_SOURCE=DEST

Exit codes: 0 when everything was graded cleanly; 1 when something needs the instructor's
attention (a skipped or ambiguous folder, an unreadable notebook, a homework in the wrong
format); 2 when the run could not start (no sandbox, a refused --out).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from homework import BUILD_DIR, CELL_TIMEOUT, NOTEBOOK_TIMEOUT, SOURCE_ENV


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m homework.cli", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    sub = parser.add_subparsers(dest="command", required=True)
    source_help = f"folder of instructor notebooks hwNN/hwNN.ipynb (default ${SOURCE_ENV}, else notebooks/homework/source)"
    r = sub.add_parser("release", help="write the student release and check it hides what it must")
    r.add_argument("--source", type=Path, help=source_help)
    g = sub.add_parser("grade", help="grade a folder of submissions in sandboxes")
    g.add_argument("submissions", type=Path, help="folder holding <student>/hwNN/hwNN.ipynb")
    g.add_argument("--out", type=Path, default=None,
                   help=f"report folder (default {BUILD_DIR / 'graded'}); refused unless new, empty or made by the grader")
    g.add_argument("--source", type=Path, help=source_help)
    g.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="sandboxes at a time (default 2)")
    g.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT,
                   help=f"seconds per cell or probe (default {CELL_TIMEOUT})")
    g.add_argument("--notebook-timeout", type=float, default=NOTEBOOK_TIMEOUT,
                   help=f"seconds per sandbox run of a notebook (default {NOTEBOOK_TIMEOUT})")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="UNSAFE: run notebooks without bubblewrap, with your rights; your own trusted notebooks only")
    v = sub.add_parser("validate", help="check the format, full marks for the solutions, zero for the release")
    v.add_argument("--source", type=Path, help=source_help)
    v.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT)
    v.add_argument("--unsafe-no-sandbox", action="store_true", help="UNSAFE: without bubblewrap (trusted notebooks)")
    e = sub.add_parser("export-sources", help="copy or move the instructor notebooks out of the repository")
    e.add_argument("dest", type=Path, help="a folder outside the repository, e.g. a private repository")
    e.add_argument("--move", action="store_true", help="delete them from the repository after copying")
    e.add_argument("--source", type=Path, help=source_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from homework.sandbox import SandboxUnavailable

    try:
        if args.command == "release":
            from homework.release import release

            release(source=args.source)
            print(f"student notebooks in {BUILD_DIR / 'release'} (Chinese: {BUILD_DIR / 'release' / 'zh'}): "
                  "no hidden checks, no solutions, no outputs")
            return 0
        if args.command == "export-sources":
            from homework.release import export_sources

            export_sources(args.dest, move=args.move, source=args.source)
            return 0
        if args.command == "validate":
            from homework.validate import validate

            problems = validate(source=args.source, cell_timeout=args.cell_timeout,
                                unsafe_no_sandbox=args.unsafe_no_sandbox)
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        from homework.grade import grade

        report = grade(args.submissions, args.out, source=args.source, cell_timeout=args.cell_timeout,
                       notebook_timeout=args.notebook_timeout, jobs=args.jobs,
                       unsafe_no_sandbox=args.unsafe_no_sandbox)
    except SandboxUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # GradeError, release problems
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(report.table())
    print()
    for (student, name), notes in sorted(report.notes.items()):
        for note in notes:
            print(f"note: {student}/{name}: {note}")
    for item in report.attention:
        print(f"WARNING: {item}")
    print(f"grades:   {report.out / 'grades.csv'}")
    print(f"feedback: {report.out / 'feedback.csv'}, {report.out / 'feedback.html'}, {report.out / 'notes.csv'}")
    return 1 if report.attention else 0


if __name__ == "__main__":
    sys.exit(main())
