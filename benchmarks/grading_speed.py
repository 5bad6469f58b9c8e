"""Grading speed: how long the grader takes per submission, and where the time goes.

    make benchmark                                  # 60 regression_ab + 20 abcde, otter on 10
    make benchmark BENCH_ARGS="--regression-ab 6 --abcde 2 --otter 3"
    python benchmarks/grading_speed.py --help       # with the grader's venv

What it does, in order (every number it prints is measured in this run):

1. Generates submissions from the sample answer cells in submissions/<assignment>/ plus a
   few written variants (correct forms and typical wrong answers), filled into the student
   notebook with tests/notebooks.py's make_submission. Each gets a unique comment in its
   answer cell, so no two files share a cache entry. Samples that loop forever or are not
   notebooks are left out: their cost is the timeout, not the grader.
2. Runs the reference solutions once into a fresh cache (`prepare`): reported on its own,
   not counted per submission. Each grading run below starts from a copy of that cache,
   so references are cached and no grade is.
3. Measures the students' own compute: one warm Python process (torch, torch.optim and
   matplotlib already imported, one thread, as in the grader's kernels) executes each
   submission's code cells exactly as the grader would run them (locked cells restored,
   once per variant: public and hidden), timed with time.process_time().
4. Grades every submission with `grader grade` as a subprocess (one per assignment), with
   --workers = cores by default, sandboxed unless --no-sandbox. Wall time is taken around
   the subprocess; CPU time is that of a cgroup (cpuacct on v1, cpu.stat on v2) the
   subprocess starts in, so every kernel, sandboxed or not, and the kernel parent count
   (rusage from os.wait4 where no cgroup can be made). The same is done for a small batch
   (the first --base submissions): marginal cost per submission = (cost for N − cost for
   the small batch) / (N − its size), so the fixed start-up (the kernel parent's imports,
   the grader's own) is reported apart. Overhead = marginal CPU − students' compute.
5. Scaling: the same batch graded again with --workers 1 and 2 (a run with the main
   worker count is reused), reported as the ratio of wall times.
6. Comparison: the first K regression_ab submissions graded one by one by otter-grader
   7.0's `otter run` (installed into benchmarks/.otter-venv with torch==2.13.0), with an
   autograder zip built here by `otter generate` from OK-format tests equivalent to ours
   (parameters, α−β, sums near the truth, final loss, predictions, against the
   reference's values from step 2). otter runs each notebook once; the grader twice.

The results go to stdout and benchmarks/results.md as Markdown, medians where a value
exists per submission, with the machine (cores, CPU model, torch) and the load average
before and after (this benchmark is meant to run on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
OTTER_VENV = BENCH / ".otter-venv"
OTTER_REQUIREMENTS = ["otter-grader[grading]==7.0.0", "torch==2.13.0", "matplotlib"]
ASSIGNMENTS = ("regression_ab", "abcde")
# Samples whose cost is a timeout or a refusal, not grading.
SKIPPED_SAMPLES = {"timeout_while_loop"}

# Written variants beside the samples (answer cells by id). Values from the course's BRIEF:
# equivalent forms match the reference to 5e-7; the wrong ones are typical mistakes.
REGRESSION_AB_VARIANTS = {
    "correct_swapped_loss_args": """for epoc in range(30):
    yhat = alpha0 + beta0 + alpha1*x + beta1*x
    loss = loss_fn(y, yhat)
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
    "correct_reordered": """for epoc in range(30):
    yhat = x*beta1 + beta0 + x*alpha1 + alpha0
    loss = ((yhat - y)**2).mean()
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
    "wrong_sum_not_mean": """for epoc in range(30):
    yhat = alpha0 + beta0 + alpha1*x + beta1*x
    loss = ((y - yhat)**2).sum()
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
    "wrong_only_alpha": """for epoc in range(30):
    yhat = alpha0 + alpha1*x
    loss = loss_fn(yhat, y)
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
    "wrong_29_epochs": """for epoc in range(29):
    yhat = alpha0 + beta0 + alpha1*x + beta1*x
    loss = loss_fn(yhat, y)
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
    "wrong_product_model": """for epoc in range(30):
    yhat = (alpha0 + alpha1*x) * (beta0 + beta1*x)
    loss = loss_fn(yhat, y)
    loss.backward()
    optimizr.step()
    optimizr.zero_grad()""",
}
ABCDE_VARIANTS = {
    "wrong_5_hidden_nodes": {"net": """net = torch.nn.Sequential(
    torch.nn.Embedding(num_embeddings=5, embedding_dim=5),
    torch.nn.Tanh(),
    torch.nn.Linear(in_features=5, out_features=5)
)"""},
}


