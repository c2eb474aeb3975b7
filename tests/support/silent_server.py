"""A TCP listener on loopback that accepts every connection and never sends a byte.

What a firewall black hole or a hung SMTP server looks like to a client: the connection
succeeds, and the greeting never comes. Used to prove the check's deadline holds.
"""

from __future__ import annotations

import socket

from support.tcp_server import ThreadedTcpServer


class SilentServer(ThreadedTcpServer):
    def _serve(self, connection: socket.socket) -> None:
        pass  # held open, in silence, until the block ends (``accepted`` keeps it)
