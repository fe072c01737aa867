"""Anchor locations: where the chain head is recorded apart from the log (a file, syslog), and how to name them."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from citizen_view.audit.records import canonical, is_anchor, parse
from citizen_view.audit.storage import fsync_dir, last_valid, lines


@runtime_checkable
class AnchorSink(Protocol):
    """A second place where the writer records each anchor, ideally on another host or mount than the log."""

    def describe(self) -> str:
        """A short name for messages, in the form `parse_sink` takes ("file:/path", "syslog:host:514")."""
        ...

    def write(self, anchor: dict) -> None:
        """Record one anchor durably; raise when that failed."""
        ...

    def read(self) -> list[dict] | None:
        """The anchors recorded so far, oldest first; None when this sink cannot be read back."""
        ...


class FileSink:
    """Anchors as JSON lines in a file, appended with O_APPEND and fsync'ed; missing folders are created."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"file:{self.path}"

    def write(self, anchor: dict) -> None:
        line = (canonical(anchor) + "\n").encode("utf-8")
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened per write, not held: an anchors file deleted or replaced while the writer runs is then
        # recreated where verify looks for it, instead of anchors going on into an unlinked file.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.path, flags, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    # A line torn by a crash: end it, so it stays visible (verify reports it as malformed)
                    # and this anchor is a line of its own. O_APPEND writes at the end whatever the offset.
                    line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def read(self) -> list[dict]:
        """The well-formed anchors in the file (verify streams `records()` instead, and reports the rest)."""
        return [value for _, value in self.records() if is_anchor(value)]

    def records(self) -> Iterator[tuple[int, Any]]:
        """Each line's number and parsed JSON (None when not JSON), read one at a time; nothing when missing."""
        if self.path.exists():
            yield from ((number, parse(raw)) for number, raw in lines(self.path))

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"


class SyslogSink:
    """Anchors sent to syslog as one JSON message each (facility auth, severity info); it cannot be read back.

    `address` is a unix socket path ("/dev/log") or a (host, port) pair for UDP. It writes to a socket of
    its own rather than through logging's SysLogHandler, because that handler reports a failed send on
    stderr and carries on: an anchor that did not leave must raise, like any other failed anchor write.
    """

    def __init__(
        self,
        address: str | tuple[str, int] = "/dev/log",
        *,
        facility: int = SysLogHandler.LOG_AUTH,
        tag: str = "citizen-view-audit",
    ) -> None:
        self.address = address if isinstance(address, str) else (str(address[0]), int(address[1]))
        self._prefix = f"<{(facility << 3) | SysLogHandler.LOG_INFO}>{tag}: "
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._target: Any = None  # a resolved (host, port) for UDP; None for a connected unix socket

    def describe(self) -> str:
        if isinstance(self.address, str):
            return "syslog" if self.address == "/dev/log" else f"syslog:{self.address}"
        host, port = self.address
        return f"syslog:[{host}]:{port}" if ":" in host else f"syslog:{host}:{port}"

    def write(self, anchor: dict) -> None:
        message = (self._prefix + canonical(anchor)).encode("utf-8")
        with self._lock:
            try:
                self._send(message)
            except OSError:
                # A restarted syslog daemon leaves a connected unix socket stale: reconnect once, then fail.
                self._close()
                self._send(message)

    def read(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _send(self, message: bytes) -> None:
        if self._socket is None:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    sock.connect(self.address)
                except OSError:
                    sock.close()
                    raise
                self._socket, self._target = sock, None
            else:
                family, _, proto, _, target = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
                self._socket, self._target = socket.socket(family, socket.SOCK_DGRAM, proto), target
        if self._target is None:
            self._socket.send(message)
        else:
            self._socket.sendto(message, self._target)

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __repr__(self) -> str:
        return f"SyslogSink({self.address!r})"


def parse_sink(spec: str) -> AnchorSink:
    """The sink a spec names: "file:/path", "syslog" (the local /dev/log), "syslog:/socket" or "syslog:HOST:PORT"."""
    kind, colon, rest = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind == "file" and rest:
        return FileSink(Path(rest))
    if kind == "syslog" and not colon:
        return SyslogSink("/dev/log")
    if kind == "syslog" and rest.startswith("/"):
        return SyslogSink(rest)
    if kind == "syslog":
        host, _, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:514
        if host and port.isdigit() and 0 < int(port) < 65536:
            return SyslogSink((host, int(port)))
    raise ValueError(
        f"not an anchor sink: {spec!r}; use 'file:/path/to/anchors.jsonl', 'syslog' (the local /dev/log), "
        "'syslog:/path/to/socket' or 'syslog:HOST:PORT'"
    )


def anchors_path(path: Path) -> Path:
    """Where the anchors of the log at `path` are kept beside it."""
    path = Path(path)
    return path.with_suffix(path.suffix + ".anchors")


def as_sinks(sinks: Sequence[AnchorSink | str]) -> tuple[AnchorSink, ...]:
    """AnchorSinks from sinks and sink specs; a clear TypeError for anything else."""
    if isinstance(sinks, str | bytes):
        raise TypeError("sinks is a sequence of AnchorSinks or sink specs, not a single string")
    result = []
    for sink in sinks:
        sink = parse_sink(sink) if isinstance(sink, str) else sink
        if not isinstance(sink, AnchorSink):
            raise TypeError(f"not an AnchorSink (describe, write, read): {sink!r}")
        result.append(sink)
    return tuple(result)


def last_anchor(location: AnchorSink) -> tuple[bool, dict | None]:
    """(readable, its last well-formed anchor or None)."""
    if isinstance(location, FileSink):
        return True, last_valid(location.path, is_anchor) if location.path.exists() else None
    items = location.read()
    if items is None:
        return False, None
    return True, next((item for item in reversed(items) if is_anchor(item)), None)


def same_file(path: Path, *others: Path) -> bool:
    resolved = path.resolve()
    return any(resolved == other.resolve() for other in others)