# ----------------------------------------------------------------------------- helpers

def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else float("nan")


def grader_env() -> dict[str, str]:
    """This checkout's grader first on the path, whatever venv runs it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def cpu_cgroup() -> tuple[Path, str] | None:
    """A new cgroup that counts CPU (v1 cpuacct, else v2 with the cpu controller): its
    folder and the file holding its usage; None where none can be made (not root)."""
    name = f"grading-speed-{os.getpid()}-{time.monotonic_ns()}"
    for folder, usage in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"), (Path("/sys/fs/cgroup"), "cpu.stat")):
        if (folder / usage).exists() or (folder / "cgroup.controllers").exists():
            try:
                (folder / name).mkdir()
            except OSError:
                continue
            return folder / name, usage
    return None


def cgroup_cpu_seconds(folder: Path, usage: str) -> float:
    text = (folder / usage).read_text()
    if usage == "cpuacct.usage":
        return int(text) / 1e9
    return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6


def run_measured(cmd: list[str], *, env=None, cwd=None, log_path: Path | None = None, timeout=None) -> dict:
    """Run a command to completion; wall time around it, CPU of everything it started
    from a cgroup of its own (so kernels reaped inside a sandbox's pid namespace, and
    the kernel parent, count), else from os.wait4; peak RSS from os.wait4."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    cgroup = cpu_cgroup()
    if cgroup:  # the command joins the cgroup before it starts
        cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup[0] / "cgroup.procs"), *cmd]
    try:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = started + timeout if timeout else None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(proc.pid, 9)  # the whole session: the command and its kernels
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        if cgroup:
            for _ in range(200):  # the grader's kernel parent and sandboxes end just after it
                if not (cgroup[0] / "cgroup.procs").read_text().split():
                    break
                time.sleep(0.05)
            cpu = cgroup_cpu_seconds(*cgroup)
    finally:
        if log_path:
            out.close()
        if cgroup:
            try:
                cgroup[0].rmdir()
            except OSError:
                log(f"left the cgroup {cgroup[0]} (processes still in it)")
    return {"rc": proc.returncode, "wall": wall, "cpu": cpu, "cpu_from": "cgroup" if cgroup else "rusage",
            "maxrss_mb": usage.ru_maxrss / 1024}


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    torch_version = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
        env=grader_env()).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": nproc, "cpu": model, "torch": torch_version, "python": platform.python_version(),
            "memory_gib": round(mem_gb, 1), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


# ----------------------------------------------------------------------------- 1. submissions

def answer_sources(assignment: str) -> dict[str, dict[str, str]]:
    """Answer cells by id from every gradable sample, plus the written variants."""
    import nbformat

    sys.path.insert(0, str(ROOT))
    from grader.run.notebook import ANSWER, tags

    sources = {}
    for path in sorted((ROOT / "submissions" / assignment).glob("*.ipynb")):
        if path.stem in SKIPPED_SAMPLES:
            continue
        nb = nbformat.read(path, as_version=4)
        sources[path.stem] = {c.id: c.source for c in nb.cells if ANSWER in tags(c)}
    if assignment == "regression_ab":
        sources |= {name: {"training": text} for name, text in REGRESSION_AB_VARIANTS.items()}
    elif assignment == "abcde":
        base = sources.get("correct_positional_args") or next(iter(sources.values()))
        sources |= {name: base | cells for name, cells in ABCDE_VARIANTS.items()}
    return sources


