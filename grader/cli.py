"""`grader` command line: grade submissions, check reference solutions.

Exit codes: 0 grading completed (whatever the scores), 2 a usage error, 3 an assignment
could not be graded (bad assignment files or a failing reference), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from grader import __version__
from grader.config import list_assignments, load_assignment
from grader.errors import GraderError, UsageError
from grader.grade import AssignmentGrader, GradeReport, collect_submissions
from grader.reference import compare_golden, environment_label, record_golden
from grader.report import write_reports
from grader.runs import GradeOptions
from grader.sandbox import INSTALL_HINT, remove_leftovers, sandbox_problem

EXIT_OK, EXIT_USAGE, EXIT_NOT_GRADABLE, EXIT_INTERRUPTED = 0, 2, 3, 130


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="grader", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def common(p):
        p.add_argument("--course", type=Path, default=Path("."),
                       help="folder holding assignments/ and reference/ (default: current folder)")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where notebooks run; auto picks cuda when a GPU is visible (default: auto)")
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="kernels run at once (default: number of cores)")
        p.add_argument("--cache-dir", type=Path, default=Path(".grader-cache"),
                       help="where reference runs are cached (default: .grader-cache)")
        p.add_argument("--no-sandbox", action="store_true",
                       help="run notebooks without isolation (only where no sandbox can be made); "
                            "every feedback file and gradebook row then says so")

    grade = commands.add_parser("grade", help="grade submissions of one assignment")
    grade.add_argument("assignment", help="assignment name (a folder under assignments/)")
    grade.add_argument("paths", nargs="+", type=Path, metavar="SUBMISSION_OR_DIR",
                       help="notebooks, or folders whose every file is a submission")
    grade.add_argument("--out", type=Path, default=Path("grades"),
                       help="output folder; results go to OUT/<assignment>/ (default: grades)")
    common(grade)

    check = commands.add_parser("check-reference",
                                help="require full marks from each reference solution and compare golden values")
    check.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    check.add_argument("--record-golden", action="store_true",
                       help="write this environment's reference values into reference/<name>.golden.json")
    common(check)
    return parser


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return requested


async def use_sandbox(args, required: bool) -> bool:
    """Whether kernels run sandboxed. Students' notebooks must be, unless --no-sandbox;
    the course's own reference notebooks run unsandboxed where no sandbox can be made."""
    if args.no_sandbox:
        return False
    problem = await sandbox_problem()
    if problem is None:
        await remove_leftovers()
        return True
    if required:
        raise UsageError(f"cannot sandbox the notebooks: {problem}. To fix: {INSTALL_HINT}")
    _say(f"note: reference notebooks run without the sandbox ({problem})")
    return False


def options_from(args, sandbox: bool) -> GradeOptions:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not (args.course / "assignments").is_dir():
        raise UsageError(f"{args.course / 'assignments'} does not exist; run from the course folder or pass --course")
    return GradeOptions(device=resolve_device(args.device), cache_dir=args.cache_dir.resolve(), workers=args.workers,
                        sandbox=sandbox)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def grade_command(args) -> int:
    options = options_from(args, await use_sandbox(args, required=True))
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    grader = AssignmentGrader(load_assignment(args.course, args.assignment), options)
    files = collect_submissions(args.paths)
    _say(f"{args.assignment}: {len(files)} file(s), device {options.device}, {options.workers} worker(s)"
         + ("" if options.sandbox else ", NOT sandboxed"))
    await grader.prepare()
    done = []

    def progress(report: GradeReport) -> None:
        done.append(report)
        _say(f"[{len(done)}/{len(files)}] {report.student}: {report.score:g}/{report.max_score:g} "
             f"{report.status} ({report.seconds:.1f} s)")

    reports = await grader.grade_all(files, progress)
    write_reports(args.out, grader.assignment, reports)
    counts = {s: sum(r.status == s for r in reports) for s in ("ok", "error", "timeout", "invalid", "grader-error")}
    mean = sum(r.score for r in reports) / len(reports) if reports else 0.0
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{args.assignment}: {len(reports)} graded ({summary or 'nothing to grade'}); "
          f"mean {mean:.2f}/{grader.max_score:g}; gradebook {args.out / args.assignment / 'gradebook.csv'}")
    return EXIT_OK


async def check_reference_command(args) -> int:
    options = options_from(args, await use_sandbox(args, required=False))
    names = args.assignments or list_assignments(args.course)
    if not names:
        raise UsageError(f"no assignments under {args.course / 'assignments'}")
    failures = 0
    for name in names:
        grader = AssignmentGrader(load_assignment(args.course, name), options)
        try:
            await grader.prepare()
            report = await grader.grade_file(grader.assignment.reference_notebook, grader.assignment.reference_notebook.parent)
        except GraderError as exc:
            print(f"{name}: FAIL: {exc}")
            failures += 1
            continue
        problems = []
        if report.status != "ok" or report.score != report.max_score:
            lost = [f"{c.label}: {c.message}" for c in report.checks if c.status != "pass"]
            problems.append(f"reference scored {report.score:g}/{report.max_score:g} ({report.status}) "
                            + "; ".join(lost + ([report.reason] if report.reason else [])))
        if args.record_golden and not problems:
            record_golden(grader.assignment, grader.reference, options.device)
        differences = compare_golden(grader.assignment, grader.reference, options.device)
        environment = environment_label(options.device)
        if differences is None:
            golden = f"no golden values recorded for {environment} (add them with --record-golden)"
        else:
            problems += differences
            golden = f"golden values for {environment} match" if not differences else "golden values differ"
        if problems:
            failures += 1
            print(f"{name}: FAIL ({golden})")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{name}: ok, full marks {report.score:g}/{report.max_score:g}; {golden}")
    return EXIT_NOT_GRADABLE if failures else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill cleans up like Ctrl-C does
    try:
        args = build_parser().parse_args(argv)
        command = grade_command if args.command == "grade" else check_reference_command
        return asyncio.run(command(args))
    except UsageError as exc:
        print(f"grader: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GraderError as exc:
        print(f"grader: cannot grade: {exc}", file=sys.stderr)
        return EXIT_NOT_GRADABLE
    except KeyboardInterrupt:
        print("grader: interrupted; nothing half-written was left behind, run the same command again",
              file=sys.stderr)
        return EXIT_INTERRUPTED
