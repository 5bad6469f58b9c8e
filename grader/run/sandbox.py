"""Running a student's kernel isolated from the machine that grades it.

Each kernel gets bubblewrap's namespaces (no network, its own pids, IPC and host name),
a filesystem holding the interpreter read-only and its own run folder, the uid `nobody`
with no capabilities, and cgroups of its own that bound its memory and its processes
plus threads; a per-process CPU-time limit backs the wall-clock timeouts. The run folder
and the sandbox's /tmp live in memory (tmpfs), so every file the kernel writes counts
against its memory limit and cannot fill a disk.

bubblewrap starts as root: it can then bind an interpreter under /root (mode 700) and
needs no user namespace, so the kernel is the real uid `nobody` on the host, not root
in disguise. `setpriv` drops to `nobody` as the last step, before student code runs.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.config import ExecutionSettings

RUN_PREFIX = "grader-run-"  # then the grader's pid: run folders and cgroups are named alike
MEMORY_SCRATCH = Path("/dev/shm")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
             "localtime", "hosts", "alternatives", "fonts", "ssl")
# Set inside every sandbox: the kernel's parent there is pid 1, its folders are the sandbox's /tmp.
SANDBOX_ENV = {"JPY_PARENT_PID": "1", "IPYTHONDIR": "/tmp/ipython", "MPLCONFIGDIR": "/tmp/matplotlib"}
INSTALL_HINT = ("install bubblewrap (as root: apt-get install bubblewrap, or run `make`) and grade as root, "
                "or pass --no-sandbox to grade without isolation")


@dataclass(frozen=True)
class CgroupFiles:
    """The names one cgroup version uses for the limits and counters the sandbox needs."""

    memory_limits: tuple[tuple[str, str], ...]  # (file, value), "{memory}" filled in; absent files skipped
    pids_limit: str
    oom_events: str  # holds an "oom_kill N" line


V1 = CgroupFiles((("memory.limit_in_bytes", "{memory}"), ("memory.memsw.limit_in_bytes", "{memory}")),
                 "pids.max", "memory.oom_control")
V2 = CgroupFiles((("memory.max", "{memory}"), ("memory.swap.max", "0")), "pids.max", "memory.events")


@dataclass(frozen=True)
class CgroupRoots:
    """Where per-kernel cgroups are created: one folder per controller (the same one on v2)."""

    memory: Path
    pids: Path
    files: CgroupFiles


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of every mount, from mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        fstype, _, options = rest.split(" ")[:3]
        found.append((fields.split(" ")[4], fstype, set(options.split(","))))
    return found


def find_cgroups() -> CgroupRoots | None:
    """cgroup v1 memory and pids hierarchies (below this process's own cgroups), else v2.

    On v2 kernels' cgroups go directly under the root: controllers cannot be enabled
    below a cgroup that holds processes, as the grader's own one does.
    """
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            own[name] = path.lstrip("/")
    mounts = _mounts()
    v1 = {c: Path(point) / own.get(c, "") for point, fstype, opts in mounts if fstype == "cgroup"
          for c in ("memory", "pids") if c in opts}
    if set(v1) == {"memory", "pids"}:
        return CgroupRoots(v1["memory"], v1["pids"], V1)
    for point, fstype, _ in mounts:
        if fstype == "cgroup2":
            enabled = (Path(point) / "cgroup.subtree_control").read_text().split()
            if {"memory", "pids"} <= set(enabled):
                return CgroupRoots(Path(point), Path(point), V2)
    return None


def _sandbox_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _interpreter_paths() -> list[Path]:
    """Folders the kernel's Python needs: its prefixes and site-packages, outermost only."""
    candidates = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                                              *site.getsitepackages()) if p}
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        candidates.add(Path(site.getusersitepackages()).resolve())
    candidates.add(Path(sys.executable).parent)  # where the kernel's command line names python
    kept = sorted(p for p in candidates if p.is_dir() and not p.is_relative_to("/usr"))
    return [p for p in kept if not any(p != q and p.is_relative_to(q) for q in kept)]


