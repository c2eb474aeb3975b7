"""The build-time proof: a real SMTP handshake that trusts only the bundle, and, when it fails,
the cause in words.

The public surface is what the build and ``bin/check`` use; the modules behind it are the
check's own:

- ``flow``: which handshakes, in which order (``run_check``, ``check_bundle``);
- ``smtp_session``: the SMTP conversation up to a TLS socket (``CheckTarget``);
- ``outcome``: what a check says (``CheckOutcome``, ``where_of``, ``report_verified``);
- ``diagnosis``: what a refused chain means, in words (``TrustStores``), each cause
  explained in ``causes``, the fixes they share in ``hints``;
- ``connection_failure``: TLS, connection and SMTP failures before any certificate;
- ``chain``: reading and describing the chains the server presents;
- ``aia`` and ``ocsp``: fetching a missing intermediate and asking about revocation;
- ``command``: ``bin/check HOST[:PORT]`` (``run_command``).
"""
