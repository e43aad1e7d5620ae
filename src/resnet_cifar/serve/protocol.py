"""uvicorn's HTTP/1.1 protocol (httptools) with the limits a server reachable by others needs.

uvicorn bounds none of these itself: a request head of any size or number of header lines, a connection that
never finishes its head (or never sends one), a connection count up to the open-file limit. And when an answer
ends a connection whose request body is still arriving (a 413 to a client that sent ``Connection: close``), the
socket is closed at once and the client reads a reset instead of the answer. This subclass adds, per connection:

- a head limit: at most ``max_header_bytes`` bytes and ``max_headers`` lines, else 431;
- a head timeout: the request line and headers must arrive within ``header_timeout_s`` of the connection opening
  or the previous answer, else 408 (a connection that sent nothing is closed without one);
- a connection cap: connections beyond ``max_connections`` are closed at once, so that idle ones cannot use up
  the process's open files;
- a lingering close: the rest of a refused body is read and discarded (at most ``LINGER_BYTES``, within the head
  timeout) before the connection closes, so that every client reads the answer;
- the parser's own refusals (bad request line, Content-Length, Transfer-Encoding, unknown method) as the JSON
  errors every other answer uses.

The body timeout is the app's (``serve.app``), which reads the body.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# The most of a refused body read and discarded before the connection closes (a lingering close).
LINGER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """The per-connection limits (``resnet-cifar serve`` options of the same names)."""

    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    max_connections: int = 1000


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the limits."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits of the module's docstring; ``limits`` is set before the server starts."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_tail = b""
        self._header_lines = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._discarded = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.close()
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_bytes + len(data) > self.limits.max_header_bytes:
            # Only the head counts: it ends at the first empty line (whose CRLFs may straddle two reads).
            end = (self._head_tail + data).find(b"\r\n\r\n")
            if end < 0 or self._head_bytes - len(self._head_tail) + end + 4 > self.limits.max_header_bytes:
                self._answer_and_close(431, f"the request head exceeds {self.limits.max_header_bytes:,} bytes "
                                            f"(--max-header-bytes)")
                return
        if self._in_head:
            self._head_bytes += len(data)
            self._head_tail = (self._head_tail + data)[-3:]
        super().data_received(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.limits.max_headers:
            self._refusal = (431, f"the request has more than {self.limits.max_headers} header lines "
                                  f"(--max-headers)")
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _LingeringClose(self)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if self.cycle is not None and self.cycle.response_complete:  # the rest of an answered request: discarded
            self._discarded += len(body)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and not self.cycle.keep_alive:
            self.transport.close()  # a lingering close is over: the whole body has been read

    def on_response_complete(self) -> None:
        answered = self.cycle
        super().on_response_complete()
        if self.transport.is_closing() or self.cycle is not answered:  # closed, or a pipelined request began
            return
        if answered is not None and answered.more_body:  # answered before its body arrived: linger, bounded
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self.transport.close)
        else:
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        status, message = self._refusal or (400, "the request is not valid HTTP/1.1 (its request line, a header, "
                                                 "Content-Length or Transfer-Encoding)")
        self._answer_and_close(status, message)

    def _await_head(self) -> None:
        """Start waiting for a request head: counted from zero, due within the head timeout."""
        self._in_head, self._head_bytes, self._header_lines, self._discarded = True, 0, 0, 0
        self._head_tail, self._refusal = b"", None
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
        else:
            self._answer_and_close(408, f"the request head did not arrive within {self.limits.header_timeout_s:g} "
                                        f"s (--header-timeout)")

    def _answer_and_close(self, status: int, message: str) -> None:
        """Write a JSON error answer on the connection itself (no request reached the app) and close it."""
        body = json.dumps({"error": message}).encode()
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._cancel_head_timer()


class _LingeringClose:
    """The connection's transport as a request's answer sees it: closing it while the request body is still
    arriving keeps reading (and discarding) that body first, so that the client reads the answer, not a reset."""

    def __init__(self, protocol: LimitedHttpToolsProtocol) -> None:
        self._protocol, self._transport = protocol, protocol.transport

    def close(self) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.more_body and not cycle.disconnected:
            return  # on_message_complete, LINGER_BYTES or the keep-alive timeout closes it
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
