"""Kernel channels that measure a message before decoding it.

jupyter_client turns every message into Python objects before anyone can look at its
size: one 400 MB print cost 1.8 GB of the grader's memory. Here a message is received
without copying, its frames are measured, and one over the channel's cap is never
decoded: it is replaced by a short message saying what was cut (its header is checked
against the session's signature first, as the original would have been).
"""

from __future__ import annotations

import hmac
import time
import typing as t
from queue import Empty

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

IOPUB_MESSAGE_BYTES = 2**20  # outputs, widget (comm) messages: a cell's kept output is far smaller
SHELL_MESSAGE_BYTES = 16 * 2**20  # replies: an error's reply carries its whole message and traceback
CUT_MARK = "grader_cut"  # metadata key of a replacement message: the original's type, size and limit


class CappedChannel(AsyncZMQSocketChannel):
    max_bytes = IOPUB_MESSAGE_BYTES

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


class CappedShellChannel(CappedChannel):
    max_bytes = SHELL_MESSAGE_BYTES

    def cut_content(self, kind: str, size: int) -> tuple[dict, str]:
        """An oversized reply can only be an error's (an ok reply is a few hundred bytes):
        the cell failed with a message too large to read."""
        return ({"status": "error", "ename": "MessageTooLarge",
                 "evalue": f"the cell's {kind} was {size:,} bytes, over the limit of {self.max_bytes:,}",
                 "traceback": []}, kind)


class CappedKernelClient(AsyncKernelClient):
    """The kernel client the grader's kernels get: shell and IOPub messages capped."""

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
