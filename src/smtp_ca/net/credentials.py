"""What a fetch says about who is asking: nothing the machine holds, ever.

requests, left to itself, logs in wherever the machine has a login: a request whose URL holds no
user info gets the ``~/.netrc`` (or ``$NETRC``) entry for its host as ``Authorization: Basic``,
over plain http:// too, and a session sends back the cookies servers set. The Heroku CLI keeps
its API token in ``.netrc`` under ``api.heroku.com``. The URLs of AIA caIssuers, OCSP and CRL
fetches come from the certificate an SMTP server sends, which anyone on the path can write:
with requests' defaults, a certificate naming ``http://api.heroku.com/`` would have the token
sent to whoever answers.

So every fetch passes requests an explicit ``auth``, which keeps it from looking in ``.netrc``:

* ``"none"`` (URLs from certificates): no ``Authorization`` header at all, not even from user
  info in the URL, and no cookies kept or sent between redirects;
* ``"url"`` (SMTP_CA_BUNDLE_URL): the user and password written in the URL itself, sent to the
  URL that holds them and, as curl does, to a redirect on the same server (a relative
  ``Location`` keeps them), never to another host; ``.netrc`` is not read for it either. The
  user named the bundle's host, but not a login for it, and the host may redirect anywhere:
  on a laptop running bin/check, ``.netrc`` holds the logins of every host the user works
  with.

A proxy's own credentials (``HTTPS_PROXY=http://user:pass@proxy:3128``) still go to the proxy,
as ``Proxy-Authorization``, which requests sends to the proxy only.
"""

from __future__ import annotations

from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Literal

from requests.auth import AuthBase, HTTPBasicAuth
from requests.utils import get_auth_from_url

if TYPE_CHECKING:
    import requests

Credentials = Literal["url", "none"]


class NoCredentials(AuthBase):
    """An ``auth`` that adds nothing and takes away any ``Authorization`` header: being set,
    it keeps requests from adding the ``.netrc`` login for the host."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


def auth_for(url: str, credentials: Credentials) -> AuthBase:
    """What requests is told to log in with for one request to ``url``."""
    if credentials == "url":
        user, password = get_auth_from_url(url)
        if user or password:
            return HTTPBasicAuth(user, password)
    return NoCredentials()


def refuse_cookies(session: requests.Session) -> None:
    """The session neither keeps a cookie a server sets nor sends one back."""
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