def generate_submissions(folder: Path, counts: dict[str, int]) -> dict[str, list[Path]]:
    """N unique notebooks per assignment, cycling through the answer variants."""
    sys.path.insert(0, str(ROOT))
    from tests.notebooks import make_submission, write_submission

    made = {}
    for assignment, count in counts.items():
        sources = answer_sources(assignment)
        correct = sorted(n for n in sources if n.startswith("correct"))
        other = sorted(n for n in sources if not n.startswith("correct"))
        names = [n for pair in zip_longest(correct, other) for n in pair if n]  # a mix even for small N
        made[assignment] = []
        for i in range(count):
            name = names[i % len(names)]
            answers = dict(sources[name])
            first = next(iter(answers))  # a unique comment: no two files hash alike
            answers[first] = answers[first].rstrip("\n") + f"\n# student {i:04d} ({name})\n"
            nb = make_submission(assignment, answers)
            made[assignment].append(write_submission(nb, folder / assignment / f"s{i:04d}_{name}.ipynb"))
    return made


# ----------------------------------------------------------------------------- helper modes
# These run in subprocesses with the grader's interpreter, so their cost is measured apart.

def helper_prepare(args) -> None:
    """Run (and cache) every assignment's reference; dump regression_ab's public values."""
    import asyncio

    from grader.cli import resolve_device
    from grader.config import PUBLIC_VARIANT, load_assignment
    from grader.grade import AssignmentGrader
    from grader.run.runs import GradeOptions

    options = GradeOptions(device=resolve_device(args.device), cache_dir=Path(args.cache_dir), workers=args.workers)
    values = {}
    for name in args.assignments:
        grader = AssignmentGrader(load_assignment(ROOT, name), options)
        asyncio.run(grader.prepare())
        if name == "regression_ab":
            public = grader.reference[PUBLIC_VARIANT]
            values = {k: public[k].double().reshape(-1).tolist() for k in ("alpha0", "alpha1", "beta0", "beta1", "loss",
                                                                         "yhat")}
    Path(args.output).write_text(json.dumps({"regression_ab": values}))


def helper_student_compute(args) -> None:
    """Each submission's cells, run the way the grader runs them, in this warm process."""
    import contextlib
    import io

    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import torch.optim  # noqa: F401  (warm: its first use imports torch._dynamo)

    from grader.config import load_assignment
    from grader.run.notebook import apply_variant, prepare_notebook, read_notebook

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)

    def run_cells(nb) -> float:
        namespace = {"__name__": "__main__"}
        started = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for cell in nb.cells:
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                try:
                    exec(compile(cell.source, "<cell>", "exec"), namespace)
                except Exception:
                    pass  # the grader records the error and runs the next cell too
        spent = time.process_time() - started
        plt.close("all")
        return spent

    results = {}
    for assignment in args.assignments:
        config = load_assignment(ROOT, assignment)
        template = read_notebook(config.template_path, config.execution.max_notebook_bytes)
        templates = [apply_variant(template, v) for v in config.variants]
        files = sorted((Path(args.folder) / assignment).glob("*.ipynb"))
        warm = read_notebook(config.reference_notebook, config.execution.max_notebook_bytes)
        run_cells(prepare_notebook(templates[0], warm).notebook)  # first-call costs, untimed
        for path in files:
            submission = read_notebook(path, config.execution.max_notebook_bytes)
            results[str(path)] = sum(run_cells(prepare_notebook(t, submission).notebook) for t in templates)
    Path(args.output).write_text(json.dumps(results))


def helper_grade(args) -> None:
    """`grader grade ...` in this process, then its own and its children's rusage."""
    from grader.cli import main

    rc = main(args.grader_args)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(args.output).write_text(json.dumps({
        "rc": rc, "grader_cpu": own.ru_utime + own.ru_stime, "kernels_cpu": children.ru_utime + children.ru_stime,
        "grader_maxrss_mb": own.ru_maxrss / 1024, "kernel_maxrss_mb": children.ru_maxrss / 1024}))
    sys.exit(rc)