def _with_parents(path: Path, made: set[Path]) -> list[str]:
    """bwrap arguments creating `path`'s missing parents world-readable (bwrap makes them 0700)."""
    args = []
    for parent in reversed(path.parents):
        if parent != Path("/") and parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_arguments(run_dir: Path, device: str) -> list[str]:
    """The filesystem and namespaces of a kernel's sandbox, as bubblewrap options."""
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
            "--hostname", "sandbox", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    made: set[Path] = set()
    for name in ETC_FILES:
        args += _with_parents(Path("/etc", name), made) + ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for path in _interpreter_paths():
        args += _with_parents(path, made) + ["--ro-bind", str(path), str(path)]
    if device == "cuda":
        for node in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(node), str(node)]
    args += _with_parents(run_dir, made) + ["--bind", str(run_dir), str(run_dir)]
    # Inside, only the run folder and tmpfs are writable; the kernel's own parent is pid 1.
    for name, value in SANDBOX_ENV.items():
        args += ["--setenv", name, value]
    return args


class KernelSandbox:
    """The sandbox of one kernel: made before it starts, `close`d after it stopped."""

    def __init__(self, run_dir: Path, settings: ExecutionSettings, device: str, roots: CgroupRoots):
        self.run_dir = run_dir
        self.settings = settings
        self.device = device
        self.files = roots.files
        self.uid, self.gid = _sandbox_user()
        self.memory_cgroup = roots.memory / run_dir.name
        self.pids_cgroup = roots.pids / run_dir.name
        self.cgroups = sorted({self.memory_cgroup, self.pids_cgroup})
        try:
            for folder in self.cgroups:
                folder.mkdir()
            memory = str(settings.memory_limit_mb * 2**20)
            for file, value in self.files.memory_limits:
                if (self.memory_cgroup / file).exists():
                    (self.memory_cgroup / file).write_text(value.format(memory=memory))
            (self.pids_cgroup / self.files.pids_limit).write_text(str(settings.max_processes))
        except OSError:
            _try_rmdir(self.cgroups)
            raise
        # The run folder stays root's, so the kernel cannot swap one of its folders for a
        # link; what is inside is the kernel's.
        run_dir.chmod(0o711)
        for path in run_dir.rglob("*"):
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def command(self, cmd: list[str], connection_file: str, bwrap_options: list[str] = ()) -> list[str]:
        """`cmd` wrapped: join the cgroups, set rlimits, enter bubblewrap, drop to `nobody`."""
        os.chown(connection_file, self.uid, self.gid)
        join = " && ".join([*(f"echo $$ > {shlex.quote(str(folder / 'cgroup.procs'))}" for folder in self.cgroups),
                            "ulimit -c 0", f"ulimit -t {int(self.settings.cpu_time_limit)}", 'exec "$@"'])
        # bwrap keeps just what setpriv needs to drop to nobody; setpriv then drops those too.
        return ["/bin/sh", "-c", join, "sh", shutil.which("bwrap") or "bwrap",
                *bwrap_arguments(self.run_dir, self.device), *bwrap_options,
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
                "--", shutil.which("setpriv") or "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd]

    async def close(self) -> list[str]:
        """Kill whatever is left in the cgroups and remove them; notes on limits that were hit."""
        notes = []
        if _counter(self.memory_cgroup / self.files.oom_events, "oom_kill"):
            notes.append(f"the notebook used more than its {self.settings.memory_limit_mb:,} MB of memory "
                         "(files it wrote count too) and was stopped")
        if _counter(self.pids_cgroup / "pids.events", "max"):
            notes.append(f"the notebook tried to run more than {self.settings.max_processes} processes and "
                         "threads at once; the extra ones were refused")
        await _kill_and_remove(self.cgroups)
        return notes


async def _kill_and_remove(cgroups: list[Path]) -> None:
    """SIGKILL every process in the cgroups, then remove them."""
    for _ in range(500):
        for folder in cgroups:
            for pid in (folder / "cgroup.procs").read_text().split() if folder.exists() else ():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if _try_rmdir(cgroups):
            return
        await asyncio.sleep(0.01)  # a cgroup is busy until its last killed process is gone
    raise RuntimeError(f"could not empty and remove the sandbox's cgroups {cgroups}")


def _try_rmdir(folders: list[Path]) -> bool:
    try:
        for folder in folders:
            if folder.exists():
                folder.rmdir()
    except OSError:
        return False
    return True


def _counter(path: Path, key: str) -> int:
    """The value on the `key N` line of a cgroup's events file (0 when there is none)."""
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class Unsandboxed:
    """The same interface, isolating nothing (`grader grade --no-sandbox`)."""

    def command(self, cmd: list[str], connection_file: str) -> list[str]:
        return cmd

    async def close(self) -> list[str]:
        return []


def _left_behind(name: str) -> bool:
    """Whether a run folder or cgroup belongs to a grader (pid in its name) that is gone."""
    pid, dash, _ = name[len(RUN_PREFIX):].partition("-")
    if not (dash and pid.isdigit()):
        return False  # not named by this version: left alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's grader, still running
        return False
    return False


async def remove_leftovers() -> None:
    """Remove what graders killed outright (SIGKILL) left: their kernels died with them
    (bubblewrap's --die-with-parent), their run folders and cgroups did not."""
    for scratch in (MEMORY_SCRATCH, Path(tempfile.gettempdir())):
        for folder in scratch.glob(f"{RUN_PREFIX}*"):
            if _left_behind(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
    roots = find_cgroups()
    if roots is not None:
        await _kill_and_remove([cgroup for root in {roots.memory, roots.pids}
                                for cgroup in root.glob(f"{RUN_PREFIX}*") if _left_behind(cgroup.name)])


def make_run_dir(sandboxed: bool) -> Path:
    """A private run folder, in memory when sandboxed (see the module docstring)."""
    scratch = MEMORY_SCRATCH if sandboxed else None
    return Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=scratch))


