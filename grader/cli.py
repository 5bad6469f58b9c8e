"""`grader` command line: grade submissions, check reference solutions.

Exit codes: 0 grading completed (whatever the scores), 2 a usage error, 3 an assignment
could not be graded (bad assignment files or a failing reference), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from grader import __version__
from grader.config import list_assignments, load_assignment
from grader.errors import GraderError, UsageError
from grader.grade import AssignmentGrader, collect_submissions
from grader.report.i18n import LANGUAGES, course_language
from grader.report.manual import MANUAL_FILE, merge_manual, write_manual_files
from grader.report.progress import AssignmentSummary, Progress, summary_table
from grader.check.reference import compare_golden, environment_label, record_golden
from grader.author.release import build_release
from grader.report.write import write_reports
from grader.run.runs import GradeOptions
from grader.run.sandbox import INSTALL_HINT, limits_in_force, remove_leftovers, sandbox_problem
from grader.report.summary import RunSettings

EXIT_OK, EXIT_USAGE, EXIT_NOT_GRADABLE, EXIT_INTERRUPTED = 0, 2, 3, 130
CLUSTER_CONNECT_TIMEOUT = 10  # seconds


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
                       help="where reference runs and finished grades are cached (default: .grader-cache)")
        p.add_argument("--no-sandbox", action="store_true",
                       help="run notebooks without isolation (only where no sandbox can be made); "
                            "every feedback file and gradebook row then says so")

    def grading(p):
        p.add_argument("--out", type=Path, default=Path("grades"),
                       help="output folder; results go to OUT/<assignment>/ (default: grades)")
        p.add_argument("--force", action="store_true",
                       help="re-grade every file, even those whose result for the same content is cached")
        p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="send each submission to this Dask distributed scheduler instead of grading here")
        p.add_argument("--lang", choices=LANGUAGES,
                       help="language of feedback and summary (default: `lang` in the course's course.toml, else en)")
        common(p)

    grade = commands.add_parser("grade", help="grade submissions of one assignment")
    grade.add_argument("assignment", help="assignment name (a folder under assignments/)")
    grade.add_argument("paths", nargs="+", type=Path, metavar="SUBMISSION_OR_DIR",
                       help="notebooks, or folders whose every file is a submission")
    grading(grade)

    course = commands.add_parser("grade-course", help="grade SUBMISSIONS/<assignment>/ for every assignment there")
    course.add_argument("--submissions", type=Path, default=Path("submissions"),
                        help="folder with one sub-folder per assignment (default: submissions)")
    grading(course)

    check = commands.add_parser("check-reference",
                                help="require full marks from each reference solution and compare golden values")
    check.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    check.add_argument("--record-golden", action="store_true",
                       help="write this environment's reference values into reference/<name>.golden.json")
    common(check)

    release = commands.add_parser("release", help="build the folder students receive, checked free of hidden material")
    release.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    release.add_argument("--out", type=Path, default=Path("dist"),
                         help="releases go to OUT/<assignment>/ (default: dist)")
    release.add_argument("--course", type=Path, default=Path("."),
                         help="folder holding assignments/ and reference/ (default: current folder)")

    one = commands.add_parser("grade-one", help=argparse.SUPPRESS)  # a cluster worker's task
    one.add_argument("assignment")
    one.add_argument("filename", help="the submission's file name; its bytes come on stdin")
    common(one)
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
    print(f"note: reference notebooks run without the sandbox ({problem})", file=sys.stderr)
    return False


async def options_from(args, sandbox_required: bool = True) -> GradeOptions:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not (args.course / "assignments").is_dir():
        raise UsageError(f"{args.course / 'assignments'} does not exist; run from the course folder or pass --course")
    return GradeOptions(device=resolve_device(args.device), cache_dir=args.cache_dir.resolve(), workers=args.workers,
                        force=getattr(args, "force", False), sandbox=await use_sandbox(args, sandbox_required))


async def grade_assignment(name: str, paths: list[Path], args, options: GradeOptions, client=None) -> AssignmentSummary:
    """Grade the files under `paths`, write every output, and summarise."""
    started = time.monotonic()
    grader = AssignmentGrader(load_assignment(args.course, name), options)
    files = collect_submissions(paths)
    where = f"cluster {args.scheduler}" if client else f"{options.workers} worker(s)"
    print(f"{name}: {len(files)} file(s), device {options.device}, {where}"
          + (f"; {limits_in_force(os.geteuid() == 0)}" if options.sandbox else ", NOT sandboxed"),
          file=sys.stderr, flush=True)
    progress = Progress(name, len(files))
    await grader.prepare()  # also on a cluster: the feedback plots the reference's loss curve
    remote = None
    if client:
        from grader.distributed import remote_grader

        remote = remote_grader(client, grader, args.course)
    reports = await grader.grade_all(files, progress.update, remote)
    progress.finish()
    folder = args.out / name
    merge_manual(reports, grader.assignment.manual, folder / MANUAL_FILE)
    write_manual_files(folder, reports, grader.assignment.manual, grader.assignment.title or name)
    import torch

    settings = RunSettings(datetime.datetime.now().astimezone().isoformat(timespec="seconds"), __version__,
                           torch.__version__, options.device, options.sandbox, options.workers,
                           args.lang or course_language(args.course))
    for unwritten in write_reports(args.out, grader.assignment, reports, settings, grader.reference_losses):
        grader.forget(unwritten)
    return AssignmentSummary.of(name, reports, time.monotonic() - started, str(folder / "gradebook.csv"))


async def with_optional_cluster(args, work):
    if not args.scheduler:
        return await work(None)
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs the 'distributed' package: pip install distributed") from None
    try:
        client = await Client(args.scheduler, asynchronous=True, timeout=CLUSTER_CONNECT_TIMEOUT)
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
    async with client:
        return await work(client)


async def grade_command(args) -> int:
    options = await options_from(args)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    summary = await with_optional_cluster(
        args, lambda client: grade_assignment(args.assignment, args.paths, args, options, client))
    print(summary.line())
    return EXIT_OK


async def grade_course_command(args) -> int:
    options = await options_from(args)
    if not args.submissions.is_dir():
        raise UsageError(f"no such folder: {args.submissions}")
    names = sorted(p.name for p in args.submissions.iterdir() if p.is_dir())
    unknown = sorted(set(names) - set(list_assignments(args.course)))
    if unknown:
        raise UsageError(f"{args.submissions} has folders for unknown assignments: {', '.join(unknown)}")

    async def grade_each(client):
        return [await grade_assignment(name, [args.submissions / name], args, options, client) for name in names]

    summaries = await with_optional_cluster(args, grade_each)
    print(summary_table(summaries))
    return EXIT_OK


async def grade_one_command(args) -> int:
    """Grade a notebook given on stdin and print its report as JSON (a cluster task)."""
    options = await options_from(args)
    grader = AssignmentGrader(load_assignment(args.course, args.assignment), options)
    await grader.prepare()
    with tempfile.TemporaryDirectory(prefix="grader-one-") as folder:
        path = Path(folder) / Path(args.filename).name
        path.write_bytes(sys.stdin.buffer.read())
        report = await grader.grade_file(path, path.parent)
    print(json.dumps(report.to_json()))
    return EXIT_OK


async def check_reference_command(args) -> int:
    options = await options_from(args, sandbox_required=False)
    names = args.assignments or list_assignments(args.course)
    if not names:
        raise UsageError(f"no assignments under {args.course / 'assignments'}")
    failures = 0
    for name in names:
        grader = AssignmentGrader(load_assignment(args.course, name), options)
        try:
            await grader.prepare()
            reference = grader.assignment.reference_notebook
            report = await grader.grade_file(reference, reference.parent)
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


async def release_command(args) -> int:
    names = args.assignments or list_assignments(args.course)
    if not names:
        raise UsageError(f"no assignments under {args.course / 'assignments'}")
    for name in names:
        folder, secrets = build_release(load_assignment(args.course, name), args.out)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        print(f"{name}: {folder} ({', '.join(files)}); none of {secrets} hidden texts and values found in it")
    return EXIT_OK


COMMANDS = {"grade": grade_command, "grade-course": grade_course_command, "grade-one": grade_one_command,
            "check-reference": check_reference_command, "release": release_command}


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill cleans up like Ctrl-C does
    try:
        args = build_parser().parse_args(argv)
        return asyncio.run(COMMANDS[args.command](args))
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
