"""The one network guard of the test suite: any IPv4/IPv6 connection attempt fails the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


class NetworkAttempt(AssertionError):
    """Raised where code tried to open a network connection."""


@contextmanager
def refuse_network() -> Iterator[list]:
    """Refuse every IP connection (connect, connect_ex, create_connection); yield the attempts made.

    Unix sockets stay allowed: Qt and multiprocessing use them locally.
    """
    attempts: list = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create = socket.create_connection

    def is_ip(sock) -> bool:
        return getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)

    def connect(self, address, *args, **kwargs):
        if is_ip(self):
            attempts.append(address)
            raise NetworkAttempt(f"network connection attempted to {address!r}")
        return real_connect(self, address, *args, **kwargs)

    def connect_ex(self, address, *args, **kwargs):
        if is_ip(self):
            attempts.append(address)
            raise NetworkAttempt(f"network connection attempted to {address!r}")
        return real_connect_ex(self, address, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise NetworkAttempt(f"network connection attempted to {address!r}")

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection = create_connection
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
        socket.create_connection = real_create
