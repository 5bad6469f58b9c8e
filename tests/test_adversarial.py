"""The adversarial suite: every file under tests/adversarial/ graded in one sandboxed batch.

Each file there attacks the grader or the machine, or is something the grader must
refuse; EXPECTED says what each must get. Every attack is bounded so that a sandbox
failure could not harm the machine: allocations stop at 8 GB, written files at 2 GB,
fork bombs at 1,024 processes, thread bombs at 2,000 threads, loops at the timeouts.

Secrets are planted where a student must not reach: a comment in the hidden checks, a
file in /tmp, a peer's submission, the grader's environment, reference values in /tmp.
An unsandboxed control batch shows that the same attacks do reach them without the
sandbox, so the sandboxed assertions have teeth.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from grader.run.sandbox import MEMORY_SCRATCH, RUN_PREFIX, find_cgroups, remove_leftovers, sandbox_problem

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "adversarial"
ASSIGNMENT = "regression_ab"
TOKEN = f"grader-test-secret-{secrets.token_hex(8)}"
PLANTED = Path("/tmp/grader-adversarial-planted")  # named in capture_symlink.ipynb
SEEDS = {"public": 43052, "hidden": 2718}  # regression_ab's assignment.toml
LISTEN_PORTS = range(47600, 47700)  # tried by network.ipynb
# Tighter than the real assignment, so that each attack meets its limit quickly.
EXECUTION = """[execution]
cell_timeout = 10
notebook_timeout = 60
memory_limit_mb = 1024
max_processes = 64
cpu_time_limit = 20
max_notebook_bytes = 50000
"""

PROBLEM = asyncio.run(sandbox_problem())
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"kernels cannot be sandboxed here: {PROBLEM}")


@dataclass(frozen=True)
class Expect:
    status: str
    score: float | None  # None: compared with the control named in `at_most`
    reason: str = ""  # part of the gradebook's reason
    note: str = ""  # part of one of the feedback's notes
    at_most: str = ""  # a control file whose honest score this one must not beat


KERNEL_DIED = "the kernel died"
PROCESS_LIMIT = "more than 64 processes and threads"
EXPECTED = {
    "binary.ipynb": Expect("invalid", 0, "binary, not a Jupyter notebook"),
    "empty.ipynb": Expect("invalid", 0, "the file is empty"),
    "invalid_json.ipynb": Expect("invalid", 0, "not valid JSON"),
    "json_not_notebook.ipynb": Expect("invalid", 0, "JSON but not a Jupyter notebook"),
    "not_a_notebook.py": Expect("invalid", 0, "not valid JSON"),
    "old_nbformat.ipynb": Expect("invalid", 0, "unsupported notebook format version 2"),
    "too_big.ipynb": Expect("invalid", 0, "over the limit of 50,000"),
    "two_files.ipynb": Expect("ok", 10, note="more than one file"),
    "two_files.json": Expect("ok", 10, note="more than one file"),
    "missing_answer_cell.ipynb": Expect("ok", 0, note="an answer cell is missing"),
    # Locked cells come back, but nothing is trained.
    "only_markdown.ipynb": Expect("ok", 0, note="an answer cell is missing"),
    "os_exit.ipynb": Expect("error", 0, KERNEL_DIED),
    "segfault.ipynb": Expect("error", 0, KERNEL_DIED),
    "out_of_memory.ipynb": Expect("error", 0, KERNEL_DIED, note="more than its 1,024 MB of memory"),
    "disk_fill.ipynb": Expect("error", 0, KERNEL_DIED, note="more than its 1,024 MB of memory"),
    "sys_exit.ipynb": Expect("error", 10, "raised `SystemExit: bye"),
    "infinite_loop.ipynb": Expect("timeout", 10, "did not finish in time"),
    # SIGINT ignored: the CPU-time limit (or the notebook timeout) ends it.
    "loop_ignoring_interrupt.ipynb": Expect("timeout", 0, "did not finish in time"),
    "fork_200.ipynb": Expect("error", 10, "attack ran; started", note=PROCESS_LIMIT),
    "fork_bomb.ipynb": Expect("error", 10, "attack ran", note=PROCESS_LIMIT),
    "thread_bomb.ipynb": Expect("error", 10, "attack ran; started", note=PROCESS_LIMIT),
    "huge_output.ipynb": Expect("error", 10, "raised `ValueError: eggs"),
    "read_secrets.ipynb": Expect("error", 10, "attack ran; searched"),
    "read_environment.ipynb": Expect("error", 10, "token: None"),
    "network.ipynb": Expect("error", 10, "reached ports []; interfaces ['lo']"),
    "control_wrong_answer.ipynb": Expect("ok", 0),
    "control_hardcoded_values.ipynb": Expect("ok", 0, "came out exactly the same"),
    "fake_printed_markers.ipynb": Expect("ok", None, at_most="control_wrong_answer.ipynb"),
    "tamper_libraries.ipynb": Expect("ok", None, at_most="control_hardcoded_values.ipynb"),
    "fake_capture_files.ipynb": Expect("ok", None, at_most="control_hardcoded_values.ipynb"),
    "capture_symlink.ipynb": Expect("error", 0, "capture folder cannot be opened"),
    # Its own attack spoils alpha0 and yhat; only the loss checks still pass.
    "ipython_hooks.ipynb": Expect("ok", 2),
    # The grader process itself: none of these may stop the batch or cost another row.
    "deep_tree.ipynb": Expect("ok", 10),
    "deeply_nested.ipynb": Expect("invalid", 0, "20,002 levels deep, over the limit of 64"),
    "lone_surrogate.ipynb": Expect("error", 10, "(`# \ufffd a lone surrogate in the first line`) raised `ValueError"),
    "loss_overflow.ipynb": Expect("ok", 10),
    "huge_lr.ipynb": Expect("ok", 10),
    "output_widget_hides_error.ipynb": Expect("error", 10, "raised `ZeroDivisionError"),
    "widget_flood.ipynb": Expect("ok", 10, note="comm_msg messages over 1,048,576 bytes were dropped"),
    "giant_class_name.ipynb": Expect("ok", 8),  # its yhat is no tensor
    "proc_load.ipynb": Expect("error", 10, "loadavg 0.00 0.00 0.00 1/1 1; stat 0 bytes; uptime 0 bytes"),
    "forbidden_syscalls.ipynb": Expect("error", 10, "unshare EPERM; ptrace EPERM; keyctl EPERM; unshare -U refused"),
    # Names: one that would write outside gradescope/, three whose outputs would collide, one too long.
    "...ipynb": Expect("ok", 10),
    "bob.ipynb": Expect("ok", 10, note="more than one file"),
    "bob.json": Expect("ok", 10, note="more than one file"),
    "bob.ipynb.ipynb": Expect("ok", 10, note="would have the same name"),
    "가" * 80 + ".ipynb": Expect("ok", 10),
}
# Made by the batch fixture, not kept in git: a name in CP949 bytes and a symbolic link.
CP949_NAME = os.fsdecode("학생".encode("cp949") + b".ipynb")
GENERATED = {"학생.ipynb": Expect("ok", 10), "link_to_reference.ipynb": Expect("invalid", 0, "symbolic link")}
EXPECTED.update(GENERATED)
PEER = "peer_with_secret.ipynb"  # another student's notebook, holding a secret


@dataclass
class Batch:
    out: Path
    stdout: str
    stderr: str
    returncode: int
    pid: int
    submissions: Path

    def results(self) -> dict[str, dict]:
        """Each file's results JSON, by the file's name."""
        found = {}
        for path in (self.out / ASSIGNMENT / "results").glob("*.json"):
            report = json.loads(path.read_text(encoding="utf-8"))
            found[Path(report["file"]).name] = report | {"feedback_path": str(
                self.out / ASSIGNMENT / "feedback" / f"{path.stem}.md")}
        return found

    def feedback(self, name: str) -> str:
        return Path(self.results()[name]["feedback_path"]).read_text(encoding="utf-8")

    def everything_written(self, but: tuple[Path, ...] = ()) -> str:
        """All the grader wrote (except the files `but`), for leak checks."""
        texts = [self.stdout, self.stderr]
        texts += [p.read_bytes().decode("utf-8", errors="replace") for p in self.out.rglob("*")
                  if p.is_file() and p not in but]
        return "\n".join(texts)


class Listener:
    """A TCP server on the grading machine's loopback that records who connects."""

    def __init__(self):
        self.connections = []
        self.server = None
        for port in LISTEN_PORTS:
            try:
                self.server = socket.create_server(("127.0.0.1", port))
                break
            except OSError:
                continue
        assert self.server is not None, f"no free port in {LISTEN_PORTS}"
        self.server.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, address = self.server.accept()
            except TimeoutError:
                continue
            self.connections.append(address)
            connection.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.server.close()