def open_sandbox(sandboxed: bool, run_dir: Path, settings: ExecutionSettings, device: str):
    """The sandbox for a kernel about to start in `run_dir` (call `close` when it stopped)."""
    if not sandboxed:
        return Unsandboxed()
    roots = find_cgroups()
    if roots is None:
        raise RuntimeError("no cgroup memory and pids controllers")
    return KernelSandbox(run_dir, settings, device, roots)


async def sandbox_problem() -> str | None:
    """Why kernels cannot be sandboxed here, or None when a trial sandbox ran Python."""
    if sys.platform != "linux":
        return "sandboxing needs Linux"
    if os.geteuid() != 0:
        return "sandboxing needs root (each kernel gets the uid `nobody` and cgroup limits of its own)"
    for tool in ("bwrap", "setpriv"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if find_cgroups() is None:
        return "no cgroup memory and pids controllers are available to limit kernels"
    if not MEMORY_SCRATCH.is_dir():
        return f"{MEMORY_SCRATCH} (a memory file system) is missing"
    run_dir = make_run_dir(True)
    try:
        (run_dir / "ipc").mkdir()
        probe = run_dir / "ipc" / "probe"
        probe.write_text("")
        sandbox = open_sandbox(True, run_dir, ExecutionSettings(), "cpu")
        try:
            cmd = sandbox.command([sys.executable, "-c", "import ipykernel"], str(probe))
            trial = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        finally:
            await sandbox.close()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if trial.returncode != 0:
        return f"a trial sandbox failed: {trial.stderr.strip()[-500:] or f'exit status {trial.returncode}'}"
    return None
