"""The grader's kernel channels against a fake kernel's sockets: a message over ZeroMQ's
limit is refused unread and the channel keeps working; a kernel that dies leaves what it
sent readable. (tests/test_hardening.py tries a 400 MB print on a real kernel.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from grader.run.channels import CappedChannel, CappedShellChannel, MessageRefused

from conftest import ROOT

LIMIT = 10_000  # this test's MAXMSGSIZE: the grader's is 32 MiB


def grader_socket(kind: int, url: str) -> zmq.asyncio.Socket:
    context = zmq.asyncio.Context.instance()
    socket = context.socket(kind)
    socket.setsockopt(zmq.MAXMSGSIZE, LIMIT)
    if kind == zmq.SUB:
        socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(url)
    return socket


async def texts(channel, timeout=1.0) -> list[str]:
    got = []
    try:
        while True:
            got.append((await channel.get_msg(timeout=timeout))["content"]["text"])
    except Empty:
        return got


def test_an_oversized_output_message_is_refused_and_later_ones_arrive(tmp_path):
    async def main():
        url = f"ipc://{tmp_path}/iopub"
        kernel = zmq.Context().socket(zmq.PUB)
        kernel.bind(url)
        session = Session(key=b"secret")
        channel = CappedChannel(grader_socket(zmq.SUB, url), session)
        await asyncio.sleep(0.3)
        session.send(kernel, "stream", {"name": "stdout", "text": "before"})
        assert await texts(channel, 0.5) == ["before"]
        session.send(kernel, "stream", {"name": "stdout", "text": "x" * (2 * LIMIT)})
        with pytest.raises(MessageRefused):
            await channel.get_msg(timeout=5)
        for _ in range(20):  # messages published before the new subscription took effect are lost
            session.send(kernel, "stream", {"name": "stdout", "text": "after"})
            await asyncio.sleep(0.05)
        assert "after" in await texts(channel, 0.5)
        channel.close()
        kernel.close(linger=0)

    asyncio.run(main())


def test_an_oversized_reply_becomes_an_error_reply_and_the_next_request_is_answered(tmp_path):
    async def main():
        url = f"ipc://{tmp_path}/shell"
        kernel = zmq.Context().socket(zmq.ROUTER)
        kernel.bind(url)
        session = Session(key=b"secret")
        channel = CappedShellChannel(grader_socket(zmq.DEALER, url), session)

        def answer(text: str) -> None:
            identities, request = session.recv(kernel, mode=0)
            session.send(kernel, "execute_reply", {"status": "ok", "text": text}, parent=request, ident=identities)

        request = session.msg("execute_request", {"code": "print('x' * 10**9)"})
        channel.send(request)
        answer("y" * (2 * LIMIT))
        reply = await channel.get_msg(timeout=5)
        assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert (reply["msg_type"], reply["content"]["status"], reply["content"]["ename"]) == (
            "execute_reply", "error", "MessageTooLarge")
        channel.send(session.msg("execute_request", {"code": "1"}))
        await asyncio.sleep(0.3)  # the new connection's handshake
        answer("small")
        assert (await channel.get_msg(timeout=5))["content"]["text"] == "small"
        channel.close()
        kernel.close(linger=0)

    asyncio.run(main())


DYING_KERNEL = """
import asyncio, tempfile, time
import zmq
from jupyter_client.session import Session
from tests.test_channels import CappedChannel, grader_socket, texts

async def main():
    url = f"ipc://{tempfile.mkdtemp()}/iopub"
    kernel = zmq.Context().socket(zmq.PUB)
    kernel.bind(url)
    session = Session(key=b"secret")
    channel = CappedChannel(grader_socket(zmq.SUB, url), session)
    await asyncio.sleep(0.3)
    for i in range(3):
        session.send(kernel, "stream", {"name": "stdout", "text": f"line {i}"})
    time.sleep(0.2)
    kernel.close(linger=0)  # the kernel dies with its messages queued at the grader
    print(await texts(channel))

asyncio.run(main())
"""


def test_a_dying_kernels_queued_output_is_still_read():
    """Reconnecting with `disconnect` first made libzmq abort the grader on the next read."""
    done = subprocess.run([sys.executable, "-c", DYING_KERNEL], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['line 0', 'line 1', 'line 2']"
