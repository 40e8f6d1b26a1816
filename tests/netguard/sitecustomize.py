"""Loaded by every Python process of a guarded run: any non-loopback connection fails loudly."""

import socket

_connect = socket.socket.connect


def _guarded(self, address, *args):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (
        host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")
    ):
        return _connect(self, address, *args)
    raise RuntimeError(f"network access blocked during the workflow run: {address!r}")


socket.socket.connect = _guarded
