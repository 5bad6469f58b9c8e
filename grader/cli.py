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
from collections import Counter
from pathlib import Path

from grader import __version__
from grader.config import PUBLIC_VARIANT, list_assignments, load_assignment
from grader.errors import GraderError, UsageError
from grader.author.assign import assign, check_assigned
from grader.author.new import scaffold
from grader.author.probe import probe
from grader.author.autograder import UNSANDBOXED_IN_CONTAINER, build_autograder, submitted_notebook
from grader.fsutil import write_atomic
from grader.grade import AssignmentGrader, GradeReport, collect_submissions
from grader.report.canvas import fill_canvas
from grader.report.csvfile import write_csv
from grader.report.exports import gradescope_failure, gradescope_results, lms_csv, lms_scores
from grader.report.i18n import LANGUAGES, Text, both, course_language
from grader.report.lmsids import read_roster
from grader.report.manual import MANUAL_FILE, TaFile, merge_manual, read_manual_grades, write_manual_files
from grader.report.progress import AssignmentSummary, Progress, summary_table
from grader.check.reference import compare_golden, environment_label, record_golden
from grader.author.proof import prove_fairness
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
                                help="require full marks from each reference solution, prove the assignment's "
                                     "fairness (forms.toml: equivalent forms, known mistakes, untouched and "
                                     "hard-coded copies) and compare golden values")
    check.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    check.add_argument("--record-golden", action="store_true",
                       help="write this environment's reference values into reference/<name>.golden.json")
    check.add_argument("--reference-only", action="store_true",
                       help="grade only the reference solution, without the fairness proof (quicker, while writing)")
    common(check)

    assign_ = commands.add_parser("assign", help="write each student notebook from its reference solution "
                                                "(solutions between ### BEGIN/END SOLUTION replaced)")
    assign_.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    assign_.add_argument("--check", action="store_true",
                         help="write nothing; fail with a cell-by-cell diff where a committed student notebook "
                              "differs from what its reference generates")
    assign_.add_argument("--course", type=Path, default=Path("."),
                         help="folder holding assignments/ and reference/ (default: current folder)")

    new = commands.add_parser("new", help="scaffold an assignment (source notebook, assignment.toml, checks, forms, "
                                          "a test) that passes `make test` as generated")
    new.add_argument("name", help="the assignment's name (lower-case letters, digits, _)")
    new.add_argument("--course", type=Path, default=Path("."),
                     help="folder holding assignments/ and reference/ (default: current folder)")

    probe_ = commands.add_parser("probe", help="how far equivalent forms, mistakes, float64 and ±1 epoch land from "
                                              "the reference; with --seed, whether that hidden seed keeps the task")
    probe_.add_argument("assignment")
    probe_.add_argument("--seed", type=int, help="a candidate hidden seed to try")
    common(probe_)

    release = commands.add_parser("release", help="build the folder students receive, checked free of hidden material")
    release.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    release.add_argument("--out", type=Path, default=Path("dist"),
                         help="releases go to OUT/<assignment>/ (default: dist)")
    release.add_argument("--course", type=Path, default=Path("."),
                         help="folder holding assignments/ and reference/ (default: current folder)")

    autograder = commands.add_parser("gradescope-autograder",
                                     help="build the autograder zip to upload to a Gradescope programming assignment")
    autograder.add_argument("assignment", help="assignment name (a folder under assignments/)")
    autograder.add_argument("--out", type=Path, default=Path("autograder.zip"), help="default: autograder.zip")
    autograder.add_argument("--course", type=Path, default=Path("."),
                            help="folder holding assignments/ and reference/ (default: current folder)")

    run = commands.add_parser("gradescope-run", help=argparse.SUPPRESS)  # what run_autograder runs
    run.add_argument("assignment")
    run.add_argument("--submission", type=Path, required=True, help="the folder of the student's files")
    run.add_argument("--results", type=Path, required=True, help="where results.json goes")
    run.add_argument("--lang", choices=LANGUAGES)
    common(run)

    export = commands.add_parser("export", help="the grades of one assignment in an LMS's import format")
    lms = export.add_subparsers(dest="lms", required=True, parser_class=Parser)

    def exported(p, out_default):
        p.add_argument("assignment", help="assignment name, as graded into GRADES/<assignment>/")
        p.add_argument("--grades", type=Path, default=Path("grades"), help="the grading output folder (default: grades)")
        p.add_argument("--roster", type=Path,
                       help="CSV with columns submission,student_id: file names (or the ids the LMS rule gives) "
                            "to the ids the LMS knows")
        p.add_argument("--out", type=Path, help=f"the CSV to import (default: GRADES/<assignment>/{out_default})")

    canvas = lms.add_parser("canvas", help="fill the gradebook CSV exported from Canvas, for Canvas's import")
    canvas.add_argument("--gradebook", type=Path, required=True,
                        help="the CSV from Canvas: Grades > Export > Export Entire Gradebook")
    canvas.add_argument("--assignment-column", required=True,
                        help='the Canvas column to fill, e.g. "HW1 (12345)" (the " (12345)" may be left out)')
    exported(canvas, "canvas_import.csv")
    exported(lms.add_parser("lms", help="student_id,score with ids mapped through --roster"), "lms_roster.csv")

    common(commands.add_parser("grade-worker", help=argparse.SUPPRESS))  # a cluster worker's grading process
    return parser


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return requested


