"""``python3 -m smtp_ca COMMAND ...``, run by bin/compile, bin/build and bin/check.

This file must parse on any python3 a stack might have, so it can refuse an old one politely.
"""

import sys

if sys.version_info < (3, 10):
    sys.stderr.write(
        " !     This buildpack needs Python 3.10 or later; this python3 is %d.%d.\n"
        " !     Use a current stack (heroku-22, heroku-24 or heroku-26).\n" % sys.version_info[:2]
    )
    sys.exit(1)

import os

# Modes are set, not inherited: what the build writes (the app's files, the cache's modules)
# must not be writable by anyone because the build ran under a umask of 000.
os.umask(0o022)

from smtp_ca.cli import main  # after the version check, on purpose

sys.exit(main(sys.argv[1:]))