# ----------------------------------------------------------------------------- 2-5. grader

def prepare_references(work: Path, args) -> dict:
    cache = work / "cache-prepared"
    out = work / "reference-values.json"
    log(f"running the references into {cache}")
    measured = run_measured([sys.executable, __file__, "_prepare", "--cache-dir", str(cache), "--device", args.device,
                             "--workers", str(args.workers), "--output", str(out), *ASSIGNMENTS],
                            env=grader_env(), log_path=work / "prepare.log")
    if measured["rc"] != 0:
        raise SystemExit(f"preparing the references failed; see {work / 'prepare.log'}:\n"
                         + (work / "prepare.log").read_text()[-3000:])
    measured["values"] = json.loads(out.read_text())
    return measured


def student_compute(work: Path, folder: Path) -> dict[str, float]:
    out = work / "student-compute.json"
    log("timing the students' own cells in one warm process")
    env = grader_env() | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    measured = run_measured([sys.executable, __file__, "_student_compute", "--folder", str(folder), "--output",
                             str(out), *ASSIGNMENTS], env=env, log_path=work / "student-compute.log")
    if measured["rc"] != 0:
        raise SystemExit(f"timing the students' cells failed; see {work / 'student-compute.log'}")
    return json.loads(out.read_text())


def base_folder(work: Path, folder: Path, base: int) -> tuple[Path, dict[str, int]]:
    """The first `base` submissions of each assignment: the small batch that marginal
    costs are measured against."""
    small, counts = work / "submissions-base", {}
    for assignment in ASSIGNMENTS:
        files = sorted((folder / assignment).glob("*.ipynb"))[:base]
        (small / assignment).mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy(path, small / assignment / path.name)
        counts[assignment] = len(files)
    return small, counts


def marginal(big: dict, small: dict, key: str) -> float:
    """(cost for N − cost for the small batch) / (N − its size): fixed start-up left out."""
    extra = big["n"] - small["n"]
    return (big[key] - small[key]) / extra if extra > 0 else float("nan")


def grade_batch(work: Path, folder: Path, workers: int, args, counts: dict[str, int], tag: str = "") -> dict:
    """Grade every assignment's folder with `workers` kernels, from the prepared cache."""
    tag = tag or f"w{workers}"
    cache = work / f"cache-{tag}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(work / "cache-prepared", cache)
    result = {"workers": workers, "assignments": {}}
    for assignment in ASSIGNMENTS:
        if not counts.get(assignment):
            continue
        out_json = work / f"grade-{tag}-{assignment}.json"
        grades = work / f"grades-{tag}"
        log(f"grading {counts[assignment]} {assignment} submission(s) with --workers {workers}")
        measured = run_measured(
            [sys.executable, __file__, "_grade", "--output", str(out_json), "--", "grade", assignment,
             str(folder / assignment), "--course", str(ROOT), "--cache-dir", str(cache), "--out", str(grades),
             "--workers", str(workers), "--device", args.device, *([] if args.sandbox else ["--no-sandbox"])],
            env=grader_env(), log_path=work / f"grade-{tag}-{assignment}.log")
        if measured["rc"] != 0:
            raise SystemExit(f"grading failed; see {work / f'grade-{tag}-{assignment}.log'}")
        split = json.loads(out_json.read_text())
        reports = [json.loads(p.read_text()) for p in sorted((grades / assignment / "results").glob("*.json"))]
        result["assignments"][assignment] = measured | split | {
            "n": counts[assignment],
            "kernel_seconds": [r["seconds"] for r in reports],
            "statuses": {s: sum(r["status"] == s for r in reports) for s in sorted({r["status"] for r in reports})},
            "scores": {Path(r["file"]).stem: (r["score"], r["max_score"], r["status"]) for r in reports},
            "cached": sum(bool(r.get("cached")) for r in reports),
        }
    result["wall"] = sum(a["wall"] for a in result["assignments"].values())
    result["cpu"] = sum(a["cpu"] for a in result["assignments"].values())
    return result


