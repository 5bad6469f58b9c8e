"""cgroup v2 on a fake tree: where kernels' cgroups go, as root and in a delegated subtree,
and what they are given. This machine runs cgroup v1: what the real kernel does with these
files is not tried here (the v1 path is, by tests/test_sandbox.py and tests/test_execute.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from grader.config import ExecutionSettings
from grader.run import sandbox
from grader.run.sandbox import V1, V2, CgroupRoots, KernelCgroups, UnprivilegedSandbox, unified_parent

SCOPE = "user.slice/user-1000.slice/user@1000.service/app.slice/run-u7.scope"


def cgroup(folder: Path, procs: str = "", controllers: str = "cpu io memory pids", enabled: str = "") -> Path:
    """A cgroup's interface files as the kernel shows them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cgroup.procs").write_text(procs)
    (folder / "cgroup.controllers").write_text(controllers)
    (folder / "cgroup.subtree_control").write_text(enabled)
    return folder


def test_as_root_kernels_go_under_a_grader_cgroup_below_the_root(tmp_path):
    cgroup(tmp_path, procs="1\n")
    cgroup(tmp_path / "init.scope", procs="1\n")
    parent = unified_parent(tmp_path, "init.scope", root=True)
    assert parent == tmp_path / "grader"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert unified_parent(tmp_path, "init.scope", root=True) == parent, "a second grader shares it"


def test_as_root_a_root_that_refuses_controllers_gives_none(tmp_path):
    cgroup(tmp_path)
    (tmp_path / "cgroup.subtree_control").unlink()
    (tmp_path / "cgroup.subtree_control").mkdir()  # any write fails, as EBUSY or ENOENT would
    assert unified_parent(tmp_path, "", root=True) is None


def test_without_root_a_delegated_cgroup_moves_its_processes_to_a_leaf(tmp_path):
    own = cgroup(tmp_path / SCOPE, procs="4242\n")
    parent = unified_parent(tmp_path, SCOPE, root=False)
    assert parent == own
    assert (own / "grader-processes" / "cgroup.procs").read_text() == "4242"
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_a_process_already_in_the_leaf_uses_its_parent_once_enabled(tmp_path):
    own = cgroup(tmp_path / SCOPE, enabled="memory pids")
    cgroup(own / "grader-processes", procs="4242\n")
    assert unified_parent(tmp_path, f"{SCOPE}/grader-processes", root=False) == own
    (own / "cgroup.subtree_control").write_text("memory")
    assert unified_parent(tmp_path, f"{SCOPE}/grader-processes", root=False) is None


def test_without_root_an_undelegated_cgroup_or_the_root_gives_none(tmp_path, monkeypatch):
    cgroup(tmp_path)
    assert unified_parent(tmp_path, "", root=False) is None
    cgroup(tmp_path / SCOPE, procs="4242\n")
    monkeypatch.setattr(sandbox.os, "access", lambda path, mode: False)  # tests run as root: pretend otherwise
    assert unified_parent(tmp_path, SCOPE, root=False) is None
    assert not (tmp_path / SCOPE / "grader-processes").exists()


def test_a_kernels_cgroup_gets_its_limits_and_says_what_it_hit(tmp_path, monkeypatch):
    parent = cgroup(tmp_path / "grader")
    settings = ExecutionSettings(memory_limit_mb=512, max_processes=64)
    limits = KernelCgroups(CgroupRoots(parent, parent, V2), "grader-run-1-x", settings)
    folder = parent / "grader-run-1-x"
    assert limits.folders == [folder]
    assert (folder / "memory.max").read_text() == str(512 * 2**20)
    assert (folder / "pids.max").read_text() == "64"
    assert not (folder / "memory.swap.max").exists(), "written only where the kernel accounts swap"
    assert limits.join() == [f"echo $$ > {folder / 'cgroup.procs'}"]
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (folder / "pids.events").write_text("max 0\n")
    removed = []

    async def remove(folders):
        removed.extend(folders)

    monkeypatch.setattr(sandbox, "_kill_and_remove", remove)
    notes = asyncio.run(limits.close())
    assert notes == [
        "the notebook used more than its 512 MB of memory (files it wrote count too) and was stopped"]
    assert notes[0].ko.startswith("노트북이 허용된 메모리 512 MB")
    assert removed == [folder]


def test_without_root_a_delegated_cgroup_replaces_the_rlimits(tmp_path):
    parent = cgroup(tmp_path / SCOPE)
    settings = ExecutionSettings(memory_limit_mb=512, max_processes=64)
    commands = {}
    for name, roots in (("rlimits", None), ("cgroup", CgroupRoots(parent, parent, V2))):
        run_dir = tmp_path / f"grader-run-1-{name}"
        run_dir.mkdir()
        commands[name] = UnprivilegedSandbox(run_dir, settings, "cpu", roots).command(["python"], "kernel.json")
    assert f"--data={512 * 2**20}" in commands["rlimits"] and "echo $$" not in commands["rlimits"][2]
    script = commands["cgroup"][2]
    assert script.startswith(f"echo $$ > {parent / 'grader-run-1-cgroup' / 'cgroup.procs'} && ")
    assert not any(arg.startswith(("--data", "--fsize", "--nproc")) for arg in commands["cgroup"])
    assert (parent / "grader-run-1-cgroup" / "pids.max").read_text() == "64"


@pytest.mark.parametrize("uid, roots, said", [
    (0, CgroupRoots(Path("m"), Path("p"), V1), "without capabilities; cgroup v1 bounds each kernel's memory"),
    (0, CgroupRoots(Path("g"), Path("g"), V2), "; cgroup v2 bounds each kernel's memory (files it writes included)"),
    (1000, CgroupRoots(Path("g"), Path("g"), V2), "(user namespace): no network"),
    (1000, CgroupRoots(Path("g"), Path("g"), V2), "; a delegated cgroup v2 bounds each kernel's memory"),
    (1000, None, "; no cgroups (none delegated: see README), so memory is bounded per process"),
])
def test_the_run_says_which_limits_hold(monkeypatch, uid, roots, said):
    monkeypatch.setattr(sandbox, "find_cgroups", lambda: roots)
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: uid)
    assert said in sandbox.limits_in_force()


def test_the_run_says_when_no_seccomp_filter_is_built(monkeypatch):
    monkeypatch.setattr(sandbox, "seccomp_filter", lambda: None)
    assert "; no seccomp filter (none built for this CPU);" in sandbox.limits_in_force()
