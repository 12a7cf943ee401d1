"""A TCP fault proxy (tests, the failover demo): forwards 127.0.0.1:port upstream; can cut.

`blackhole()` keeps every connection open but forwards nothing either way (a network
partition as a client sees it: requests vanish, nothing is refused), and new
connections hang the same way; `heal()` forwards again (bytes sent during the blackhole
are lost, as on a partition that dropped them). `drop()` resets every connection and
refuses new ones until `heal()`.
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """One listening port forwarding to (host, port), with switchable faults."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.blackholed = False
        self.dropping = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    def blackhole(self) -> None:
        self.blackholed = True

    def drop(self) -> None:
        self.dropping = True
        self._reset_all()

    def heal(self) -> None:
        self.blackholed = False
        self.dropping = False

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dropping:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.blackholed:
                    continue  # read and lost: the far side never hears of it
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)