def grader_command(course: Path, submissions: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", ASSIGNMENT, str(submissions), "--course", str(course),
            "--out", str(out), "--cache-dir", str(course / ".grader-cache"), "--workers", "2", *extra]


def grader_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GRADER_TA_TOKEN": TOKEN}


def run_batch(course: Path, submissions: Path, out: Path, *extra: str) -> Batch:
    process = subprocess.Popen(grader_command(course, submissions, out, *extra), cwd=course, env=grader_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=1500)
    finally:
        process.kill()
    return Batch(out, stdout, stderr, process.returncode, process.pid, submissions)


def running(pid: int) -> list[str]:
    """Processes of the grader with this pid: kernels and bwrap (their command lines name its
    run folders) and its kernel parent (started with GRADER_PID=pid)."""
    prefix, parent, found = f"{RUN_PREFIX}{pid}-".encode(), f"\0GRADER_PID={pid}\0".encode(), []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            text, environment = (process / "cmdline").read_bytes(), b"\0" + (process / "environ").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if prefix in text or parent in environment:
            found.append(text.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


def leftovers(pid: int) -> list[str]:
    """Processes, run folders and cgroups of the grader with this pid that still exist."""
    prefix = f"{RUN_PREFIX}{pid}-"
    found = running(pid)
    for scratch in (MEMORY_SCRATCH, Path("/tmp")):
        found += [str(p) for p in scratch.glob(f"{prefix}*")]
    roots = find_cgroups()
    found += [str(p) for root in {roots.memory, roots.pids} for p in root.glob(f"{prefix}*")]
    return found


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course with tight limits, a secret in the hidden checks, and the
    reference values computed (and planted in /tmp for capture_symlink.ipynb)."""
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "assignments" / ASSIGNMENT, course / "assignments" / ASSIGNMENT)
    shutil.copytree(ROOT / "reference", course / "reference")
    toml = course / "assignments" / ASSIGNMENT / "assignment.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index("[execution]")
    end = text.index("\n[", start + 1)
    toml.write_text(text[:start] + EXECUTION + text[end:], encoding="utf-8")
    with open(course / "assignments" / ASSIGNMENT / "checks.py", "a", encoding="utf-8") as checks:
        checks.write(f"\n# {TOKEN}\n")
    check = subprocess.run([sys.executable, "-m", "grader", "check-reference", ASSIGNMENT, "--reference-only",
                            "--course", str(course), "--cache-dir", str(course / ".grader-cache")],
                           cwd=course, env=grader_env(), capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    (cached,) = (course / ".grader-cache" / "reference" / ASSIGNMENT).iterdir()
    shutil.rmtree(PLANTED, ignore_errors=True)
    for variant, seed in SEEDS.items():
        shutil.copytree(cached / "reference" / variant, PLANTED / str(seed))
    yield course
    shutil.rmtree(PLANTED, ignore_errors=True)


@pytest.fixture(scope="module")
def secret_file():
    path = Path("/tmp") / f"{TOKEN}.txt"  # "secret" in its name: read_secrets.ipynb looks for it
    path.write_text(TOKEN)
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def batch(course, secret_file, listener, tmp_path_factory) -> Batch:
    submissions = tmp_path_factory.mktemp("submissions")
    for path in SUITE.iterdir():
        shutil.copy2(path, submissions / path.name)
    peer = nbformat.read(SUITE / "two_files.ipynb", as_version=4)
    peer.cells.insert(0, new_markdown_cell(f"My notes: {TOKEN}"))
    nbformat.write(peer, submissions / PEER)
    shutil.copy2(SUITE / "two_files.ipynb", submissions / CP949_NAME)
    (submissions / "link_to_reference.ipynb").symlink_to(course / "reference" / f"{ASSIGNMENT}.ipynb")
    before = file_hashes(submissions)
    batch = run_batch(course, submissions, tmp_path_factory.mktemp("out"))
    assert file_hashes(submissions) == before, "a submission was modified"
    return batch


def test_every_file_in_the_suite_has_an_expectation():
    assert sorted([*(p.name for p in SUITE.iterdir()), *GENERATED]) == sorted(EXPECTED)


def test_the_batch_completes_with_one_row_per_file(batch):
    assert batch.returncode == 0, batch.stderr[-3000:]
    with open(batch.out / ASSIGNMENT / "gradebook.csv", encoding="utf-8-sig") as handle:
        files = sorted(Path(row["file"]).name for row in csv.DictReader(handle))
    assert files == sorted([*EXPECTED, PEER])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_attack_gets_its_status_score_and_reason(batch, name):
    expect, results = EXPECTED[name], batch.results()
    report = results[name]
    assert report["status"] == expect.status, report["reason"]
    if expect.score is not None:
        assert report["score"] == expect.score, report["reason"]
    if expect.at_most:
        assert report["score"] <= results[expect.at_most]["score"]
    assert expect.reason in report["reason"]
    if expect.note:
        assert any(expect.note in note for note in report["notes"]), report["notes"]
    if report["status"] != "ok":
        assert report["reason"], "a failing file needs a reason"


def test_the_peer_holding_a_secret_is_graded_normally(batch):
    assert batch.results()[PEER]["score"] == 10


def test_no_secret_reaches_any_output(batch):
    """Not the checks' comment, the /tmp file, the peer's notes or the grader's environment."""
    returned = batch.out / ASSIGNMENT / "feedback" / PEER  # the peer's own notebook, returned to the peer
    assert TOKEN in returned.read_text(encoding="utf-8")
    assert TOKEN not in batch.everything_written(but=(returned,))


def test_no_connection_reached_the_machine(batch, listener):
    assert listener.connections == []


def test_a_hidden_run_leaks_nothing_to_feedback(batch):
    """ipython_hooks.ipynb smuggles the seed out through an exception message and a tensor
    shape: visible for the public run (the student's own), never for the hidden one."""
    feedback = batch.feedback("ipython_hooks.ipynb")
    assert f"SEED={SEEDS['public']}" in feedback
    assert f"({SEEDS['public']},)" in feedback
    assert str(SEEDS["hidden"]) not in feedback


def test_output_stays_bounded(batch):
    """20 MB printed, 20 MB to stderr, a 5 MB exception: a few KB reach the grader's files."""
    report = batch.results()["huge_output.ipynb"]
    assert os.path.getsize(report["feedback_path"]) < 20_000
    assert len(json.dumps(report)) < 50_000
    assert len(batch.stderr) < 50_000


def test_every_output_is_strict_json_inside_its_folder(batch):
    folder = batch.out / ASSIGNMENT
    assert sorted(p.name for p in batch.out.iterdir()) == [ASSIGNMENT]
    assert not (folder / "results.json").exists(), "...ipynb wrote its Gradescope file outside gradescope/"
    written = [*(folder / "results").glob("*.json"), *(folder / "gradescope").glob("*/results.json")]
    assert len(written) == 2 * len([*EXPECTED, PEER]), "two files' outputs were written under one name"
    for path in written:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"bare {c} in {path}"))