async def use_sandbox(args, required: bool, fallback: str = "reference notebooks run without the sandbox") -> bool:
    """Whether kernels run sandboxed. Students' notebooks must be, unless --no-sandbox (or
    inside Gradescope's container, which may allow none); the course's own reference
    notebooks run unsandboxed where no sandbox can be made."""
    if args.no_sandbox:
        return False
    problem = await sandbox_problem()
    if problem is None:
        await remove_leftovers()
        return True
    if required:
        raise UsageError(f"cannot sandbox the notebooks: {problem}. To fix: {INSTALL_HINT}")
    print(f"note: {fallback} ({problem})", file=sys.stderr)
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
    folder = args.out / name
    ta_file = read_manual_grades(folder / MANUAL_FILE)  # a file Excel saved oddly stops the run before grading
    grader = AssignmentGrader(load_assignment(args.course, name), options)
    files = collect_submissions(paths)
    where = f"cluster {args.scheduler}" if client else f"{options.workers} worker(s)"
    print(f"{name}: {len(files)} file(s), device {options.device}, {where}"
          + (f"; {limits_in_force()}" if options.sandbox else ", NOT sandboxed"),
          file=sys.stderr, flush=True)
    progress = Progress(name, len(files), manual_points=sum(q.points for q in grader.assignment.manual))
    await grader.prepare()  # also on a cluster: the feedback plots the reference's loss curve
    remote = None
    if client:
        from grader.distributed import remote_grader

        remote = remote_grader(client, grader, args.course)
    reports = await grader.grade_all(files, progress.update, remote)
    progress.finish()
    merge_manual(reports, grader.assignment.manual, ta_file)
    write_manual_files(folder, reports, grader.assignment.manual, grader.assignment.title or name, ta_file)
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
    load_assignment(args.course, args.assignment)  # an unknown one is said before anything starts
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    options = await options_from(args)
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


