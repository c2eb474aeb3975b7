"""Heroku buildpack that gives an app's SMTP client the CA certificates it needs.

The build is one pipeline, data flowing one way (``smtp_ca.pipeline`` runs it):
settings -> dependencies -> bundle -> check -> wiring. Each stage is a folder of small modules
with one job each (``wiring`` is one module); ``platforms`` holds what differs between the
platforms that run it, ``cache`` the build cache's layout and lock, ``net`` the one bounded
path to the network. The rest is shared by all: the log (``output``), ``BuildError``
(``errors``), text from outside (``untrusted``) and atomic writes (``files``). A module imports
only from its own stage, from stages before it and from the shared modules
(tests/project/test_structure.py).
"""

from pathlib import Path

# The buildpack's checkout: src/smtp_ca/ is two levels below it; bin/, templates/ and vendor/
# sit beside src/.
BUILDPACK_DIR = Path(__file__).resolve().parents[2]
# Debian's and Ubuntu's system store: every Heroku stack has it (heroku-24 dropped cert.pem).
# pip trusts it while it installs the dependencies; a failed check compares the bundle with it.
SYSTEM_STORE = Path("/etc/ssl/certs/ca-certificates.crt")
