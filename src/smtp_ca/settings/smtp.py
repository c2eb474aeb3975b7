"""The settings of an SMTP server the app sends through, read as Mastodon reads them: the app's
mailer (``SMTP_`` variables) and Mastodon 4.4's bulk mailer (``BULK_SMTP_``).

Stdlib only, like ``load``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from smtp_ca.errors import BuildError
from smtp_ca.settings.values import one_of, quoted

# net-smtp connects to port 25 when the app passes no port, and Mastodon passes SMTP_PORT as is.
DEFAULT_SMTP_PORT = 25
# SMTP_OPENSSL_VERIFY_MODE, lower-cased: the mail gem's OpenSSL::SSL::VERIFY_<VALUE> names.
VerifyMode = Literal["none", "peer", "client_once", "fail_if_no_peer_cert"]
VERIFY_MODES: tuple[VerifyMode, ...] = get_args(VerifyMode)
# SMTP_ENABLE_STARTTLS, as Mastodon reads it (exact, case-sensitive).
StartTls = Literal["auto", "always", "never"]
STARTTLS_MODES: tuple[StartTls, ...] = get_args(StartTls)

MAIN_PREFIX = "SMTP_"
BULK_PREFIX = "BULK_SMTP_"

_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Origin:
    """Where the build found a server that Mastodon's variables do not name, in the words its
    messages use: a mail add-on's config vars (smtp_ca.settings.addons) or a literal host in the
    app's own files (smtp_ca.settings.app_config)."""

    found_in: str
    """What the step line names: "MAILGUN_SMTP_SERVER", "config/environments/production.rb"."""
    server: str
    """What to check when the host is wrong: a config var, "the address in FILE"."""
    server_is: str
    """The host as a hint names it, with ``{host}``: "MAILGUN_SMTP_SERVER={host}"."""
    use_name: str
    """How to use another host, with ``{name}``: "heroku config:set MAILGUN_SMTP_SERVER={name}"."""
    port: str
    """What to check when the port is wrong: "MAILGUN_SMTP_PORT", "the port in FILE"."""
    settings: str
    """Where the app's TLS options are: "the app's smtp_settings", "config/initializers/x.rb"."""
    in_file: bool = False
    """Whether it was found in the app's files (a literal host) rather than its config vars."""


@dataclass(frozen=True)
class SmtpServer:
    """One SMTP server the app sends through.

    Read from Mastodon's variables as Mastodon reads them, ``prefix`` is how they are named:
    ``SMTP_`` for the app's mailer (SMTP_SERVER, SMTP_PORT, ...), ``BULK_SMTP_`` for Mastodon
    4.4's bulk mailer (BULK_SMTP_SERVER, ...). Found elsewhere (a mail add-on's config vars, a
    literal host in the app's files), ``origin`` says where, and ``prefix`` is empty.
    """

    prefix: str
    host: str
    port: int
    implicit_tls: bool  # SMTP_TLS or SMTP_SSL: TLS from the first byte
    starttls: StartTls
    verify_mode: VerifyMode | None  # as the mail gem takes it; None: unset (or not known)
    origin: Origin | None = None
    notes: tuple[str, ...] = ()
    """Details for its step: how the build read what it found (a port it had to assume)."""

    def variable(self, suffix: str) -> str:
        """The name of one of its variables: ``variable("SERVER")`` is ``BULK_SMTP_SERVER``."""
        return f"{self.prefix}{suffix}"

    @property
    def is_bulk(self) -> bool:
        return self.prefix == BULK_PREFIX

    @property
    def endpoint(self) -> tuple[str, int, bool]:
        """What makes two servers the same check: host (any case), port, TLS from the start."""
        return self.host.lower(), self.port, self.implicit_tls


def read_port(
    variables: Mapping[str, str], name: str = "SMTP_PORT", default: int = DEFAULT_SMTP_PORT
) -> int:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    if not _PORT.fullmatch(raw) or not 1 <= int(raw) <= 65535:
        raise BuildError(
            f"{name} is {quoted(raw)}; it must be a whole number from 1 to 65535.",
            hint=f"Most providers use 587 (STARTTLS) or 465 (TLS): heroku config:set {name}=587",
        )
    return int(raw)


