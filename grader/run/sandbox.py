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

Without root (`UnprivilegedSandbox`), bubblewrap makes a user namespace where the kernel
is `nobody` (the grading user outside), with the same namespaces, filesystem view, /proc
masks and seccomp filter. Its cgroups are made in a cgroup v2 subtree delegated to the
grading user where there is one (`unified_parent`); elsewhere rlimits bound what they can
(see `limits_in_force`) and the run folder is on disk, not in memory.
"""

from __future__ import annotations

import asyncio
import functools
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
from grader.fsutil import remove_tree
from grader.run.gpu import device_binds
from grader.run.seccomp import seccomp_filter
from grader.said import say

RUN_PREFIX = "grader-run-"  # then the grader's pid: run folders and cgroups are named alike
MEMORY_SCRATCH = Path("/dev/shm")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
             "localtime", "hosts", "alternatives", "fonts", "ssl")
KERNEL_FOLDERS = ("work", "capture", "ipc")  # of a run folder: the only ones bound into its sandbox
PROC_MASKS = "proc-masks"  # of a run folder: what the sandbox's host-wide /proc files show instead
# Host-wide /proc files whose content moves with the machine's load, memory or interrupts:
# one run could signal another through them (the hidden seed to the public run).
PROC_LOAD_FILES = {"loadavg": "0.00 0.00 0.00 1/1 1\n", "stat": "", "uptime": "", "meminfo": "", "vmstat": "",
                   "schedstat": "", "diskstats": "", "interrupts": "", "softirqs": "", "pressure": None}
SECCOMP_FILE = "seccomp.bpf"  # of a run folder
# Set inside every sandbox: the kernel's parent there is pid 1, its folders are the sandbox's /tmp.
SANDBOX_ENV = {"JPY_PARENT_PID": "1", "IPYTHONDIR": "/tmp/ipython", "MPLCONFIGDIR": "/tmp/matplotlib"}
INSTALL_HINT = ("install bubblewrap (as root: apt-get install bubblewrap, or run `make`); grade as root for "
                "cgroup limits, or as any user where unprivileged user namespaces are allowed; "
                "or pass --no-sandbox to grade without isolation")


@dataclass(frozen=True)
class CgroupFiles:
    """The names one cgroup version uses for the limits and counters the sandbox needs."""

    version: int
    memory_limit: str  # in bytes
    swap_limit: tuple[str, str]  # (file, value), "{memory}" filled in; absent where swap is not accounted
    pids_limit: str
    oom_events: str  # holds an "oom_kill N" line


V1 = CgroupFiles(1, "memory.limit_in_bytes", ("memory.memsw.limit_in_bytes", "{memory}"), "pids.max",
                 "memory.oom_control")
V2 = CgroupFiles(2, "memory.max", ("memory.swap.max", "0"), "pids.max", "memory.events")
V2_GRADER = "grader"  # as root on cgroup v2: the cgroup below the root that holds kernels' cgroups
V2_PROCESSES = "grader-processes"  # without root: the leaf the grader's processes move to in a delegated cgroup
V2_CONTROLLERS = {"memory", "pids"}


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


@functools.cache
def find_cgroups() -> CgroupRoots | None:
    """Where this process can make kernels' memory and pids cgroups, or None: cgroup v1's
    hierarchies (below this process's own cgroups) as root, else cgroup v2 (`unified_parent`).
    Decided once per process: on v2 without root, deciding moves the grader's processes."""
    root = os.geteuid() == 0
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):  # "" names the v2 hierarchy
            own[name] = path.lstrip("/")
    mounts = _mounts()
    v1 = {c: Path(point) / own.get(c, "") for point, fstype, opts in mounts if fstype == "cgroup"
          for c in ("memory", "pids") if c in opts}
    if set(v1) == {"memory", "pids"}:
        return CgroupRoots(v1["memory"], v1["pids"], V1) if root else None  # v1 cannot be delegated safely
    for point, fstype, _ in mounts:
        if fstype == "cgroup2":
            parent = unified_parent(Path(point), own.get("", ""), root)
            return CgroupRoots(parent, parent, V2) if parent else None
    return None


