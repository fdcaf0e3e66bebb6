"""linreg.ports: the one way the project starts a server on a free port (retrying a taken one)."""

import socket

import pytest

from linreg import ports
from linreg.ports import PortTaken, free_port, on_free_port, port_open, says_port_taken


def test_a_free_port_can_be_bound_and_nothing_listens_on_it():
    port = free_port()
    assert 1024 <= port <= 65535 and not port_open(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_listening_port_is_open():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_open(sock.getsockname()[1])


@pytest.mark.parametrize("log, taken", [
    ("ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 4200): address already in use", True),
    ('LOG:  could not bind IPv4 address "127.0.0.1": Address already in use', True),
    ("OSError: [Errno 98] Address in use", True),
    ("sqlite3.OperationalError: database is locked", False),
    ("", False),
])
def test_a_taken_port_is_recognised_in_a_servers_log(log, taken):
    assert says_port_taken(log) is taken


def test_a_start_on_a_taken_port_is_tried_again_on_another(monkeypatch):
    offered = iter([1111, 2222, 3333])
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": next(offered))
    tried = []

    def start(port):
        tried.append(port)
        if port != 3333:
            raise PortTaken(str(port))
        return f"server on {port}"

    assert on_free_port(start) == "server on 3333" and tried == [1111, 2222, 3333]


def test_the_first_port_can_be_the_callers_and_other_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": 2222)
    tried = []

    def start(port):
        tried.append(port)
        if port == 1111:
            raise PortTaken("1111")
        raise ValueError("not a port problem")

    with pytest.raises(ValueError):
        on_free_port(start, first=1111)
    assert tried == [1111, 2222]


def test_it_gives_up_after_its_attempts(monkeypatch):
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": 1111)
    calls = []

    def start(port):
        calls.append(port)
        raise PortTaken(str(port))

    with pytest.raises(PortTaken):
        on_free_port(start, attempts=3)
    assert len(calls) == 3