def smtp_host(
    variables: Mapping[str, str],
    prefix: str = MAIN_PREFIX,
    *,
    name: str | None = None,
    port_name: str | None = None,
) -> str | None:
    """SMTP_SERVER as the mail gem passes it to net-smtp: a host name or an IP address, and
    nothing else. ``smtp.example.com:587`` would be looked up as a host name and fail with a
    DNS error, on the dyno as in the check: the port goes in SMTP_PORT. ``name`` and
    ``port_name`` read another pair the same way (a mail add-on's MAILGUN_SMTP_SERVER...).

    The value is judged as the app's Ruby will use it, which is not always as this machine's
    Python would: ``[::1]`` (brackets, as URLs write IPv6) reaches net-smtp as it is, and Ruby
    looks it up as a host name, brackets included; ``127.000.000.001`` connects to 127.0.0.1,
    but Ruby's OpenSSL checks the certificate for that text as a host name, which no
    certificate holds. The check would pass both, and the app's mail fail: both are refused
    here, with the spelling that works."""
    name, port_name = name or f"{prefix}SERVER", port_name or f"{prefix}PORT"
    server = variables.get(name, "").strip()
    if not server:
        return None
    if server.startswith("[") and server.endswith("]") and _is_ipv6(server[1:-1]):
        raise BuildError(
            f"{name} is {quoted(server)}: the app's mail gem hands it to net-smtp as it is, "
            "and Ruby looks it up as a host name, brackets included, which fails "
            "(getaddrinfo: Name or service not known): no mail would be sent. An IPv6 address "
            f"goes in {name} without brackets.",
            hint=f"Set it with: heroku config:set {name}={server[1:-1]}",
        )
    if _HOSTNAME.fullmatch(server):
        address = odd_ipv4_spelling(server)
        if address is not None:
            raise BuildError(
                f"{name} is {quoted(server)}, which this machine connects to as the IPv4 "
                f"address {address}; the app's Ruby does not read it as an address, and checks "
                "the server's certificate for that text as a host name, which no certificate "
                "holds: the check would pass, and the app's mail fail. Write the address the "
                "usual way.",
                hint=f"Set it with: heroku config:set {name}={address}",
            )
    host_name = host_value(server)
    if host_name is not None:
        return host_name
    host, holds, port = _url_parts(server)
    if host is not None and holds:
        with_port = f" {port_name}={port}" if port else ""
        raise BuildError(
            f"{name} is {quoted(server)}: it holds {' and '.join(holds)}, but must be the host "
            "name alone (the app would look the whole text up as a host name and fail to send "
            f"mail). The port goes in {port_name}.",
            hint=f"Set them with: heroku config:set {name}={host}{with_port}",
        )
    raise BuildError(
        f"{name} must be a host name or an IP address, such as smtp.sendgrid.net; "
        f"the port goes in {port_name}.",
        hint=f"Set it with: heroku config:set {name}=smtp.example.com {port_name}=587",
    )


def host_value(text: str) -> str | None:
    """``text`` as net-smtp takes an address and Ruby's certificate check reads it: a host name,
    an IPv4 address in the usual dotted form or an IPv6 address without brackets; None
    otherwise (brackets and odd IPv4 spellings fail in the app's Ruby, see ``smtp_host``)."""
    if not text:
        return None
    if _HOSTNAME.fullmatch(text):
        return None if odd_ipv4_spelling(text) is not None else text
    return text if _is_ipv6(text) else None