def unified_parent(mount: Path, own: str, root: bool) -> Path | None:
    """The cgroup v2 folder under which kernels' cgroups go, with the memory and pids
    controllers enabled for them, or None where there is none.

    Only the root cgroup may hold processes and enable controllers for its children. So as
    root, kernels' cgroups go under `grader` below the root. Without root, they go under the
    grader's own cgroup where it was delegated (writable, e.g. under `systemd-run --user
    --scope -p Delegate=yes`), once every process in it moved to a leaf, `grader-processes`.
    """
    here = mount / own
    try:
        if root:
            _enable_controllers(mount)
            parent = mount / V2_GRADER
            parent.mkdir(exist_ok=True)
        elif here.name == V2_PROCESSES:  # set up already, by this process or the one that started it
            parent = here.parent
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            return parent if V2_CONTROLLERS <= set(enabled) else None
        elif here != mount and all(os.access(path, os.W_OK) for path in
                                   (here, here / "cgroup.procs", here / "cgroup.subtree_control")):
            parent, leaf = here, here / V2_PROCESSES
            leaf.mkdir(exist_ok=True)
            for pid in (here / "cgroup.procs").read_text().split():
                try:
                    (leaf / "cgroup.procs").write_text(pid)
                except ProcessLookupError:  # gone meanwhile
                    pass
        else:
            return None
        _enable_controllers(parent)
    except OSError:  # controllers not given, a cgroup still holding processes, not delegated after all
        return None
    return parent


def _enable_controllers(cgroup: Path) -> None:
    """Memory and pids for `cgroup`'s children (the kernel refuses controllers `cgroup` was not given)."""
    (cgroup / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in sorted(V2_CONTROLLERS)))


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
    args += device_binds(device)
    for name in KERNEL_FOLDERS:  # not the run folder itself: it holds the filter and masks, root's
        args += _with_parents(run_dir / name, made) + ["--bind-try", str(run_dir / name), str(run_dir / name)]
    args += proc_mask_arguments(run_dir / PROC_MASKS)
    # Inside, only the run folder and tmpfs are writable; the kernel's own parent is pid 1.
    for name, value in SANDBOX_ENV.items():
        args += ["--setenv", name, value]
    return args


def proc_mask_arguments(masks: Path) -> list[str]:
    """bwrap arguments showing each host-wide load file of /proc as `write_private_files` wrote it
    (a folder, like /proc/pressure, as an empty one)."""
    args = []
    for name, content in PROC_LOAD_FILES.items():
        if not Path("/proc", name).exists():  # this kernel has none: nothing to mask
            continue
        args += ["--tmpfs", f"/proc/{name}"] if content is None else ["--ro-bind", str(masks / name), f"/proc/{name}"]
    return args


def write_private_files(run_dir: Path) -> None:
    """What the sandbox reads before the kernel starts: /proc masks (world-readable, since
    bound in by themselves) and the seccomp filter (the grading user's only), in the private run folder."""
    masks = run_dir / PROC_MASKS
    masks.mkdir()
    for name, content in PROC_LOAD_FILES.items():
        if content is not None:
            (masks / name).write_text(content)
            (masks / name).chmod(0o644)
    program = seccomp_filter()
    if program is not None:
        (run_dir / SECCOMP_FILE).write_bytes(program)
        (run_dir / SECCOMP_FILE).chmod(0o600)


def _seccomp_arguments(run_dir: Path) -> tuple[list[str], list[str]]:
    """The shell step opening the run's seccomp filter as descriptor 3, and bwrap's option
    reading it there (neither where no filter is built for this architecture)."""
    seccomp = run_dir / SECCOMP_FILE
    if not seccomp.exists():
        return [], []
    return [f"exec 3< {shlex.quote(str(seccomp))}"], ["--seccomp", "3"]


def _make_private(run_dir: Path, uid: int, gid: int) -> None:
    """The run folder root's and 0700, so no other user of the machine reaches a reference, a
    hidden seed or a student's notebook in it; inside, everything is the kernel's, files 0600
    and folders 0711 (bubblewrap, root without capabilities, must still enter `work`)."""
    run_dir.chmod(0o700)
    for path in run_dir.rglob("*"):
        os.chown(path, uid, gid, follow_symlinks=False)
        path.chmod(0o711 if path.is_dir() else 0o600)


