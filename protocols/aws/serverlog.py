"""aiohttp's server logger for the SQS port: a malformed request is the client's fault,
so it is one INFO line (peer, short reason, a snippet of the bad bytes), not an ERROR
with a traceback of aiohttp's parser.

aiohttp answers a request its parser refuses (an HttpProcessingError: bad request line,
bad header, bad Content-Length, TLS on the plain port, ...) with 400 and closes that
connection; it then logs the error through the `logger` its RequestHandler was given,
with `exception()` (or `debug()` for a bad method in the first request), passing the
exception as `exc_info`. Every other record passes through unchanged, so a real failure
in the server keeps its traceback. A request cut off by its client (ConnectionError
while its body was read) is one DEBUG line. This is the HTTP analogue of STOMP's
framing-error line ("closing STOMP connection from ...: reason (near ...)").
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

SHORT = 100  # characters kept of the reason and of the snippet of offending bytes


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Give to aiohttp's AppRunner as `logger`: HttpProcessingError → one INFO line."""

    def __init__(self, logger: logging.Logger, listener: str) -> None:
        super().__init__(logger, {})
        self.listener = listener

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if not self._malformed(args, exc_info):
            super().exception(msg, *args, exc_info=exc_info, **kw)

    def debug(self, msg: object, *args: object, **kw: Any) -> None:
        if not self._malformed(args, kw.get("exc_info")):
            super().debug(msg, *args, **kw)

    def _malformed(self, args: tuple[object, ...], exc_info: Any) -> bool:
        """Log a refused request's one line; False if `exc_info` is not one."""
        # aiohttp's call is ("Error handling request from %s", request.remote).
        peer = args[0] if args else "?"
        if isinstance(exc_info, ConnectionError):
            # The handler was reading a body whose connection was lost: the client went
            # away, which is not the broker's error (aiohttp logs it as one).
            self.logger.debug("%s: %s went away mid-request (%r)", self.listener, peer, exc_info)
            return True
        if not isinstance(exc_info, HttpProcessingError):
            return False
        reason, snippet = describe(exc_info)
        if snippet:
            self.logger.info(
                "%s: malformed HTTP request from %s: %s (near %s)",
                self.listener,
                peer,
                reason,
                snippet,
            )
        else:
            self.logger.info("%s: malformed HTTP request from %s: %s", self.listener, peer, reason)
        return True


def describe(exc: HttpProcessingError) -> tuple[str, str]:
    """A one-line reason and the snippet of bad bytes aiohttp's message shows, if any.

    aiohttp's C parser words it "Invalid header token:\\n\\n    b'Bad Header'\\n    ^"
    (reason, the bytes, a caret); the Python parser and the exception classes give one
    line ("Bad HTTP method in status line '...'"). Both become one short line."""
    lines = [line.strip() for line in (exc.message or type(exc).__name__).splitlines()]
    lines = [line for line in lines if line and set(line) != {"^"}]
    reason = lines[0].rstrip(":") if lines else type(exc).__name__
    snippet = lines[1] if len(lines) > 1 else ""
    return _short(reason), _short(snippet)


def _short(text: str) -> str:
    # Escape control characters (the bytes are the peer's) and cap the length, so the
    # line stays one line of bounded size whatever was sent.
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= SHORT else text[: SHORT - 3] + "..."
