"""A name server on loopback that takes every query and never answers.

What a resolver sees when the name server in /etc/resolv.conf is down behind a firewall that
drops packets: no answer and no error, so the system's resolver tries again and again (glibc:
5 s a try, twice) before it gives up. A client's socket timeouts do not cover that wait.

Port 53 is the only port /etc/resolv.conf can name, so the server needs root (or
CAP_NET_BIND_SERVICE); it takes an address of its own in 127.0.0.0/8, picked at random, so
that tests running side by side do not collide. A process uses it through a resolv.conf that
names it: in a chroot, the chroot's /etc/resolv.conf; on the host, one bind-mounted over
/etc/resolv.conf in a mount namespace of the process's own (``host_command``).

    with SilentNameServer() as dns:
        ...  # dns.resolv_conf is the file's text
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from support.offline_inputs import skip_or_fail
from support.slices import require

# Mounts the resolv.conf given over /etc/resolv.conf, in the mount namespace unshare made, and
# runs the command there: the host's own file is never touched.
_WITH_RESOLV_CONF = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'


class SilentNameServer:
    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.address = ""

    @property
    def resolv_conf(self) -> str:
        """A resolv.conf naming this server alone, with glibc's default timeout and attempts."""
        return f"nameserver {self.address}\noptions timeout:5 attempts:2\n"

    def host_command(self, resolv_conf: Path, command: Sequence[str]) -> list[str]:
        """``command`` on the host, seeing ``resolv_conf`` (a file holding ``resolv_conf``'s
        text) as /etc/resolv.conf."""
        wrapper = ["unshare", "--mount", "--fork", "sh", "-c", _WITH_RESOLV_CONF, "sh"]
        return [*wrapper, str(resolv_conf), *command]

    def __enter__(self) -> SilentNameServer:
        require("needs_root", "listens on port 53 as a silent name server")
        for _ in range(20):
            address = f"127.{random.randrange(64, 250)}.{random.randrange(1, 250)}.53"
            try:
                self._socket.bind((address, 53))
            except PermissionError:
                self._socket.close()
                skip_or_fail("needs root to listen on port 53 as a silent name server")
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            self.address = address
            return self  # queries queue up unread: no answer, no ICMP error
        raise OSError(errno.EADDRINUSE, "no free loopback address for a name server")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._socket.close()
