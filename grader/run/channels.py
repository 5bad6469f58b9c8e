"""Kernel channels that measure a message before decoding it.

jupyter_client turns every message into Python objects before anyone can look at its
size: one 400 MB print cost 1.8 GB of the grader's memory. Here a message is received
without copying, its frames are measured, and one over the channel's cap is never
decoded: it is replaced by a short message saying what was cut (its header is checked
against the session's signature first, as the original would have been).

A frame over `REFUSED_MESSAGE_BYTES` is not even received: libzmq reads its length and
drops the connection before allocating it (`zmq.MAXMSGSIZE`), so its cost to the grader
is nil. libzmq does not reconnect after that, so a channel watches its socket for a
dropped connection, reads what arrived before, connects a new socket, and once the kernel
answers its handshake (a dead kernel does not: that stays nbclient's dead kernel) says
what was lost: the output channel raises `MessageRefused` to its reader, the shell
channel answers the request that was waiting with an error reply.
"""

from __future__ import annotations

import hmac
import time
import typing as t
from queue import Empty

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type
from zmq.utils.monitor import parse_monitor_message

IOPUB_MESSAGE_BYTES = 2**20  # outputs, widget (comm) messages: a cell's kept output is far smaller
SHELL_MESSAGE_BYTES = 16 * 2**20  # replies: an error's reply carries its whole message and traceback
REFUSED_MESSAGE_BYTES = 32 * 2**20  # any frame over this is refused by libzmq, unread (on every socket)
QUEUED_MESSAGES = 4  # received but not yet read, per socket: further ones wait in the kernel (or are dropped there)
CUT_MARK = "grader_cut"  # metadata key of a replacement message: the original's type, size and limit


