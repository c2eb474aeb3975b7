"""Heroku buildpack that gives an app's SMTP client the CA certificates it needs.

The build is one pipeline, data flowing one way (``smtp_ca.pipeline`` runs it):
settings -> dependencies -> bundle -> check -> wiring. Each stage is a module with one job;
``smtp_ca.platforms`` holds what differs between the platforms that run it.
"""

from pathlib import Path

BUILDPACK_NAME = "SMTP CA"
# The buildpack's checkout: src/smtp_ca/ is two levels below it; bin/, templates/ and vendor/
# sit beside src/.
BUILDPACK_DIR = Path(__file__).resolve().parents[2]
