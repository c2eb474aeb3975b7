"""Which proxy a fetch goes through, and the variable that named it, so messages can say so.

requests reads the proxy from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, their
lower-case forms, NO_PROXY) on every request. The fetch asks the same functions first, to know
what requests is about to do: a SOCKS proxy is refused before anything is sent (its support
would need a dependency the buildpack does not carry, and a SOCKS handshake outside the
fetch's deadline), and a proxy that refuses the connection is blamed, by its variable, instead
of the server behind it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from smtp_ca.untrusted import shown


@dataclass(frozen=True)
class Proxy:
    variable: str  # as set in the environment: HTTPS_PROXY, https_proxy, ALL_PROXY ...
    url: str  # as set: may hold a user and password, never printed as it is

    @property
    def is_socks(self) -> bool:
        # What requests itself keys on to hand the proxy to urllib3's SOCKS support.
        return self.url.strip().lower().startswith("socks")

    @property
    def address(self) -> str:
        """``host:port`` (or the scheme too, for SOCKS), without user info: safe to print."""
        try:
            parts = urlsplit(self.url.strip() if "://" in self.url else f"http://{self.url}")
            host = parts.netloc.rpartition("@")[2]
        except ValueError:
            return "an address that is not a URL"
        where = f"{parts.scheme}://{host}" if self.is_socks else host
        return shown(where, 100)

    def socks_refusal(self) -> str:
        """Why a fetch through this SOCKS proxy is not even tried, and what to do, in one
        phrase (the AIA and OCSP notes carry no separate hint)."""
        name = self.variable
        return (
            f"{name} names a SOCKS proxy ({self.address}), and SOCKS proxies are not "
            f"supported: set {name} to an HTTP proxy (http://HOST:PORT), or unset it"
        )


def proxy_for(url: str) -> Proxy | None:
    """The proxy requests will use for ``url`` in this process's environment, or None."""
    from requests.utils import get_environ_proxies, select_proxy

    try:
        proxies = get_environ_proxies(url, no_proxy=None)
        chosen = select_proxy(url, proxies)
    except ValueError:  # a URL requests cannot parse fails in the request, with its words
        return None
    if not chosen:
        return None
    scheme = urlsplit(url).scheme.lower()
    key = scheme if proxies.get(scheme) == chosen else "all"
    return Proxy(_variable_for(key, chosen, os.environ), chosen)


def _variable_for(key: str, value: str, environ: Mapping[str, str]) -> str:
    """The variable that set proxy ``key`` ("https", "all") to ``value``. urllib reads
    ``https_proxy`` before ``HTTPS_PROXY``, and any other spelling of the case after both."""
    wanted = f"{key}_proxy"
    for name in (wanted, wanted.upper()):
        if environ.get(name) == value:
            return name
    for name, setting in environ.items():
        if name.lower() == wanted and setting == value:
            return name
    return wanted.upper()
