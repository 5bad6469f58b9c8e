"""The sandbox without root: a user namespace and rlimits instead of root's uid switch and cgroups.

Run from root through `unshare --user --map-user=65534`, so the grader runs as uid 65534
with no privilege on the host (it still reads the interpreter under /root, which it owns
outside). The whole sandbox suite can be run the same way:
`unshare --user --map-user=65534 --map-group=65534 -- .venv/bin/python -m pytest tests/test_sandbox.py tests/test_execute.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

UNPRIVILEGED = ["unshare", "--user", "--map-user=65534", "--map-group=65534", "--"]
RUN = """
import asyncio, json, nbformat
from grader.config import ExecutionSettings
from grader.run.execute import RunOptions, run_notebook
from grader.run.sandbox import sandbox_problem

problem = asyncio.run(sandbox_problem())
cells = [
    "import ctypes, errno, os, resource\\nlibc = ctypes.CDLL(None, use_errno=True)\\n"
    "namespace = 'allowed' if libc.unshare(0x10000000) == 0 else errno.errorcode[ctypes.get_errno()]",
    "load = open('/proc/loadavg').read().strip()\\nuid = os.getuid()",
    "try:\\n    block = bytearray(3 * 2**30)\\n    memory = 'allocated'\\nexcept MemoryError:\\n    memory = 'MemoryError'",
    "import torch\\nx = torch.ones(3, requires_grad=True)\\n(x.sum() ** 2).backward()\\ngrad = x.grad.sum().item()",
]
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
result = asyncio.run(run_notebook(nb, ExecutionSettings(memory_limit_mb=1024), RunOptions(
    capture=("namespace", "load", "uid", "memory", "grad"))))
print(json.dumps({"problem": problem, "status": result.status, "why": result.capture_error,
                  "values": {k: result.captured[k] for k in result.captured.values} if result.captured else {}}))
"""


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("bwrap") is None:
        return False
    return subprocess.run([*UNPRIVILEGED, "bwrap", "--unshare-user", "--ro-bind", "/", "/", "true"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs root to enter an unprivileged user namespace for the test")
def test_without_root_the_sandbox_holds_what_it_says():
    done = subprocess.run([*UNPRIVILEGED, sys.executable, "-c", RUN], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["problem"] is None  # before: "sandboxing needs root"
    assert outcome["status"] == "ok", outcome["why"]
    assert outcome["values"] == {"namespace": "EPERM", "load": "0.00 0.00 0.00 1/1 1", "uid": 65534,
                                 "memory": "MemoryError", "grad": 18.0}