async def grade_worker_command(args) -> int:
    """Grade the notebooks sent on stdin until it closes, one JSON report per line on
    stdout: a cluster worker's grading process (grader/distributed.py), which keeps its
    kernel parent and its prepared assignments from one task to the next."""
    from grader.distributed import read_request, stop_when_orphaned

    orphaned = asyncio.create_task(stop_when_orphaned(os.getppid()))
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever else prints goes to stderr, never into a reply
    options = await options_from(args)
    graders: dict[str, AssignmentGrader] = {}
    loop = asyncio.get_running_loop()
    while (request := await loop.run_in_executor(None, read_request, sys.stdin.buffer)) is not None:
        header, data = request
        try:
            grader = graders.get(header["assignment"])
            if grader is None:
                grader = AssignmentGrader(load_assignment(args.course, header["assignment"]), options)
                await grader.prepare()
                graders[header["assignment"]] = grader
            with tempfile.TemporaryDirectory(prefix="grader-task-") as folder:
                path = Path(folder) / Path(header["filename"]).name
                path.write_bytes(data)
                answer = (await grader.grade_file(path, path.parent)).to_json()
        except GraderError as exc:
            answer = {"grader_error": str(exc)}
        replies.write(json.dumps(answer) + "\n")
        replies.flush()
    orphaned.cancel()
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
            cases, margins = await prove_fairness(grader, reference_only=args.reference_only)
        except GraderError as exc:
            print(f"{name}: FAIL: {exc}")
            failures += 1
            continue
        report = cases[0].report  # the reference solution's own grade
        problems = [f"{case.kind} «{case.name}»: {problem}" for case in cases for problem in case.problems]
        goldens = []
        for device in options.devices:  # with a GPU, the reference on the CPU and on the GPU
            try:
                captures = await grader.reference_on(device)
            except GraderError as exc:
                problems.append(f"the reference on {device}: {exc}")
                continue
            if args.record_golden and not problems:
                record_golden(grader.assignment, captures, device)
            differences = compare_golden(grader.assignment, captures, device)
            environment = environment_label(device)
            if device != "cpu" and captures[PUBLIC_VARIANT].computed_on() == "cpu":
                goldens.append(f"the reference for {device} computes on the CPU (no cuda_form in assignment.toml), "
                               f"so {device} submissions are compared with CPU values")
            if differences is None:
                goldens.append(f"no golden values recorded for {environment} (add them with --record-golden)")
            else:
                problems += differences
                goldens.append(f"golden values for {environment} match" if not differences else
                               f"golden values for {environment} differ")
        golden = "; ".join(goldens)
        kinds = Counter(case.kind for case in cases)
        fairness = ("fairness not proven (--reference-only)" if args.reference_only else
                    f"fairness: {kinds['equivalent']} equivalent forms full marks, {kinds['mistake']} known mistakes "
                    f"lose their points and are named, the untouched notebook and {kinds['hard-coded']} hard-coded "
                    "copies earn 0")
        if problems:
            failures += 1
            print(f"{name}: FAIL ({golden})")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{name}: ok, full marks {report.score:g}/{report.max_score:g}; {golden}; {fairness}")
        for line in margins:
            print(f"  {line}")
    return EXIT_NOT_GRADABLE if failures else EXIT_OK


async def assign_command(args) -> int:
    names = args.assignments or list_assignments(args.course)
    if args.check:
        return EXIT_OK if check_assigned(args.course, names) else EXIT_NOT_GRADABLE
    for name in names:
        print(f"{name}: wrote {assign(load_assignment(args.course, name))}")
    return EXIT_OK


async def new_command(args) -> int:
    for path in scaffold(args.course, args.name):
        print(f"wrote {path}")
    print(f"next: edit reference/{args.name}.ipynb, then `grader assign {args.name}` and "
          f"`grader check-reference {args.name} --record-golden` (docs/checks.md)")
    return EXIT_OK


async def probe_command(args) -> int:
    grader = AssignmentGrader(load_assignment(args.course, args.assignment),
                              await options_from(args, sandbox_required=False))
    await grader.prepare()
    print("\n".join(await probe(grader, args.seed)))
    return EXIT_OK


async def release_command(args) -> int:
    names = args.assignments or list_assignments(args.course)
    if not names:
        raise UsageError(f"no assignments under {args.course / 'assignments'}")
    for name in names:
        folder, secrets = build_release(load_assignment(args.course, name), args.out)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        print(f"{name}: {folder} ({', '.join(files)}); none of {secrets} hidden texts and values found in it")
    return EXIT_OK


async def gradescope_autograder_command(args) -> int:
    import torch

    names = build_autograder(load_assignment(args.course, args.assignment), torch.__version__, args.out)
    print(f"{args.out}: {len(names)} files (setup.sh, run_autograder, grader/, course/); upload it as the "
          "autograder of a Gradescope programming assignment (README: Gradescope)")
    return EXIT_OK