class KernelCgroups:
    """The memory and pids cgroups of one kernel: limits set when made, `close`d after it stopped."""

    def __init__(self, roots: CgroupRoots, name: str, settings: ExecutionSettings):
        self.settings = settings
        self.files = roots.files
        self.memory = roots.memory / name
        self.pids = roots.pids / name
        self.folders = sorted({self.memory, self.pids})
        try:
            for folder in self.folders:
                folder.mkdir()
            memory = str(settings.memory_limit_mb * 2**20)
            (self.memory / self.files.memory_limit).write_text(memory)
            swap, value = self.files.swap_limit
            if (self.memory / swap).exists():
                (self.memory / swap).write_text(value.format(memory=memory))
            (self.pids / self.files.pids_limit).write_text(str(settings.max_processes))
        except OSError:
            _try_rmdir(self.folders)
            raise

    def join(self) -> list[str]:
        """Shell steps moving the shell that runs them into the cgroups."""
        return [f"echo $$ > {shlex.quote(str(folder / 'cgroup.procs'))}" for folder in self.folders]

    async def close(self) -> list[str]:
        """Kill whatever is left in the cgroups and remove them; notes on limits that were hit."""
        notes = []
        if _counter(self.memory / self.files.oom_events, "oom_kill"):
            limit = f"{self.settings.memory_limit_mb:,}"
            notes.append(say(f"the notebook used more than its {limit} MB of memory (files it wrote count too) "
                             "and was stopped",
                             f"노트북이 허용된 메모리 {limit} MB(직접 쓴 파일 포함)를 넘게 써서 중단되었습니다"))
        if _counter(self.pids / "pids.events", "max"):
            limit = self.settings.max_processes
            notes.append(say(f"the notebook tried to run more than {limit} processes and threads at once; the "
                             "extra ones were refused",
                             f"노트북이 프로세스와 스레드를 동시에 {limit}개보다 많이 만들려고 해서 초과분은 "
                             "거부되었습니다"))
        await _kill_and_remove(self.folders)
        return notes