def test_captured_text_and_widgets_stay_bounded(batch):
    """A 20 MB class name and 50 MB of widget messages: a few KB reach the grader's files."""
    for name in ("giant_class_name.ipynb", "widget_flood.ipynb"):
        report = batch.results()[name]
        assert len(json.dumps(report)) < 50_000
        assert os.path.getsize(report["feedback_path"]) < 20_000


def test_a_diverging_loss_curve_is_still_drawn(batch):
    feedback = batch.feedback("loss_overflow.ipynb")
    assert "loss_overflow.loss.svg" in feedback and "Losses beyond ±1e+100 are drawn at ±1e+100" in feedback


def test_the_machine_is_clean_afterwards(batch):
    assert leftovers(batch.pid) == []


# The same attacks without the sandbox: they work, so the assertions above mean something.
CONTROLS = ("read_secrets.ipynb", "read_environment.ipynb", "network.ipynb")


@pytest.fixture(scope="module")
def unsandboxed(course, secret_file, listener, tmp_path_factory) -> Batch:
    submissions = tmp_path_factory.mktemp("controls")
    for name in CONTROLS:
        shutil.copy2(SUITE / name, submissions / name)
    return run_batch(course, submissions, tmp_path_factory.mktemp("controls-out"), "--no-sandbox")