async def gradescope_results_of(args) -> dict:
    """results.json for the notebook in Gradescope's submission folder."""
    assignment = load_assignment(args.course, args.assignment)
    text = Text(args.lang or course_language(args.course))
    path, problem = submitted_notebook(args.submission, assignment)
    if path is None:
        return gradescope_failure(text("gradescope_no_notebook", reason=problem))
    sandbox = await use_sandbox(args, required=False, fallback="grading WITHOUT the sandbox")
    options = GradeOptions(device=resolve_device(args.device), cache_dir=args.cache_dir.resolve(), workers=1,
                           sandbox=sandbox)
    grader = AssignmentGrader(assignment, options)
    await grader.prepare()
    report = await grader.grade_file(path, path.parent)
    if not sandbox:
        report.note(UNSANDBOXED_IN_CONTAINER)
    merge_manual([report], assignment.manual, TaFile())  # pending: TAs grade answers in Gradescope
    return gradescope_results(report, text)


async def gradescope_run_command(args) -> int:
    """What run_autograder runs: grade the submission and always leave a results.json."""
    exit_code = EXIT_OK
    try:
        results = await gradescope_results_of(args)
    except GraderError as exc:
        print(f"grader: cannot grade: {exc}", file=sys.stderr)
        results, exit_code = gradescope_failure(both("gradescope_grader_error", sep="\n\n")), EXIT_NOT_GRADABLE
    write_atomic(args.results, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return exit_code


def graded_reports(grades: Path, assignment: str) -> list[GradeReport]:
    """The reports `grader grade` left in GRADES/<assignment>/results/, TA grades merged."""
    folder = grades / assignment / "results"
    if not folder.is_dir():
        raise UsageError(f"no grades in {folder}: run `grader grade {assignment} ...` first")
    try:
        return [GradeReport.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"cannot read the grades in {folder} ({exc}); grade again with --force") from None


def export_canvas(args, reports: list[GradeReport], roster: dict[str, str] | None) -> None:
    filled = fill_canvas(args.gradebook, args.assignment_column, lms_scores(reports, roster))
    out = args.out or args.grades / args.assignment / "canvas_import.csv"
    write_csv(out, filled.rows)
    print(f"{out}: {filled.filled} score(s) filled in; import it in Canvas: Grades > Import")
    for label, names in (("graded but not in the Canvas gradebook (check the file names or pass --roster)",
                          filled.unknown),
                         ("left blank: a TA must look first (grader-error or an answer not graded yet)",
                          filled.not_final),
                         ("in Canvas without a graded file (left unchanged)", filled.ungraded)):
        if names:
            print(f"  {label}: {', '.join(names)}")


def export_lms(args, reports: list[GradeReport], roster: dict[str, str] | None) -> None:
    out = args.out or args.grades / args.assignment / "lms_roster.csv"
    rows = lms_csv(reports, roster)
    write_csv(out, rows)
    blank = [student for student, score in rows[1:] if not score]
    print(f"{out}: {len(rows) - 1} student(s)" + (f"; blank, not final yet: {', '.join(blank)}" if blank else ""))


async def export_command(args) -> int:
    """The grades of one assignment in the format an LMS imports."""
    roster = read_roster(args.roster) if args.roster else None
    {"canvas": export_canvas, "lms": export_lms}[args.lms](args, graded_reports(args.grades, args.assignment), roster)
    return EXIT_OK


COMMANDS = {"grade": grade_command, "grade-course": grade_course_command, "grade-worker": grade_worker_command,
            "check-reference": check_reference_command, "assign": assign_command, "new": new_command, "probe": probe_command,
            "release": release_command,
            "gradescope-autograder": gradescope_autograder_command, "gradescope-run": gradescope_run_command,
            "export": export_command}


def _interrupt(signum, frame):
    """Ctrl-C and SIGTERM raise KeyboardInterrupt where the grader is: asyncio.run then
    cancels every task, waits for their clean-up, and main() exits 130. (Left to its own
    SIGINT handling, asyncio cancels only the main task, and a library that swallows one
    cancellation would let the batch run on to a normal exit.)"""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
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
