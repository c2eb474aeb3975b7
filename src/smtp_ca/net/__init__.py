"""The one bounded path to the network: every wait under one deadline that covers every byte,
every read capped, no credentials for a URL taken from a certificate.

``fetch`` (``http``) gets a URL; ``connection`` is the urllib3 connection that keeps the
deadline across connect, TLS, status line, headers and body; ``deadline`` the deadline itself
and the name lookup within it; ``retry`` what is retried; ``proxy`` the route through
``HTTPS_PROXY``; ``credentials`` the rule that a certificate's URL gets none.
"""
