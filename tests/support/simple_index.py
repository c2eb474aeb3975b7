"""A package index on loopback, in the "simple" format pip reads, made from a wheelhouse.

The wheels of ``.test-inputs/wheelhouse`` published on a ``support.http_server.LocalServer``
under a path prefix: ``<prefix>/<name>/`` lists a project's wheels (with their SHA-256, as a real
index does), ``<prefix>/../files/<wheel>`` serves one. A build pointed at it with
``PIP_INDEX_URL`` downloads over HTTP, so what it fetches can be counted::

    with LocalServer() as server:
        index = SimpleIndex(server, wheelhouse, prefix="/simple")
        env["PIP_INDEX_URL"] = index.url
        ...
        index.bytes_served()  # the bodies of every index page and wheel pip asked for
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import defaultdict
from pathlib import Path

from support.http_server import LocalServer


def project_name(wheel: Path) -> str:
    """The normalised project name of a wheel file (PEP 503): ``charset-normalizer``."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()


class SimpleIndex:
    def __init__(self, server: LocalServer, wheelhouse: Path, *, prefix: str = "/simple") -> None:
        self.server = server
        self.prefix = prefix.rstrip("/")
        self._bodies: dict[str, bytes] = {}
        projects: dict[str, list[Path]] = defaultdict(list)
        for wheel in sorted(wheelhouse.glob("*.whl")):
            projects[project_name(wheel)].append(wheel)
        files = self.prefix.rsplit("/", 1)[0] + "/files"
        for name, wheels in projects.items():
            links = []
            for wheel in wheels:
                body = wheel.read_bytes()
                path = f"{files}/{wheel.name}"
                self._publish(path, body)
                digest = hashlib.sha256(body).hexdigest()
                links.append(f'<a href="{html.escape(path)}#sha256={digest}">{wheel.name}</a>')
            page = "<!DOCTYPE html><html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n"
            self._publish(f"{self.prefix}/{name}/", page.encode(), content_type="text/html")

    @property
    def url(self) -> str:
        return self.server.url(self.prefix)

    def _publish(self, path: str, body: bytes, content_type: str = "") -> None:
        self._bodies[path] = body
        headers = {"Content-Type": content_type} if content_type else {}
        self.server.serve(path, body, headers=headers)

    def bytes_served(self) -> int:
        """Bytes of every index page and wheel served so far (bodies; GET requests only)."""
        return sum(
            len(self._bodies.get(request.path, b""))
            for request in self.server.requests
            if request.method == "GET"
        )
