"""Grading through a real Dask scheduler and two workers on 127.0.0.1 gives the same gradebook."""

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_cli import grader

distributed = pytest.importorskip("distributed", reason="the 'distributed' package is not installed")
SAMPLES = ROOT / "submissions" / "regression_ab"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = (tmp_path / "dask.log").open("w")
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--no-dashboard"]
    processes = [subprocess.Popen(scheduler, stdout=logs, stderr=logs, cwd=tmp_path)]
    for i in range(2):
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                  "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"]
        processes.append(subprocess.Popen(worker, stdout=logs, stderr=logs, cwd=ROOT))
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()


def rows(path: Path) -> list[dict]:
    return sorted(csv.DictReader(path.open(encoding="utf-8-sig")), key=lambda r: r["student"])


def test_cluster_grades_match_local_grades(tmp_path, cluster):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("correct_matmul.ipynb", "wrong_no_zero_grad.ipynb", "invalid_not_a_notebook.txt"):
        shutil.copy(SAMPLES / name, folder / name)

    local = grader("grade", "regression_ab", str(folder), "--out", str(tmp_path / "local"),
                   cache_dir=tmp_path / "cache-local")
    assert local.returncode == 0, local.stderr
    started = time.monotonic()
    remote = grader("grade", "regression_ab", str(folder), "--out", str(tmp_path / "remote"),
                    "--scheduler", cluster, cache_dir=tmp_path / "cache-remote")
    assert remote.returncode == 0, remote.stderr
    assert f"cluster {cluster}" in remote.stderr
    assert time.monotonic() - started < 300

    gradebook = Path("regression_ab") / "gradebook.csv"
    assert rows(tmp_path / "remote" / gradebook) == rows(tmp_path / "local" / gradebook)
    with distributed.Client(cluster, timeout=30) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "run_grade_task" in prefixes, "the notebooks were graded by the cluster's workers"
    with distributed.Client(cluster, timeout=30) as client:
        started = client.run(lambda: __import__("grader.distributed").distributed.POOL.started)
    assert set(started.values()) <= {0, 1} and sum(started.values()) >= 1, \
        f"one grading process per worker, kept across its tasks: {started}"


@pytest.fixture
def pool(monkeypatch):
    from grader import distributed as module

    pool = module.Pool()
    monkeypatch.setattr(module, "POOL", pool)
    yield pool
    pool.stop_all()


def task(name: str, cache_dir: Path, timeout: float = 600.0) -> dict:
    from grader.distributed import run_grade_task

    return json.loads(run_grade_task(str(ROOT), "regression_ab", f"{name}.ipynb", (SAMPLES / f"{name}.ipynb").read_bytes(),
                                     "cpu", str(cache_dir), timeout, True))


def only_process(pool):
    [processes] = pool.idle.values()
    [process] = processes
    return process


def test_a_workers_grading_process_is_kept_across_tasks_and_replaced_when_gone(pool, cache_dir, monkeypatch):
    from grader import distributed as module

    assert task("correct_matmul", cache_dir)["score"] == 10
    first = only_process(pool)
    assert task("wrong_no_zero_grad", cache_dir)["score"] < 10
    assert only_process(pool) is first and pool.started == 1, "the second task reused the first one's process"

    first.process.kill()
    first.process.wait()
    assert task("correct_matmul", cache_dir)["score"] == 10
    assert pool.started == 2 and not first.alive()

    stamp = module._environment_stamp(str(ROOT))
    monkeypatch.setattr(module, "_environment_stamp", lambda course: (*stamp, "the grader's code changed"))
    second = only_process(pool)
    assert task("correct_matmul", cache_dir)["score"] == 10
    assert pool.started == 3 and not second.alive(), "a process with older code is stopped, not reused"


def test_a_task_past_its_time_is_a_grader_error_and_its_process_is_stopped(pool, cache_dir, monkeypatch):
    from grader import distributed as module

    started = []
    original = module.GradingProcess.__init__

    def remember(process, command):
        original(process, command)
        started.append(process)

    monkeypatch.setattr(module.GradingProcess, "__init__", remember)
    answer = task("correct_matmul", cache_dir, timeout=0.5)  # the process cannot even start in time
    assert answer == {"grader_error": "the worker's grading process ran past 0.5 s"}
    assert not pool.idle and pool.started == 1
    [process] = started
    assert process.process.returncode is not None, "the late process was stopped"


def test_a_changed_assignment_gets_a_new_grading_process(tmp_path):
    from grader.distributed import _environment_stamp

    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments" / "regression_ab", course / "assignments" / "regression_ab")
    before = _environment_stamp(str(course))
    checks = course / "assignments" / "regression_ab" / "checks.py"
    checks.write_text(checks.read_text() + "\n# a TA's edit\n")
    assert _environment_stamp(str(course)) != before


def test_unreachable_scheduler_is_one_clear_line(tmp_path):
    done = grader("grade", "regression_ab", str(SAMPLES / "correct_matmul.ipynb"), "--out", str(tmp_path),
                  "--scheduler", f"tcp://127.0.0.1:{free_port()}", cache_dir=tmp_path / "cache")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("grader: error: cannot reach the Dask scheduler")