def test_without_the_sandbox_the_attacks_reach_secrets_and_the_network(unsandboxed, listener):
    results = unsandboxed.results()
    assert TOKEN in results["read_secrets.ipynb"]["reason"]
    assert TOKEN in results["read_environment.ipynb"]["reason"]
    assert listener.connections, "network.ipynb did not reach the listener"


def test_without_the_sandbox_every_row_and_feedback_says_so(unsandboxed):
    assert "NOT sandboxed" in unsandboxed.stderr
    for name, report in unsandboxed.results().items():
        assert "without the sandbox" in report["reason"], name
        assert "without the sandbox" in unsandboxed.feedback(name), name


# Interrupting the grader: nothing half-written, nothing left running, the next run completes.

@pytest.fixture
def slow_submission(tmp_path) -> Path:
    nb = nbformat.read(SUITE / "two_files.ipynb", as_version=4)
    nb.cells.append(new_code_cell("import time\ntime.sleep(8)"))
    folder = tmp_path / "slow"
    folder.mkdir()
    nbformat.write(nb, folder / "slow.ipynb")
    return folder


def start_and_wait_for_a_kernel(command: list[str], cwd: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=cwd, env=grader_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any("ipykernel_launcher" in line for line in running(process.pid)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no kernel started"
        time.sleep(0.2)
    time.sleep(1)
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_nothing_and_the_next_completes(course, slow_submission, tmp_path, signum):
    out = tmp_path / "out"
    gradebook = out / ASSIGNMENT / "gradebook.csv"
    gradebook.parent.mkdir(parents=True)
    gradebook.write_text("an earlier, complete gradebook\n")
    command = grader_command(course, slow_submission, out)
    process = start_and_wait_for_a_kernel(command, course)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert gradebook.read_text() == "an earlier, complete gradebook\n"
    assert leftovers(process.pid) == []

    again = subprocess.run(command, cwd=course, env=grader_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with open(gradebook, encoding="utf-8-sig") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["student"], row["score"]) == ("slow", "10"), dict(row)


def test_a_grader_killed_outright_leaves_no_process_and_the_next_run_cleans_up(course, slow_submission, tmp_path):
    process = start_and_wait_for_a_kernel(grader_command(course, slow_submission, tmp_path / "out"), course)
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while running(process.pid):
        assert time.monotonic() < deadline, running(process.pid)
        time.sleep(0.2)
    assert leftovers(process.pid), "expected run folders and cgroups to be left"
    asyncio.run(remove_leftovers())  # what the next sandboxed run does first
    assert leftovers(process.pid) == []
