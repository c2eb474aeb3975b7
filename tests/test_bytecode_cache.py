"""bin/support/python.sh's bytecode cache: compiled once per set of modules, subpackages included.

Runs the real shell function on a copy of a tiny source tree; the python3 is this one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYTHON_SH = Path(__file__).resolve().parents[1] / "bin" / "support" / "python.sh"


def _compile(src: Path, prefix: Path) -> str:
    script = (
        'set -euo pipefail; source "$1"; smtp_ca::compile_bytecode "$2" "$3" "$4"; '
        'cat "$3/.checked-hash"'
    )
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(PYTHON_SH), sys.executable, str(prefix), str(src)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "STACK": "heroku-24"},
    )
    return result.stdout.strip()


def test_the_key_lists_every_module_below_smtp_ca_and_a_new_one_in_a_subpackage_recompiles(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    (src / "smtp_ca" / "check").mkdir(parents=True)
    (src / "smtp_ca" / "__init__.py").write_text("")
    (src / "smtp_ca" / "check" / "__init__.py").write_text("")
    (src / "smtp_ca" / "check" / "flow.py").write_text("X = 1\n")
    prefix = tmp_path / "pycache"

    key = _compile(src, prefix)
    assert key == (
        f"{sys.executable} heroku-24 {src} "
        "smtp_ca/__init__.py smtp_ca/check/__init__.py smtp_ca/check/flow.py"
    )
    compiled = prefix / str(src.relative_to("/")) / "smtp_ca" / "check"
    assert sorted(path.name.split(".")[0] for path in compiled.glob("*.pyc")) == [
        "__init__",
        "flow",
    ]

    (src / "smtp_ca" / "check" / "ocsp.py").write_text("Y = 2\n")
    assert _compile(src, prefix) == key + " smtp_ca/check/ocsp.py"
    assert sorted(path.name.split(".")[0] for path in compiled.glob("*.pyc")) == [
        "__init__",
        "flow",
        "ocsp",
    ]
