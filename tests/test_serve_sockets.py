"""`serve --workers N`: each worker listens on a socket of its own on the one address (workers._Sockets)."""

from __future__ import annotations

import socket

import pytest

from citizen_view.serving.workers import _Sockets

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="one shared socket without SO_REUSEPORT")


def test_each_worker_gets_its_own_socket_on_the_one_port_and_a_successor_a_new_one():
    sockets = _Sockets("127.0.0.1", 0)
    try:
        first, second = sockets.new(0), sockets.new(1)
        assert first is not second and first.fileno() != second.fileno()
        port = first.getsockname()[1]
        assert port != 0 and second.getsockname() == ("127.0.0.1", port)
        for sock in (first, second):  # both listen, as their workers do once ready, and both take connections
            sock.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        successor = sockets.new(0)  # worker 0 died: its socket is closed, its successor binds a new one
        assert first.fileno() == -1 and successor is not first
        assert successor.getsockname() == ("127.0.0.1", port) and sockets.held == {0: successor, 1: second}
    finally:
        sockets.close()
    assert all(s.fileno() == -1 for s in (second, successor))
