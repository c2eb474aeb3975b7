"""Heroku buildpack that gives an app's SMTP client the CA certificates it needs.

The build is one pipeline, data flowing one way:
settings -> bundle -> wiring -> check -> report. Each stage is a module with one job.
"""

BUILDPACK_NAME = "SMTP CA"