def odd_ipv4_spelling(host: str) -> str | None:
    """The IPv4 address ``host`` stands for, when it spells one in a way other than the usual
    dotted decimal (``127.000.000.001``, ``0177.0.0.1``, ``127.1``, ``2130706433``): the C
    library connects to that address, while Ruby (``IPAddr``, which OpenSSL's host name check
    uses) refuses such text as an address. None for a host name or a usual address."""
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):  # not an address in any spelling (ValueError: a NUL)
        return None
    address = socket.inet_ntoa(packed)
    return None if address == host else address


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _url_parts(server: str) -> tuple[str | None, list[str], int | None]:
    """A URL-like SMTP_SERVER read as a URL: its host (None when it has no usable one), what
    else it holds ("a scheme (smtp://)", "a port", "a path"), and its port."""
    holds: list[str] = []
    scheme, separator, _ = server.partition("://")
    if separator:
        holds.append(f"a scheme ({scheme}://)")
    try:
        parts = urlsplit(server if separator else f"//{server}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, an unbalanced [
        return None, holds, None
    if port is not None:
        holds.append("a port")
    if parts.path or parts.query or parts.fragment:
        holds.append("a path")
    if not host or not (_HOSTNAME.fullmatch(host) or _is_ipv6(host)):
        return None, holds, port
    return host, holds, port  # an IPv6 address without the URL's brackets, as net-smtp takes it


def _mastodon_transport(
    variables: Mapping[str, str], prefix: str = MAIN_PREFIX
) -> tuple[bool, StartTls, list[str]]:
    """Reads the TLS variables the way Mastodon does: exact strings.

    Mastodon 3.5 and later treat only the exact string 'true' as true for SMTP_TLS and SMTP_SSL
    (``ENV['SMTP_TLS'].presence && ENV['SMTP_TLS'] == 'true'``), and that is what the check does.
    Mastodon 1.4 to 3.4 pass ``ENV['SMTP_TLS'].presence``: any value that is set, 'false'
    included, turns TLS on. Only the exact string 'false' turns SMTP_ENABLE_STARTTLS_AUTO off.
    So a 'TRUE', 'yes' or 'false' is not an error here (the app accepts it) but a notice,
    because the app may not do what the user meant.

    The BULK_SMTP_ twins exist from Mastodon 4.4 on, whose config/email.yml reads them the same
    way, except that BULK_SMTP_ENABLE_STARTTLS=false means never, as 'never' does.
    """
    bulk = prefix == BULK_PREFIX
    tls_name, ssl_name = f"{prefix}TLS", f"{prefix}SSL"
    starttls_name, auto_name = f"{prefix}ENABLE_STARTTLS", f"{prefix}ENABLE_STARTTLS_AUTO"
    notices: list[str] = []
    for name in (tls_name, ssl_name):
        raw = variables.get(name)
        if not raw or not raw.strip() or raw == "true":
            continue  # unset, blank (Ruby's .presence is nil) or the one value that means TLS
        older = (
            " Mastodon 1.4 to 3.4 turn TLS on for any value that is set, even this one."
            if name == "SMTP_TLS"
            else ""
        )
        since = "Mastodon 4.4 and later" if bulk else "Mastodon 3.5 and later"
        notices.append(
            f"{name} is {quoted(raw)}; {since} only take the exact value 'true', "
            f"so the app will not use TLS from the first byte.{older} Set it to true or unset it."
        )
    implicit_tls = variables.get(tls_name) == "true" or variables.get(ssl_name) == "true"

    starttls_raw = variables.get(starttls_name, "")
    starttls = one_of(starttls_raw, STARTTLS_MODES)
    if bulk and starttls_raw == "false":
        starttls = "never"
    if starttls is None:
        if starttls_raw:
            notices.append(
                f"{starttls_name} is {quoted(starttls_raw)}; Mastodon knows 'auto', "
                f"'always' and 'never' and falls back to {auto_name} for anything else."
            )
        auto_raw = variables.get(auto_name)
        starttls = "never" if auto_raw == "false" else "auto"
        if auto_raw and auto_raw not in ("true", "false"):
            notices.append(
                f"{auto_name} is {quoted(auto_raw)}; Mastodon only turns "
                "STARTTLS off for the exact value 'false', so the app will use it."
            )
    return implicit_tls, starttls, notices


def _verify_mode(
    variables: Mapping[str, str], name: str = "SMTP_OPENSSL_VERIFY_MODE"
) -> VerifyMode | None:
    raw = variables.get(name, "").strip()
    if not raw:
        return None
    # The mail gem upcases the value and looks up OpenSSL::SSL::VERIFY_<VALUE>.
    value = one_of(raw.lower(), VERIFY_MODES)
    if value is None:
        raise BuildError(
            f"{name} is {quoted(raw)}; the mail gem accepts "
            f"{', '.join(VERIFY_MODES)}, and the app would fail to send mail.",
            hint=f"Use peer: heroku config:set {name}=peer",
        )
    return value


def verify_mode_unset_notice(name: str = "SMTP_OPENSSL_VERIFY_MODE") -> str:
    """The general form; smtp_ca.settings.gemfile_lock replaces it with an exact one when the app's
    Gemfile.lock names its net-smtp or Ruby."""
    return (
        f"{name} is not set: Ruby 2.7 and older then verify no certificate. "
        f"Set it: heroku config:set {name}=peer"
    )


VERIFY_MODE_UNSET_NOTICE = verify_mode_unset_notice()


def _verify_mode_notice(
    verify_mode: VerifyMode | None, name: str = "SMTP_OPENSSL_VERIFY_MODE"
) -> list[str]:
    return [verify_mode_unset_notice(name)] if verify_mode is None else []


def read_tls_options(
    variables: Mapping[str, str], prefix: str
) -> tuple[bool, StartTls, VerifyMode | None, list[str]]:
    """One mailer's TLS and verify-mode variables (``prefix`` is ``SMTP_`` or ``BULK_SMTP_``):
    TLS from the first byte or not, STARTTLS, the verify mode, and the notices about values
    the app would read oddly, the one about an unset verify mode last."""
    implicit_tls, starttls, notices = _mastodon_transport(variables, prefix)
    verify_name = f"{prefix}OPENSSL_VERIFY_MODE"
    verify_mode = _verify_mode(variables, verify_name)
    notices += _verify_mode_notice(verify_mode, verify_name)
    return implicit_tls, starttls, verify_mode, notices


def read_bulk_server(variables: Mapping[str, str]) -> tuple[SmtpServer | None, list[str]]:
    """Mastodon's bulk mailer, read as config/email.yml reads it; None when BULK_SMTP_SERVER
    is not set (Mastodon then sends bulk mail through SMTP_SERVER)."""
    host = smtp_host(variables, BULK_PREFIX)
    if host is None:
        return None, []
    implicit_tls, starttls, verify_mode, notices = read_tls_options(variables, BULK_PREFIX)
    server = SmtpServer(
        BULK_PREFIX,
        host,
        read_port(variables, f"{BULK_PREFIX}PORT"),
        implicit_tls,
        starttls,
        verify_mode,
    )
    return server, notices