def kernel_context() -> zmq.asyncio.Context:
    """A ZeroMQ context whose every socket refuses frames over `REFUSED_MESSAGE_BYTES` and
    holds at most `QUEUED_MESSAGES` unread: messages of 30 MB sent on a channel the grader
    does not read (stdin, control, or output during the capture) cost it 1.7 GB per 60."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, REFUSED_MESSAGE_BYTES)
    context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)
    return context


class MessageRefused(Exception):
    """The kernel sent a message over `REFUSED_MESSAGE_BYTES`: it and what followed it on
    the same connection are lost."""


class CappedChannel(AsyncZMQSocketChannel):
    max_bytes = IOPUB_MESSAGE_BYTES

    def __init__(self, socket: zmq.asyncio.Socket, session, loop=None):
        super().__init__(socket, session, loop)
        self.endpoint = socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.monitor = self._watch(socket)
        self.reconnecting = False

    @staticmethod
    def _watch(socket: zmq.asyncio.Socket) -> zmq.asyncio.Socket:
        return socket.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)

    async def get_msg(self, timeout: float | None = None) -> dict[str, t.Any]:
        """The next message, as jupyter_client's; a dropped connection is made again meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            poller = zmq.asyncio.Poller()
            poller.register(self.socket, zmq.POLLIN)
            poller.register(self.monitor, zmq.POLLIN)
            wait = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(await poller.poll(wait))
            if self.socket in ready:  # first: what arrived before a connection dropped
                return await self._recv()
            if self.monitor not in ready:
                raise Empty
            event = parse_monitor_message(await self.monitor.recv_multipart())["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self._reconnect()
            elif self.reconnecting:  # the kernel answered: it lives, so the message was refused
                self.reconnecting = False
                reply = self.refused()
                if reply is not None:
                    return reply

    def _reconnect(self) -> None:
        """A new socket in place of the one whose connection dropped. libzmq does not
        reconnect after refusing a message; connecting the same socket to the same endpoint
        again does nothing; and `disconnect` with messages still queued makes libzmq abort
        the whole process on a later read (zeromq/libzmq#2163)."""
        old, old_monitor = self.socket, self.monitor
        self.socket = old.context.socket(old.type)  # a new identity, the context's limits
        self.socket.linger = old.linger
        if old.type == zmq.SUB:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.monitor = self._watch(self.socket)
        self.socket.connect(self.endpoint)
        self.reconnecting = True
        _close(old, old_monitor)

    def refused(self) -> dict[str, t.Any] | None:
        """What a reader gets in place of a refused message: an output reader, the end of its cell's output."""
        raise MessageRefused(f"a message over {REFUSED_MESSAGE_BYTES:,} bytes was refused")

    def close(self) -> None:
        if self.socket is not None:
            _close(self.socket, self.monitor)
            self.socket = None

    stop = close

    async def _recv(self, **kwargs: t.Any) -> dict[str, t.Any]:
        frames = await self.socket.recv_multipart(copy=False)
        _, message = self.session.feed_identities(frames, copy=False)
        size = sum(len(frame.buffer) for frame in message)
        if size <= self.max_bytes:
            return self.session.deserialize(message, copy=False)
        return self._replacement(message, size)

    def _replacement(self, frames: list, size: int) -> dict[str, t.Any]:
        """A small message in place of an oversized one, routed to the same request."""
        signature, header, parent, *signed = [frame.buffer for frame in frames]
        if self.session.auth is not None and not hmac.compare_digest(
                bytes(signature), self.session.sign([header, parent, *signed[:2]])):
            raise ValueError("an oversized kernel message has an invalid signature")
        header, parent = self.session.unpack(bytes(header)), self.session.unpack(bytes(parent))
        kind = header.get("msg_type", "?")
        content, msg_type = self.cut_content(kind, size)
        cut = {"type": kind, "bytes": size, "limit": self.max_bytes}
        return {"header": {**header, "msg_type": msg_type}, "msg_id": header.get("msg_id"), "msg_type": msg_type,
                "parent_header": parent, "metadata": {CUT_MARK: cut}, "content": content, "buffers": []}

    def cut_content(self, kind: str, size: int) -> tuple[dict, str]:
        notice = f"[a {kind} message of {size:,} bytes was dropped: over the limit of {self.max_bytes:,}]\n"
        return {"name": "stderr", "text": notice}, "stream"


def _close(socket: zmq.asyncio.Socket, monitor: zmq.asyncio.Socket) -> None:
    socket.disable_monitor()
    monitor.close(linger=0)
    socket.close(linger=0)


class CappedShellChannel(CappedChannel):
    max_bytes = SHELL_MESSAGE_BYTES

    def __init__(self, socket: zmq.asyncio.Socket, session, loop=None):
        super().__init__(socket, session, loop)
        self.waiting: dict[str, t.Any] | None = None  # the header of the request whose reply is awaited

    def send(self, msg: dict[str, t.Any]) -> None:
        self.waiting = msg["header"]
        super().send(msg)

    async def _recv(self, **kwargs: t.Any) -> dict[str, t.Any]:
        reply = await super()._recv(**kwargs)
        if self.waiting and reply["parent_header"].get("msg_id") == self.waiting["msg_id"]:
            self.waiting = None
        return reply

    def refused(self) -> dict[str, t.Any] | None:
        """The error reply of the request whose reply was refused (None when no request waited)."""
        request, self.waiting = self.waiting, None
        if request is None:
            return None
        kind = request["msg_type"].replace("_request", "_reply")
        content = {"status": "error", "ename": "MessageTooLarge",
                   "evalue": f"the cell's {kind} was over {REFUSED_MESSAGE_BYTES:,} bytes and was refused",
                   "traceback": []}
        header = self.session.msg_header(kind)
        return {"header": header, "msg_id": header["msg_id"], "msg_type": kind, "parent_header": request,
                "metadata": {}, "content": content, "buffers": []}

    def cut_content(self, kind: str, size: int) -> tuple[dict, str]:
        """An oversized reply can only be an error's (an ok reply is a few hundred bytes):
        the cell failed with a message too large to read."""
        return ({"status": "error", "ename": "MessageTooLarge",
                 "evalue": f"the cell's {kind} was {size:,} bytes, over the limit of {self.max_bytes:,}",
                 "traceback": []}, kind)


class CappedKernelClient(AsyncKernelClient):
    """The kernel client the grader's kernels get: shell and IOPub messages capped, every
    socket refusing frames over `REFUSED_MESSAGE_BYTES`."""

    shell_channel_class = Type(CappedShellChannel)
    iopub_channel_class = Type(CappedChannel)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """jupyter_client's wait, less its last step: 0.2 s waiting for IOPub to fall silent
        (0.4 s of every submission's wall). What it would discard answers kernel_info
        requests, and nbclient reads only messages whose parent is its own request."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)  # IOPub is connected: the request's status came
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    def _context_default(self) -> zmq.asyncio.Context:
        self._created_context = True
        return kernel_context()
