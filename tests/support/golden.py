"""Golden build logs: a whole build log, made comparable across runs and machines.

A build log holds values that change on every run (ports, temporary paths, durations), on every
certificate (dates, serials, fingerprints, random test CA names) or with a pinned dependency
(certifi's version and its number of roots), and the output of pip, whose lines depend on the
machine's Python. ``normalise`` replaces each with a placeholder, so what stays
is what the buildpack itself says, in the order it says it. The log's wrapped lines are joined
back first (support.wrapped_log) and wrapped again once the placeholders are in (``wrap``, as
the log wraps), so a golden file shows the log's wrapped form, and a port, path or duration of
another length does not move its breaks. ``assert_matches_golden`` compares
that with a file under tests/golden/, or rewrites the file when ``SMTP_CA_UPDATE_GOLDEN=1``::

    SMTP_CA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/e2e/test_golden_logs.py
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from smtp_ca.output import ALERT_PREFIX, DETAIL_PREFIX, STEP_PREFIX, wrap
from support.wrapped_log import unwrap

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
UPDATE_VARIABLE = "SMTP_CA_UPDATE_GOLDEN"
UPDATE_COMMAND = f"{UPDATE_VARIABLE}=1 .venv/bin/python -m pytest tests/e2e/test_golden_logs.py"

DETAIL = "       "

# pip's own lines, as the build passes them on indented: one placeholder per run of them.
# Which lines it prints depends on the machine (Python version, wheel tags, markers).
_TOOL_LINES = {
    "<pip output>": re.compile(
        r"^(?:Looking in (?:links|indexes): |Ignoring \S+: markers |Processing |Collecting "
        r"|Downloading |Requirement already satisfied|Installing collected packages"
        r"|Successfully installed |  (?:Attempting uninstall|Found existing|Uninstalling"
        r"|Successfully uninstalled)|WARNING: |\[notice\] )"
    ),
}

# Order matters: whole SHA-256 digests before the shortened forms, URLs' ports before numbers.
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Loopback servers get a new port on every run.
    (re.compile(r"\b(localhost|127\.0\.0\.1|\[::1\]):\d{1,5}\b"), r"\1:<PORT>"),
    # certifi's version and how many roots it holds change with requirements.lock.
    (re.compile(r"\bcertifi \d+(?:\.\d+)+(?:\.post\d+)?"), "certifi <VERSION>"),
    (re.compile(r"\b\d+ public roots\b"), "<N> public roots"),
    (
        re.compile(r"(public roots from certifi <VERSION>): \d+ certificates"),
        r"\1: <N> certificates",
    ),
    # Digests and fingerprints: whole (64 hex digits, maybe colon-separated) and shortened.
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "<SHA256>"),
    (re.compile(r"\b(?:[0-9A-F]{2}:){15,}[0-9A-F]{2}\b"), "<FINGERPRINT>"),
    (re.compile(r"\b[0-9a-fA-F]{4,16}…[0-9a-fA-F]{4,16}\b"), "<HASH>"),
    # Serial numbers, as hex (0x…, or colon-separated) or long decimals.
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "<SERIAL>"),
    (re.compile(r"(?i)(serial(?: number)?:? )[0-9a-f:]{6,}\b"), r"\1<SERIAL>"),
    (re.compile(r"\b\d{16,}\b"), "<SERIAL>"),
    # trustme names its CAs and leaves at random: "Testing CA #iTKMtrH90Owds_Ij".
    (re.compile(r"#[A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])"), "#<RANDOM>"),
    # Dates and times: ISO dates, with a time and a zone when there is one.
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
            r"(?: ?(?:UTC|Z|[+-]\d{2}:?\d{2}))?"
        ),
        "<DATE>",
    ),
    # Durations the build measures: "in 1.8s", "12ms". Configured ones ("within 10 s") are kept.
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b"), "<DURATION>"),
)


def normalise(log: str, paths: Iterable[tuple[Path | str, str]] = ()) -> str:
    """``log`` with every volatile value replaced by a placeholder.

    ``paths`` maps directories (a test's tmp_path, the repository) to placeholders such as
    ``<TMP>``; the longest is replaced first, so a path inside another keeps its own name.
    """
    text = unwrap(log)
    for path, placeholder in sorted(paths, key=lambda item: len(str(item[0])), reverse=True):
        for form in dict.fromkeys((str(path), os.path.realpath(path))):
            text = text.replace(form, placeholder)
    lines = _collapse_tool_output(text.splitlines())
    normalised = []
    for line in lines:
        for pattern, replacement in _SUBSTITUTIONS:
            line = pattern.sub(replacement, line)
        normalised.extend(_wrapped(line.rstrip()))
    return "\n".join(normalised) + "\n"


def _wrapped(line: str) -> list[str]:
    """A logical line of the log as the log wraps it, by its prefix; a line with none (not
    the log's) as it is."""
    for prefix in (STEP_PREFIX, ALERT_PREFIX, DETAIL_PREFIX):
        if line.startswith(prefix):
            return wrap(prefix, line[len(prefix) :])
    return [line]


def _collapse_tool_output(lines: list[str]) -> list[str]:
    collapsed: list[str] = []
    for line in lines:
        label = _tool_label(line)
        if label is None:
            collapsed.append(line)
        elif not collapsed or collapsed[-1] != DETAIL + label:
            collapsed.append(DETAIL + label)
    return collapsed


def _tool_label(line: str) -> str | None:
    if not line.startswith(DETAIL):
        return None
    detail = line[len(DETAIL) :]
    for label, pattern in _TOOL_LINES.items():
        if pattern.match(detail):
            return label
    return None


def updating() -> bool:
    return os.environ.get(UPDATE_VARIABLE) == "1"


def assert_matches_golden(name: str, actual: str) -> None:
    """Compare a normalised log with tests/golden/``name``, or rewrite it in update mode."""
    golden = GOLDEN_DIR / name
    if updating():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
        return
    if not golden.is_file():
        pytest.fail(f"{golden} does not exist: make it with {UPDATE_COMMAND}")
    expected = golden.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"tests/golden/{name}",
                tofile="this build",
            )
        )
        pytest.fail(
            f"The build log differs from tests/golden/{name}:\n{diff}\n"
            f"If the change is intended, rewrite the golden files with {UPDATE_COMMAND} "
            "and review the diff.",
            pytrace=False,
        )
