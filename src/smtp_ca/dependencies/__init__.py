"""The dependencies stage: the buildpack's own Python packages, hash-pinned, installed with the
buildpack's own pip wheel into the cache (``install``), pip run within its bounds (``pip``) and
the app's ``PIP_*`` config vars checked before pip sees them (``pip_settings``).
"""
