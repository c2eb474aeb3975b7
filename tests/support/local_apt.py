"""A flat apt repository served on 127.0.0.1, so apt-get runs for real without the network.

The bootstrap fetches python3-pip with ``apt-get update`` + ``apt-get download``; apt honours
the ``APT_CONFIG`` environment variable, read before anything else, so a config that names
only this repository (and empty parts directories, so the machine's own sources and apt.conf.d
stay out) makes apt-get talk to nothing but loopback.

Usage::

    with LocalAptRepo(tmp_path / "apt-repo", [deb]) as repo:
        env["APT_CONFIG"] = str(repo.apt_config)
        ...
        assert repo.requests  # paths apt-get asked for

The repository is flat (``deb [trusted=yes] URL ./``) with a Packages index written here from
each .deb's control fields (``dpkg-deb --field``: dpkg is in every Debian, dpkg-dev's
dpkg-scanpackages is not) and an unsigned Release file listing its hashes, which apt accepts
for a ``trusted=yes`` source.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"


def build_flat_repo(directory: Path, debs: Iterable[Path]) -> None:
    """Copies ``debs`` into ``directory`` and writes its Packages and Release indexes."""
    directory.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in debs:
        shutil.copy2(deb, directory / deb.name)
        stanzas.append(_packages_stanza(directory / deb.name))
    packages = "\n".join(stanzas).encode()
    (directory / "Packages").write_bytes(packages)
    digest = hashlib.sha256(packages).hexdigest()
    (directory / "Release").write_text(
        "Origin: smtp-ca-tests\nLabel: smtp-ca-tests\nSuite: local\nCodename: local\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\n"
        f"SHA256:\n {digest} {len(packages)} Packages\n"
    )


def _packages_stanza(deb: Path) -> str:
    """The Packages index entry for ``deb``, as dpkg-scanpackages writes it: the control
    fields, then where the file is and its hashes."""
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    data = deb.read_bytes()
    return (
        control.rstrip("\n") + f"\nFilename: ./{deb.name}\nSize: {len(data)}\n"
        f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
        f"SHA1: {hashlib.sha1(data).hexdigest()}\n"
        f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def write_apt_config(directory: Path, url: str, *, seen_as: Path | None = None) -> Path:
    """Writes an apt.conf (for APT_CONFIG) whose only source is ``url``; returns its path.

    ``seen_as`` is where apt-get will find ``directory`` when that is not where it is written
    (inside a chroot); the paths in the config are then that directory's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "empty.d").mkdir(exist_ok=True)
    (directory / "sources.list").write_text(f"deb [trusted=yes] {url}/ ./\n")
    seen = seen_as or directory
    empty = seen / "empty.d"
    sources = seen / "sources.list"
    config = directory / "apt.conf"
    config.write_text(
        f'Dir::Etc::SourceList "{sources}";\n'
        f'Dir::Etc::SourceParts "{empty}";\n'
        # The machine's apt.conf.d may name proxies, mirrors or auth helpers: keep it out.
        f'Dir::Etc::Parts "{empty}";\n'
        'Dir::Etc::Main "/dev/null";\n'
        'Acquire::Languages "none";\n'
        'Acquire::Retries "0";\n'
        f'Acquire::http::Proxy::{LOOPBACK} "DIRECT";\n'
        'Acquire::http::Timeout "10";\n'
    )
    return config


def unreachable_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        record: list[str] | None = getattr(self.server, "requests_seen", None)
        if record is not None:
            record.append(self.path)


class LocalAptRepo:
    """A flat repository holding ``debs``, served over HTTP on loopback while in use."""

    def __init__(self, directory: Path, debs: Iterable[Path]) -> None:
        self.directory = directory
        self.repo = directory / "repo"
        build_flat_repo(self.repo, debs)
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.apt_config = directory / "conf" / "apt.conf"

    def start(self) -> LocalAptRepo:
        handler = functools.partial(_QuietHandler, directory=str(self.repo))
        server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        server.requests_seen = self.requests  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://{LOOPBACK}:{server.server_address[1]}"
        self.apt_config = write_apt_config(self.directory / "conf", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LocalAptRepo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
