"""Heroku buildpack that gives an app's SMTP client the CA certificates it needs.

The build is one pipeline, data flowing one way (``smtp_ca.pipeline`` runs it):
settings -> dependencies -> bundle -> check -> wiring. Each stage is a module with one job;
``smtp_ca.platforms`` holds what differs between the platforms that run it.
"""

BUILDPACK_NAME = "SMTP CA"
