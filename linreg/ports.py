"""Loopback ports for the servers the project starts on any free port (tests, bench, the temporary API).

A port found free can be taken by someone else before the server binds it: on a
busy machine two tests asking at once get the same one. So a server is started
through `on_free_port`, which tries again on a new port when the start reports
the port taken. Ports a user chooses (`make server`'s 4200, `make ui`'s 4300)
never go through here: there a taken port is the user's to know about.
"""

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

ATTEMPTS = 5
# What a server's log says when its port was taken between `free_port()` and its bind:
# uvicorn and Python ("[Errno 98] ... address already in use"), PostgreSQL ("Address already in use").
TAKEN_MARKERS = ("address already in use", f"[errno {errno.EADDRINUSE}]")


class PortTaken(RuntimeError):
    """The server could not bind the port it was given; `on_free_port` tries another."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that the kernel had free a moment ago; bind it through `on_free_port`, which retries."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def says_port_taken(log_text: str) -> bool:
    """Whether a server's output reports that its port was already in use."""
    lowered = log_text.lower()
    return any(marker in lowered for marker in TAKEN_MARKERS)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def on_free_port(start: Callable[[int], T], attempts: int = ATTEMPTS, first: int | None = None) -> T:
    """`start(port)` on a fresh free port, again on another one each time it raises PortTaken.

    Args:
        start: starts the server on the port it is given and returns what the caller needs
            (the server, its URL); it raises PortTaken when the bind failed, after cleaning up.
        first: the port of the first attempt, when the caller already chose it (and named it
            elsewhere); later attempts take fresh ones.

    Raises:
        PortTaken: every one of `attempts` ports was taken before the server could bind it.
    """
    for attempt in range(1, attempts + 1):
        port = first if attempt == 1 and first is not None else free_port()
        try:
            return start(port)
        except PortTaken:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
