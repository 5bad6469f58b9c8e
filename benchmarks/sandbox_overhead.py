"""What the sandbox costs per kernel: the same work with it and without, interleaved.

    PYTHONPATH=. python benchmarks/sandbox_overhead.py [pairs]

Three measurements, medians over the pairs:
- a kernel's life: start, ready, run `x = 1`, shut down, clean up (what the sandbox wraps);
- a whole `run_notebook` of a one-cell notebook (adds the grader's preamble, which imports
  torch: seconds of work whose noise on a busy machine hides a few tens of milliseconds);
- the sandbox's own steps: its cgroups made and removed, and /bin/true started through
  the wrapper (sh, bwrap, setpriv) against directly.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time

from nbformat.v4 import new_code_cell, new_notebook

from grader.config import ExecutionSettings
from grader.run.execute import GraderKernelManager, RunOptions, kernel_environment, run_notebook
from grader.run.sandbox import make_run_dir, open_sandbox, sandbox_problem


async def kernel_life(sandboxed: bool) -> float:
    started = time.perf_counter()
    run_dir = make_run_dir(sandboxed)
    for folder in ("work", "ipc"):
        (run_dir / folder).mkdir()
    sandbox = open_sandbox(sandboxed, run_dir, ExecutionSettings(), "cpu")
    km = GraderKernelManager(transport="ipc", ip=str(run_dir / "ipc" / "kernel"),
                             connection_file=str(run_dir / "ipc" / "kernel.json"))
    km.sandbox = sandbox
    with open(run_dir / "kernel.log", "wb") as log:
        await km.start_kernel(cwd=str(run_dir / "work"), stdout=log, stderr=log,
                              env=kernel_environment(run_dir, run_dir / "work", "cpu", None))
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    reply = await client.execute_interactive("x = 1", timeout=60)
    assert reply["content"]["status"] == "ok", reply
    client.stop_channels()
    await km.shutdown_kernel(now=True)
    await sandbox.close()
    await km.cleanup_resources()
    shutil.rmtree(run_dir)
    return time.perf_counter() - started


async def whole_run(sandboxed: bool) -> float:
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    result = await run_notebook(nb, ExecutionSettings(), RunOptions(capture=("x",), sandbox=sandboxed))
    assert result.status == "ok" and result.captured["x"] == 1, result
    return result.seconds


async def sandbox_steps() -> tuple[float, float, float]:
    """Seconds to make and close a sandbox's cgroups, and to run /bin/true through it and directly."""
    run_dir = make_run_dir(True)
    (run_dir / "kernel.json").write_text("")
    started = time.perf_counter()
    sandbox = open_sandbox(True, run_dir, ExecutionSettings(), "cpu")
    cmd = sandbox.command(["/bin/true"], str(run_dir / "kernel.json"))
    made = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wrapped = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(["/bin/true"], check=True)
    direct = time.perf_counter() - started
    started = time.perf_counter()
    await sandbox.close()
    closed = time.perf_counter() - started
    shutil.rmtree(run_dir)
    return made + closed, wrapped, direct


async def paired(measure, pairs: int) -> str:
    await measure(True)  # warm the page cache for both
    await measure(False)
    on, off = [], []
    for _ in range(pairs):
        on.append(await measure(True))
        off.append(await measure(False))
    median = statistics.median
    return (f"sandbox {median(on):.3f} s, none {median(off):.3f} s; difference of medians "
            f"{median(on) - median(off):+.3f} s, median of paired differences "
            f"{median(a - b for a, b in zip(on, off)):+.3f} s")


async def main(pairs: int) -> None:
    problem = await sandbox_problem()
    if problem:
        sys.exit(f"cannot sandbox here: {problem}")
    print(f"kernel life, {pairs} pairs: {await paired(kernel_life, pairs)}", flush=True)
    print(f"whole run_notebook, {pairs} pairs: {await paired(whole_run, pairs)}", flush=True)
    steps = [await sandbox_steps() for _ in range(pairs)]
    median = statistics.median
    print(f"sandbox cgroups made + removed: {median(s[0] for s in steps) * 1000:.1f} ms; "
          f"/bin/true through the wrapper {median(s[1] for s in steps) * 1000:.1f} ms, "
          f"directly {median(s[2] for s in steps) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
