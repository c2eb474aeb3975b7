"""The bundle stage's cache files: written atomically, checked on every read, never trusted blind.

An entry is a pair: ``NAME.pem`` (the data) and ``NAME.json`` (its metadata, which holds the
data's SHA-256 and size next to whatever the caller stores). Reading checks both, so what a
build killed half-way leaves behind is detected and thrown away:

* each file is written to a temporary file in the same directory and renamed into place, so a
  reader sees the old file or the new one, never half of one;
* the data is written before the metadata, so a build that dies between the two leaves new data
  next to old metadata, whose hash no longer matches;
* a temporary file left by a killed write is removed by the next write of the same entry.

Nothing here knows about certificates: the caller says which metadata makes an entry its own
(a format version, a key) and reads the rest with the ``meta_*`` helpers, which raise
``ValueError`` on anything malformed. A ``ValueError`` the caller raises while reading an entry
is reported with ``discard``, like a hash mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from smtp_ca.files import write_atomically
from smtp_ca.output import Log
from smtp_ca.untrusted import escaped


class CorruptCache(ValueError):
    """A cache entry whose files do not agree with each other."""


class CacheEntry:
    """``NAME.pem`` and ``NAME.json`` in ``directory``; ``what`` names it in the build log."""

    def __init__(self, directory: Path, name: str, what: str, log: Log) -> None:
        self.data_path = directory / f"{name}.pem"
        self.meta_path = directory / f"{name}.json"
        self._what = what
        self._log = log

    def load(self, identity: Mapping[str, object]) -> tuple[bytes, dict[str, object]] | None:
        """The data and metadata, if the entry exists, is whole, and matches ``identity``.

        An entry whose ``identity`` fields differ (another URL's, another format's) is not
        damaged, only not this build's: ``None``, and it is left for ``store`` to replace.
        A damaged one is removed, with a line in the build log.
        """
        if not self.meta_path.exists() and not self.data_path.exists():
            return None
        try:
            meta = _read_json(self.meta_path)
            if any(meta.get(key) != value for key, value in identity.items()):
                return None
            data = self.data_path.read_bytes()
            if len(data) != meta_count(meta, "size") or (
                hashlib.sha256(data).hexdigest() != meta_text(meta, "sha256")
            ):
                raise CorruptCache("its SHA-256 does not match the one stored with it")
            return data, meta
        except (OSError, ValueError) as error:
            self.discard(error)
            return None

    def discard(self, error: BaseException, *, untrusted: bool = False) -> None:
        """Removes the entry, saying why in the build log; it is made again. ``untrusted``: it
        is whole but did not hold up against this build's inputs, which is a warning."""
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if untrusted:
            self._log.warn(
                f"{self._what[0].upper()}{self._what[1:]} did not hold up: {escaped(reason)}. "
                "The build cannot trust it, so it makes it again from its inputs."
            )
        else:
            self._log.info(
                f"Threw away {self._what}: it is damaged ({escaped(reason)}); making it again."
            )
        for path in (self.meta_path, self.data_path):
            with suppress(OSError):
                path.unlink()

    def store(
        self,
        data: bytes,
        identity: Mapping[str, object],
        meta: Mapping[str, object],
        *,
        sha256: str | None = None,
    ) -> None:
        """Writes the entry; a cache that cannot be written costs the next build time, not this
        build its success, so failures are a line in the log. ``sha256``: the data's, when the
        caller has it already."""
        record = {
            **meta,
            **identity,
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        try:
            # Data first: if the build dies between the two, the old metadata's hash no longer
            # matches and the pair is thrown away, never trusted.
            write_atomically(self.data_path, data)
            write_atomically(self.meta_path, _dump_json(record))
        except OSError as error:
            self._log.info(
                f"Could not update the bundle cache ({error.strerror or error}); continuing."
            )


def _dump_json(value: object) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _read_json(path: Path) -> dict[str, object]:
    value = json.loads(path.read_bytes())
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return value


# --- reading metadata: each raises ValueError on anything but the expected type --------------


def meta_text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


def meta_optional_text(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string or null")
    return value


def meta_count(data: Mapping[str, object], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key}: expected a count")
    return value


def meta_objects(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{key}: expected a list of objects")
    return value


def meta_object(data: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected an object")
    return value


def meta_text_list(data: Mapping[str, object], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key}: expected a list of strings")
    return value