# ----------------------------------------------------------------------------- 6. otter

def otter_bin(name: str) -> Path:
    return OTTER_VENV / "bin" / name


def install_otter(work: Path) -> None:
    """otter-grader 7.0 and torch 2.13.0 (CPU) in their own venv, once."""
    marker = OTTER_VENV / ".installed"
    wanted = "\n".join(OTTER_REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted and otter_bin("otter").exists():
        return
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    log(f"installing {' '.join(OTTER_REQUIREMENTS)} into {OTTER_VENV} (once)")
    install_log = work / "otter-install.log"
    steps = [[base, "-m", "venv", "--clear", str(OTTER_VENV)],
             [str(otter_bin("python")), "-m", "pip", "install", "--quiet", *OTTER_REQUIREMENTS]]
    for step in steps:
        with open(install_log, "ab") as out:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            tail = install_log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"`{' '.join(step)}` exited {done.returncode}:\n{tail}")
    marker.write_text(wanted)


def otter_tests(values: dict) -> dict[str, str]:
    """OK-format test files equivalent to assignments/regression_ab/checks.py (public variant),
    against the reference values of this run. Points as ours: 3, 1, 1, 1, 1."""
    params = [values[k][0] for k in ("alpha0", "alpha1", "beta0", "beta1")]
    loss, yhat = values["loss"][0], values["yhat"]

    def case(code_lines: list[str], hidden: bool) -> dict:
        body = "".join(f">>> {line}\n" for line in code_lines) + "True\n"
        return {"code": body, "hidden": hidden, "locked": False}

    specs = {
        "parameters": (3, [f"bool(max(abs(float(v) - e) for v, e in zip([alpha0, alpha1, beta0, beta1], "
                           f"{params!r})) < 1e-4)"], False),
        "differences_unchanged": (1, ["bool(abs(float(alpha0 - beta0) + 0.2) < 1e-5 and "
                                      "abs(float(alpha1 - beta1) + 0.2) < 1e-5)"], False),
        "sums_near_truth": (1, ["bool(abs(float(alpha0 + beta0) - 3.14) < 0.2 and "
                                "abs(float(alpha1 + beta1) - 6.28) < 0.4)"], False),
        "final_loss": (1, [f"bool(abs(float(loss) - {loss!r}) <= 1e-6 + 1e-4 * abs({loss!r}))"], True),
        "predictions": (1, ["import torch",
                            f"bool(torch.allclose(yhat.detach().double().reshape(-1), "
                            f"torch.tensor({yhat!r}, dtype=torch.float64), atol=1e-4, rtol=0))"], True),
    }
    files = {}
    for name, (points, lines, hidden) in specs.items():
        spec = {"name": name, "points": points,
                "suites": [{"type": "doctest", "scored": True, "setup": "", "teardown": "",
                            "cases": [case(lines, hidden)]}]}
        files[f"{name}.py"] = f"OK_FORMAT = True\n\ntest = {spec!r}\n"
    return files


def build_otter_zip(work: Path, values: dict) -> Path:
    folder = work / "otter-autograder"
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    for name, text in otter_tests(values).items():
        (folder / "tests" / name).write_text(text)
    done = subprocess.run([str(otter_bin("otter")), "generate", "--no-requirements", "--no-environment",
                           "--no-config", "-t", "tests", "-o", "autograder.zip"],
                          cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"otter generate exited {done.returncode}: {done.stderr[-2000:]}")
    return folder / "autograder.zip"


