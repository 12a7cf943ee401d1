"""DataDirLock: one broker process per data directory.

An exclusive, non-blocking flock on `<directory>/lock`, held for the life of the broker.
The kernel drops it when the process dies, however it dies, so a crash never leaves a
stale lock to clean up. The holder writes its pid into the file so the refusal can say
who holds it.

Invariants:
- the lock file is never unlinked: deleting it would let a second process lock a new
  inode while the first still holds the old one;
- the descriptor is close-on-exec, so a broker's exec'd children never hold the lock.
  (A child made by a bare fork does share it; the broker does not fork.)
- flock locks belong to the open file description, so a second DataDirLock in the same
  process conflicts too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = "lock"


class DataDirLocked(Exception):
    """Another process (or another DataDirLock) holds the data directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"data directory {directory} is locked by {holder}: is another broker running on it?"
        )
        self.directory = directory
        self.pid = pid


class DataDirLock:
    """Exclusive lock on a data directory; use as a context manager or acquire/release."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise DataDirLocked at once (never waits)."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this DataDirLock")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(self.directory, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the lock too
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The pid is cleared first so a reader that races
        the release sees no pid rather than a stale one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
