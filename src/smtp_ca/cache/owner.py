"""Which directory is the buildpack's own cache: it removes and replaces what is in its cache
(``python-deps/`` on a stack change, ``stack``, the bundle's copy, what earlier versions
left), so it must never take a directory of someone else's for one.

Where the platform gives the cache, the platform decides: classic Heroku's CACHE_DIR is shared
by the app's buildpacks, and this one keeps to its own ``smtp-ca/`` in it; a CNB gets its own
cache layer. Those are the buildpack's by contract, from the first build on. The one thing
refused there is a symbolic link (``refuse_link``): what the build removes and writes would
land wherever it points.

``bin/check`` takes the directory a user names (SMTP_CA_CACHE_DIR, else
``~/.cache/heroku-buildpack-smtp-ca``), which may hold anything. ``claim`` takes it only when
it is new or empty, or holds the buildpack's tag, ``CACHEDIR.TAG``: the file the Cache
Directory Tagging convention names (backup tools skip such a directory), with a line naming
this buildpack. A directory an older bin/check made, before the tag, is recognised by its
layout (its ``.lock``, and nothing the buildpack does not make) and tagged. Anything else is
refused, named, before a byte is written in it.
"""

from __future__ import annotations

import re
from pathlib import Path

from smtp_ca.cache.layout import LOCK, OWN_NAMES, TAG
from smtp_ca.errors import BuildError
from smtp_ca.files import write_atomically
from smtp_ca.untrusted import at_most, shown

# The first line of a CACHEDIR.TAG, as the convention fixes it.
_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
_OWNER = "heroku-buildpack-smtp-ca"
_TAG = (
    f"{_SIGNATURE}\n"
    f"# This directory is the cache of {_OWNER} (bin/check): it removes and replaces\n"
    "# what is in it. Delete the whole directory to start afresh.\n"
)
# files.write_atomically's temporary for the tag.
_TAG_BEING_WRITTEN = re.compile(rf"\.{re.escape(TAG)}\..*\.tmp")
# A tag is a few lines: reading more would only let a planted file cost memory.
_MAX_TAG_BYTES = 4096


def claim(directory: Path, *, what: str, hint: str) -> None:
    """Makes ``directory`` this buildpack's cache, or refuses it with a ``BuildError`` that
    names it and what it holds. ``what`` names it ("The cache directory /path"); ``hint``
    says which directory to use instead.

    A directory that cannot be made or read is left to the code that uses it next, which
    names the cause (read-only, not a directory).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if _tagged(directory):
            return
        entries = sorted(entry.name for entry in directory.iterdir())
    except OSError:
        return
    # A tag being written by another bin/check taking the same new directory at this moment.
    entries = [name for name in entries if not _TAG_BEING_WRITTEN.fullmatch(name)]
    foreign = [name for name in entries if name not in OWN_NAMES]
    # Every bin/check before the tag took the lock, and so left its .lock file.
    made_before_the_tag = LOCK in entries
    if entries and (foreign or not made_before_the_tag):
        listed = at_most([shown(name, 80) for name in foreign or entries], 5)
        raise BuildError(
            f"{what} holds files bin/check did not make ({', '.join(listed)}). bin/check "
            "removes and replaces what is in its cache, so it keeps it in a directory of its "
            "own, and leaves this one as it is.",
            hint=hint,
        )
    try:
        write_atomically(directory / TAG, _TAG.encode())
    except OSError:
        return  # a directory it cannot write to fails at once, named, in the next step


def _tagged(directory: Path) -> bool:
    tag = directory / TAG
    if tag.is_symlink() or not tag.is_file():
        return False
    with tag.open("rb") as stream:
        text = stream.read(_MAX_TAG_BYTES).decode("utf-8", "replace")
    return text.startswith(_SIGNATURE) and _OWNER in text


def refuse_link(directory: Path, *, what: str, hint: str) -> None:
    """A ``BuildError`` when ``directory`` is a symbolic link: the build would follow it, and
    remove and write files wherever it points."""
    if not directory.is_symlink():
        return
    try:
        target = shown(str(directory.readlink()), 200)
    except OSError:
        target = "somewhere"
    raise BuildError(
        f"{what} {directory} is a symbolic link (to {target}). The build keeps its cache "
        "in a directory of its own, and does not follow a link out of it: what it removes "
        "and writes there would land where the link points.",
        hint=hint,
    )
