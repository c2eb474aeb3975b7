"""Other Pythons on this machine, for building with the python3 each Heroku stack has.

pyenv keeps several versions side by side, but its shims only run the ones selected with
``pyenv global``: a candidate counts only if it really runs. .ci/prepare-test-inputs looks in
the same places when it downloads wheels for them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from support.slices import require

# The python3 of each current stack's build image.
STACK_PYTHONS = {"heroku-22": "3.10", "heroku-24": "3.12", "heroku-26": "3.14"}


def find_python(version: str) -> Path | None:
    require("needs_other_pythons", f"looks for Python {version}")
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{version}")]
    candidates += [
        str(path) for path in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python"))
    ]
    for candidate in candidates:
        if candidate and _runs(candidate, version):
            return Path(candidate)
    return None


def _runs(python: str, version: str) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return probe.returncode == 0 and probe.stdout.strip() == version