def otter_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{OTTER_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The same thread setting our kernels get: it only helps otter on a busy machine.
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return env


def run_otter(work: Path, files: list[Path], values: dict) -> dict:
    install_otter(work)
    autograder = build_otter_zip(work, values)
    runs = []
    for path in files:
        out = work / "otter-results" / path.stem
        out.mkdir(parents=True, exist_ok=True)
        log(f"otter run {path.name}")
        measured = run_measured([str(otter_bin("otter")), "run", "-a", str(autograder), "-o", str(out), "--no-logo",
                                 str(path)], env=otter_env(), cwd=out, log_path=out / "otter.log", timeout=600)
        results = out / "results.json"
        score = None
        if results.is_file():
            data = json.loads(results.read_text())
            scored = [t for t in data.get("tests", []) if "max_score" in t]  # not "Public Tests", "Autograder Failed"
            if scored:
                score = (sum(t.get("score", 0) for t in scored), sum(t["max_score"] for t in scored))
        runs.append(measured | {"file": path.stem, "score": score})
    failed = [r["file"] for r in runs if r["rc"] != 0 or r["score"] is None]
    if failed:
        log(f"otter run failed on {failed}; see {work / 'otter-results'}/*/otter.log")
    return {"runs": runs, "failed": failed}


# ----------------------------------------------------------------------------- 7. report

def fmt(seconds: float, digits: int = 2) -> str:
    return "n/a" if seconds != seconds else f"{seconds:.{digits}f} s"


def report(info, args, counts, prepared, compute, batches, base, otter, load_before, load_after) -> str:
    main = batches[args.workers]
    lines = [
        "## Grading speed",
        "",
        f"Measured by `benchmarks/grading_speed.py` ({' '.join(args.argv) or 'defaults'}) on "
        f"{info['date']}: {info['nproc']} cores (`nproc`), {info['cpu']}, {info['memory_gib']} GiB, "
        f"torch {info['torch']}, Python {info['python']}. Load average (1 min) before {load_before:.2f}, "
        f"after {load_after:.2f}.",
        "",
        f"Grading with `--workers {args.workers}` (each submission runs twice: public and hidden variant; "
        "references already cached; fresh result cache; "
        + ("inside the sandbox" if args.sandbox else "`--no-sandbox`")
        + "; CPU counted by " + ("a cgroup around the whole grader, kernels and kernel parent included"
                                 if next(iter(main["assignments"].values()))["cpu_from"] == "cgroup" else "rusage (no cgroup could be made: sandboxed "
                                 "kernels reaped in their own pid namespace are missing)")
        + f"; marginal = (cost for N − cost for the first {args.base}) / (N − {args.base})):",
        "",
    ]
    columns = [a for a in ASSIGNMENTS if counts.get(a)]
    header = "| | " + " | ".join(columns) + " |"
    lines += [header, "|---" * (len(columns) + 1) + "|"]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(main["assignments"][a], a) for a in columns) + " |")

    def own(a):
        return [v for k, v in compute.items() if Path(k).parent.name == a]

    row("submissions (statuses)", lambda m, a: f"{m['n']} ({', '.join(f'{k} {v}' for k, v in m['statuses'].items())})")
    row("wall, whole batch", lambda m, a: fmt(m["wall"], 1))
    row("wall per submission (batch wall / N)", lambda m, a: fmt(m["wall"] / m["n"]))
    row("median kernel time per submission (2 runs, waiting excluded)", lambda m, a: fmt(median(m["kernel_seconds"])))
    row("CPU per submission (grader + kernels, / N)", lambda m, a: fmt(m["cpu"] / m["n"]))
    row("&nbsp;&nbsp;of which the grader process", lambda m, a: fmt(m["grader_cpu"] / m["n"]))
    row("students' own compute per submission (2 runs; median)", lambda m, a: fmt(median(own(a)), 3))
    row("students' own compute per submission (2 runs; mean)", lambda m, a: fmt(statistics.mean(own(a)), 3))
    row("**marginal CPU per submission**", lambda m, a: f"**{fmt(marginal(m, base['assignments'][a], 'cpu'))}**")
    row("marginal wall per submission", lambda m, a: fmt(marginal(m, base['assignments'][a], 'wall')))
    row("**marginal overhead per submission** (marginal CPU − students' mean compute)",
        lambda m, a: f"**{fmt(marginal(m, base['assignments'][a], 'cpu') - statistics.mean(own(a)))}**")
    row(f"fixed start-up (CPU, wall of the batch of {args.base})",
        lambda m, a: f"{fmt(base['assignments'][a]['cpu'], 1)}, {fmt(base['assignments'][a]['wall'], 1)}")
    row("peak RSS: grader process / largest kernel",
        lambda m, a: f"{m['grader_maxrss_mb']:.0f} MB / {m['kernel_maxrss_mb']:.0f} MB")
    lines += ["", f"Reference runs (all assignments' `prepare`, before the batch, not counted above): "
                  f"wall {fmt(prepared['wall'], 1)}, CPU {fmt(prepared['cpu'], 1)}.", ""]

    if len(batches) > 1:
        lines += ["Scaling (the same batch, all assignments):", "", "| workers | wall | CPU | speedup vs 1 worker |",
                  "|---|---|---|---|"]
        base = batches.get(1)
        for w in sorted(batches):
            speed = f"×{base['wall'] / batches[w]['wall']:.2f}" if base else "n/a"
            lines.append(f"| {w} | {fmt(batches[w]['wall'], 1)} | {fmt(batches[w]['cpu'], 1)} | {speed} |")
        lines.append("")

    lines += ["Comparison with otter-grader 7.0 `otter run` (one notebook at a time, one run per notebook, "
              "checks inside the student's kernel):", ""]
    if otter.get("error"):
        lines += [f"Not measured: {otter['error']}", ""]
    elif otter.get("runs"):
        runs = otter["runs"]
        ours = main["assignments"]["regression_ab"]
        ok = [r for r in runs if r["rc"] == 0 and r["score"] is not None]
        walls, cpus = [r["wall"] for r in ok], [r["cpu"] for r in ok]
        ours_wall = ours["wall"] / ours["n"]
        ours_marginal = base["assignments"]["regression_ab"]
        lines += [f"regression_ab, the first {len(runs)} generated submissions"
                  + (f" ({len(runs) - len(ok)} failed under otter: {', '.join(otter['failed'])})"
                     if len(ok) < len(runs) else "") + ":", "",
                  "| | otter run | grader | otter ÷ grader (> 1: the grader is faster) |", "|---|---|---|---|",
                  f"| wall per submission (otter: median; grader: batch wall / N, `--workers {args.workers}`) "
                  f"| {fmt(median(walls))} | {fmt(ours_wall)} | ×{median(walls) / ours_wall:.1f} |",
                  f"| marginal wall per submission (otter: median; grader: marginal, `--workers {args.workers}`) "
                  f"| {fmt(median(walls))} | {fmt(marginal(ours, ours_marginal, 'wall'))} | "
                  f"×{median(walls) / marginal(ours, ours_marginal, 'wall'):.1f} |",
                  f"| marginal CPU per submission (otter: median) | {fmt(median(cpus))} | "
                  f"{fmt(marginal(ours, ours_marginal, 'cpu'))} | ×{median(cpus) / marginal(ours, ours_marginal, 'cpu'):.1f} |"]
        if 1 in batches and args.workers != 1:
            one = batches[1]["assignments"]["regression_ab"]
            lines.append(f"| wall per submission, grader with `--workers 1` | {fmt(median(walls))} | "
                         f"{fmt(one['wall'] / one['n'])} | ×{median(walls) / (one['wall'] / one['n']):.1f} |")
        lines.append(f"| CPU per submission (otter: median) | {fmt(median(cpus))} | {fmt(ours['cpu'] / ours['n'])} | "
                     f"×{median(cpus) / (ours['cpu'] / ours['n']):.1f} |")
        otter_points = {r["score"][1] for r in runs if r["score"]}
        our_points = {score[1] for score in ours["scores"].values()}
        lines += ["", "Scores on that subset (otter's tests: the same checks on the public run only, "
                      f"{'/'.join(f'{p:g}' for p in sorted(otter_points))} points; ours: "
                      f"{'/'.join(f'{p:g}' for p in sorted(our_points))} points over both runs):", "",
                  "| submission | otter | grader |", "|---|---|---|"]
        for r in runs:
            mine = ours["scores"].get(r["file"])
            theirs = f"{r['score'][0]:g}/{r['score'][1]:g}" if r["score"] else f"failed (rc {r['rc']})"
            lines.append(f"| {r['file']} | {theirs} | {mine[0]:g}/{mine[1]:g} ({mine[2]}) |" if mine else
                         f"| {r['file']} | {theirs} | missing |")
        lines.append("")
    else:
        lines += ["Not run (`--otter 0`).", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regression-ab", type=int, default=60, help="regression_ab submissions (default 60)")
    p.add_argument("--abcde", type=int, default=20, help="abcde submissions (default 20)")
    p.add_argument("--workers", type=int, default=cores, help=f"workers for the main run (default: cores, {cores})")
    p.add_argument("--scaling", default="1,2",
                   help="worker counts to grade the same batch with for the scaling ratio ('' for none; default 1,2)")
    p.add_argument("--otter", type=int, default=10, help="regression_ab submissions for otter run (0: skip; default 10)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="grader --device (default cpu)")
    p.add_argument("--results", type=Path, default=BENCH / "results.md", help="Markdown output (default %(default)s)")
    p.add_argument("--work", type=Path, help="working folder (default: a new temporary folder, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the working folder (logs, notebooks, grades)")
    p.add_argument("--base", type=int, default=2,
                   help="submissions per assignment in the small batch marginal costs are measured against (default 2)")
    p.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="grade without the sandbox (CPU is counted by a cgroup either way, where one can be made)")
    args = p.parse_args(argv)
    args.argv = argv
    args.scaling = sorted({int(w) for w in args.scaling.split(",") if w.strip()})
    return args


def main(argv: list[str]) -> int:
    helpers = {"_prepare": helper_prepare, "_student_compute": helper_student_compute, "_grade": helper_grade}
    if argv and argv[0] in helpers:
        h = argparse.ArgumentParser()
        h.add_argument("--output", required=True)
        h.add_argument("--cache-dir")
        h.add_argument("--device", default="cpu")
        h.add_argument("--workers", type=int, default=1)
        h.add_argument("--folder")
        h.add_argument("assignments", nargs="*")
        if argv[0] == "_grade":
            split = argv.index("--")
            args = h.parse_args(argv[1:split])
            args.grader_args = argv[split + 1:]
        else:
            args = h.parse_args(argv[1:])
        sys.path.insert(0, str(ROOT))
        helpers[argv[0]](args)
        return 0

    args = parse_args(argv)
    counts = {"regression_ab": args.regression_ab, "abcde": args.abcde}
    if args.otter and not counts["regression_ab"]:
        raise SystemExit("--otter needs regression_ab submissions")
    work = args.work or Path(tempfile.mkdtemp(prefix="grading-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"working folder {work}")
    try:
        info = machine_info()
        load_before = os.getloadavg()[0]
        folder = work / "submissions"
        made = generate_submissions(folder, counts)
        prepared = prepare_references(work, args)
        compute = student_compute(work, folder)
        small, small_counts = base_folder(work, folder, args.base)
        base = grade_batch(work, small, args.workers, args, small_counts, tag="base")
        batches = {args.workers: grade_batch(work, folder, args.workers, args, counts)}
        for workers in args.scaling:
            if workers not in batches:
                batches[workers] = grade_batch(work, folder, workers, args, counts)
        otter = {}
        if args.otter:
            try:
                otter = run_otter(work, made["regression_ab"][:args.otter], prepared["values"]["regression_ab"])
            except Exception as exc:  # reported in the table, precisely, instead of a number
                otter = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"otter comparison not measured: {otter['error']}")
        load_after = os.getloadavg()[0]
        text = report(info, args, counts, prepared, compute, batches, base, otter, load_before, load_after)
        print(text)
        args.results.write_text(text + "\n")
        (work / "raw.json").write_text(json.dumps({"info": info, "prepared": prepared | {"values": "..."},
                                                   "compute": compute, "batches": batches, "base": base,
                                                   "otter": otter},
                                                  indent=1, default=str))
        log(f"written {args.results}")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}: notebooks, grades, logs, raw.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