class KernelSandbox:
    """The sandbox of one kernel: made before it starts, `close`d after it stopped."""

    def __init__(self, run_dir: Path, settings: ExecutionSettings, device: str, roots: CgroupRoots):
        self.run_dir = run_dir
        self.settings = settings
        self.device = device
        self.uid, self.gid = _sandbox_user()
        self.limits = KernelCgroups(roots, run_dir.name, settings)
        self.cgroups = self.limits.folders  # forked kernels join them themselves
        # The run folder stays root's, so the kernel cannot swap one of its folders for a
        # link; what is inside is the kernel's.
        _make_private(run_dir, self.uid, self.gid)
        write_private_files(run_dir)

    def command(self, cmd: list[str], connection_file: str, bwrap_options: list[str] = ()) -> list[str]:
        """`cmd` wrapped: join the cgroups, set rlimits, enter bubblewrap, drop to `nobody`."""
        os.chown(connection_file, self.uid, self.gid)
        open_filter, seccomp = _seccomp_arguments(self.run_dir)
        join = " && ".join([*self.limits.join(), "ulimit -c 0", f"ulimit -t {int(self.settings.cpu_time_limit)}",
                            *open_filter, 'exec "$@"'])
        # bwrap keeps just what setpriv needs to drop to nobody; setpriv then drops those too.
        return ["/bin/sh", "-c", join, "sh", shutil.which("bwrap") or "bwrap",
                *bwrap_arguments(self.run_dir, self.device), *seccomp, *bwrap_options,
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
                "--", shutil.which("setpriv") or "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd]

    async def close(self) -> list[str]:
        return await self.limits.close()


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


class UnprivilegedSandbox:
    """A kernel's sandbox made without root: bubblewrap in a user namespace, bounded by
    cgroups in a delegated cgroup v2 subtree where there is one, else by rlimits.

    What holds and what does not is `limits_in_force`: without cgroups memory is bounded
    per process (RLIMIT_DATA: heap and anonymous memory, not files), each file written
    (RLIMIT_FSIZE) but not their total, and processes plus threads (RLIMIT_NPROC) per uid,
    counted with the grading user's own processes and the other kernels running at once.
    """

    def __init__(self, run_dir: Path, settings: ExecutionSettings, device: str, roots: CgroupRoots | None):
        self.run_dir = run_dir
        self.settings = settings
        self.device = device
        self.limits = KernelCgroups(roots, run_dir.name, settings) if roots else None
        _make_private(run_dir, os.getuid(), os.getgid())  # the kernel is this user outside
        write_private_files(run_dir)

    def command(self, cmd: list[str], connection_file: str) -> list[str]:
        open_filter, seccomp = _seccomp_arguments(self.run_dir)
        limit = ["--core=0", f"--cpu={int(self.settings.cpu_time_limit)}"]
        if self.limits is None:
            memory = self.settings.memory_limit_mb * 2**20
            limit += [f"--data={memory}", f"--fsize={memory}",
                      f"--nproc={_tasks_of(os.getuid()) + self.settings.max_processes}"]
        join = self.limits.join() if self.limits else []
        return ["/bin/sh", "-c", " && ".join([*join, *open_filter, 'exec "$@"']), "sh",
                shutil.which("prlimit") or "prlimit", *limit,
                "--", shutil.which("bwrap") or "bwrap", "--unshare-user", "--uid", "65534", "--gid", "65534",
                *bwrap_arguments(self.run_dir, self.device), *seccomp, "--cap-drop", "ALL", "--", *cmd]

    async def close(self) -> list[str]:
        # Without cgroups, the kernel's pid namespace ends with it and nothing counted what it hit.
        return await self.limits.close() if self.limits else []


def _tasks_of(uid: int) -> int:
    """Processes plus threads of `uid` now: RLIMIT_NPROC counts them all."""
    count = 0
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if process.stat().st_uid == uid:
                count += len(os.listdir(process / "task"))
        except OSError:  # gone meanwhile
            continue
    return count


def limits_in_force() -> str:
    """What the sandbox bounds here, as said at the start of a sandboxed run."""
    seccomp = "seccomp filter" if seccomp_filter() is not None else "no seccomp filter (none built for this CPU)"
    common = ("no network; own pid, IPC, host-name and mount namespaces; the interpreter read-only and the "
              f"run folder; host-wide /proc load files masked; {seccomp}; CPU time per process")
    roots = find_cgroups()
    cgroups = (f"cgroup v{roots.files.version} bounds each kernel's memory (files it writes included) and its "
               "processes plus threads") if roots else ""
    if os.geteuid() == 0:
        return f"sandbox as root: {common}; uid nobody without capabilities; {cgroups or 'no cgroup'}"
    if roots:
        return f"sandbox without root (user namespace): {common}; a delegated {cgroups}"
    return (f"sandbox without root (user namespace): {common}; no cgroups (none delegated: see README), so memory "
            "is bounded per process (heap and anonymous memory, not files), each file written but not their "
            "total, and processes plus threads per uid, shared with this user's processes and the other kernels "
            "running at once")


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
                remove_tree(folder)
    roots = find_cgroups()
    if roots is not None:
        try:
            await _kill_and_remove([cgroup for root in {roots.memory, roots.pids}
                                    for cgroup in root.glob(f"{RUN_PREFIX}*") if _left_behind(cgroup.name)])
        except RuntimeError as exc:  # never a reason not to grade
            print(f"grader: warning: {exc}", file=sys.stderr)


def make_run_dir(sandboxed: bool) -> Path:
    """A private run folder, in memory where a cgroup bounds the kernel's memory (see the module docstring)."""
    scratch = MEMORY_SCRATCH if sandboxed and find_cgroups() is not None else None
    return Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=scratch))


def open_sandbox(sandboxed: bool, run_dir: Path, settings: ExecutionSettings, device: str):
    """The sandbox for a kernel about to start in `run_dir` (call `close` when it stopped)."""
    if not sandboxed:
        return Unsandboxed()
    roots = find_cgroups()
    if os.geteuid() != 0:
        return UnprivilegedSandbox(run_dir, settings, device, roots)
    if roots is None:
        raise RuntimeError("no cgroup memory and pids controllers")
    return KernelSandbox(run_dir, settings, device, roots)


async def sandbox_problem() -> str | None:
    """Why kernels cannot be sandboxed here, or None when a trial sandbox ran Python."""
    if sys.platform != "linux":
        return "sandboxing needs Linux"
    root = os.geteuid() == 0
    for tool in ("bwrap", "setpriv") if root else ("bwrap", "prlimit"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if root and find_cgroups() is None:
        return "no cgroup memory and pids controllers are available to limit kernels"
    if root and not MEMORY_SCRATCH.is_dir():
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
        remove_tree(run_dir)
    if trial.returncode != 0:
        detail = trial.stderr.strip()[-500:] or f"exit status {trial.returncode}"
        if not root:
            detail += " (without root, bubblewrap needs unprivileged user namespaces: kernel.unprivileged_userns_clone=1, " \
                      "user.max_user_namespaces > 0, and no AppArmor restriction on them)"
        return f"a trial sandbox failed: {detail}"
    return None
