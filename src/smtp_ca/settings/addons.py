"""The SMTP servers the Heroku mail add-ons name in their config vars.

Most Heroku apps do not use Mastodon's SMTP_SERVER: an add-on sets config vars and the app's
``settings.smtp`` read them. The build checks the server those vars name, each provider the
way its own documentation describes it (checked when this was written):

* Mailgun: the add-on sets ``MAILGUN_SMTP_SERVER``, ``MAILGUN_SMTP_PORT``,
  ``MAILGUN_SMTP_LOGIN``, ``MAILGUN_SMTP_PASSWORD`` and ``MAILGUN_API_KEY`` (Heroku Dev Center,
  "Mailgun"). Mailgun takes STARTTLS on 587 (its default, and 25, 2525) and TLS from the first
  byte on 465.
* SendGrid: the add-on set ``SENDGRID_USERNAME`` and ``SENDGRID_PASSWORD``; since SendGrid moved
  to API keys, apps set ``SENDGRID_API_KEY`` themselves (the SMTP user is then ``apikey``). No
  variable names a server: SendGrid documents one, ``smtp.sendgrid.net``, with STARTTLS on 587
  (the port it recommends; also 25, 2525) and TLS on 465.
* SparkPost: ``SPARKPOST_SMTP_HOST``, ``SPARKPOST_SMTP_PORT``, ``SPARKPOST_SMTP_USERNAME``,
  ``SPARKPOST_SMTP_PASSWORD``, ``SPARKPOST_API_KEY``. Heroku retired the add-on in 2020, but apps
  that moved to a SparkPost account kept these names, set by hand. SparkPost documents
  STARTTLS on 587 or 2525 and no port for TLS from the first byte; its user name is the same
  fixed string for every account, so it is not read.
* Mandrill (Mailchimp Transactional): the add-on set ``MANDRILL_USERNAME`` and
  ``MANDRILL_APIKEY``; Heroku withdrew it in 2016 and apps kept the names. Mailchimp documents
  one host for every account, ``smtp.mandrillapp.com``, with STARTTLS on 587 (and 25, 2525) and
  TLS on 465. The username is the sign the app uses Mandrill; the check assumes 587.
* CloudMailin: ``CLOUDMAILIN_SMTP_URL``, ``smtp://USER:PASSWORD@HOST:PORT``. Heroku's article
  on the add-on documents only its inbound variables; this one is read so by CloudMailin's
  own client libraries (their outbound examples also show CLOUDMAILIN_HOST, a name of the
  example's, not read here). CloudMailin requires STARTTLS, on 587 (recommended), 2525 or 25;
  the check takes the URL's port, or 587. ``CLOUDMAILIN_PASSWORD`` (the add-on's account
  password) is only redacted.

A server on port 465 is checked with TLS from the first byte, as each of these providers
documents that port; any other port with STARTTLS. The check never logs in, so the logins and
keys are only redacted (settings.values.SECRET_VARIABLES), never used. Postmark's add-on (2017)
is not here: it is gone, and its SMTP host took a token from the app's own code.

Stdlib only, like ``load``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from smtp_ca.errors import BuildError
from smtp_ca.settings.smtp import Origin, SmtpServer, host_value, read_port, smtp_host

# The port each of these providers documents for TLS from the first byte.
IMPLICIT_TLS_PORT = 465
# The submission port they all recommend, with STARTTLS.
SUBMISSION_PORT = 587
# Where the app's TLS options live when an add-on names its server.
APP_SETTINGS = "the app's smtp_settings"


@dataclass(frozen=True)
class Provider:
    """A mail add-on: the variables that name its server (``host_variable``, ``port_variable``),
    or, for a provider with one documented server (``fixed_host``), the variables whose presence
    says the app sends through it (``signals``, the first one set names the step)."""

    name: str
    host_variable: str | None = None
    port_variable: str | None = None
    fixed_host: str | None = None
    signals: tuple[str, ...] = ()


PROVIDERS = (
    Provider("Mailgun", host_variable="MAILGUN_SMTP_SERVER", port_variable="MAILGUN_SMTP_PORT"),
    Provider(
        "SendGrid",
        fixed_host="smtp.sendgrid.net",
        signals=("SENDGRID_USERNAME", "SENDGRID_PASSWORD", "SENDGRID_API_KEY"),
    ),
    Provider("SparkPost", host_variable="SPARKPOST_SMTP_HOST", port_variable="SPARKPOST_SMTP_PORT"),
    Provider("Mandrill", fixed_host="smtp.mandrillapp.com", signals=("MANDRILL_USERNAME",)),
)
CLOUDMAILIN_URL = "CLOUDMAILIN_SMTP_URL"


def addon_servers(variables: Mapping[str, str]) -> tuple[list[SmtpServer], list[str]]:
    """The servers the add-ons' config vars name, in the order of ``PROVIDERS`` then
    CloudMailin, and the notices about values the check cannot use (which skip that server:
    the add-on, not the user, may have written them)."""
    servers: list[SmtpServer] = []
    notices: list[str] = []
    for provider in PROVIDERS:
        try:
            server = _provider_server(provider, variables)
        except BuildError as error:
            notices.append(f"{error.message} The check skips {provider.name}'s server.")
            continue
        if server is not None:
            servers.append(server)
    cloudmailin, notice = _cloudmailin_server(variables.get(CLOUDMAILIN_URL, "").strip())
    servers += [cloudmailin] if cloudmailin else []
    notices += [notice] if notice else []
    return servers, notices


def _provider_server(provider: Provider, variables: Mapping[str, str]) -> SmtpServer | None:
    if provider.host_variable and provider.port_variable:
        host = smtp_host(variables, name=provider.host_variable, port_name=provider.port_variable)
        if host is None:
            return None
        port = read_port(variables, provider.port_variable, default=SUBMISSION_PORT)
        origin = Origin(
            found_in=provider.host_variable,
            server=provider.host_variable,
            server_is=f"{provider.host_variable}={{host}}",
            use_name=f"heroku config:set {provider.host_variable}={{name}}",
            port=provider.port_variable,
            settings=APP_SETTINGS,
        )
        return _server(host, port, origin)
    signal = next((name for name in provider.signals if variables.get(name, "").strip()), None)
    if signal is None or provider.fixed_host is None:
        return None
    origin = Origin(
        found_in=signal,
        server=f"the address in {APP_SETTINGS} ({provider.name} documents {provider.fixed_host})",
        server_is="{host}",
        use_name=f"address: '{{name}}' in {APP_SETTINGS}",
        port=f"the port in {APP_SETTINGS}",
        settings=APP_SETTINGS,
    )
    return _server(provider.fixed_host, SUBMISSION_PORT, origin)


def _cloudmailin_server(url: str) -> tuple[SmtpServer | None, str | None]:
    """CLOUDMAILIN_SMTP_URL's server; or a notice that never quotes the URL (it holds the
    password)."""
    if not url:
        return None, None
    unusable = (
        f"{CLOUDMAILIN_URL} is not an smtp:// URL with a host name (smtp://USER:PASSWORD@HOST:PORT)"
        ": the check skips CloudMailin's server."
    )
    try:
        parts = urlsplit(url)
        port = parts.port
        host = host_value(parts.hostname or "")
    except ValueError:  # a port that is not a number or out of range, an unbalanced [
        return None, unusable
    if parts.scheme.lower() not in ("smtp", "smtps") or host is None:
        return None, unusable
    implicit = parts.scheme.lower() == "smtps"
    origin = Origin(
        found_in=CLOUDMAILIN_URL,
        server=f"the host in {CLOUDMAILIN_URL}",
        server_is=f"{{host}} (the host in {CLOUDMAILIN_URL})",
        use_name=f"the host {{name}} in {CLOUDMAILIN_URL}",
        port=f"the port in {CLOUDMAILIN_URL}",
        settings=APP_SETTINGS,
    )
    default = IMPLICIT_TLS_PORT if implicit else SUBMISSION_PORT
    return _server(host, port or default, origin, implicit=implicit or None), None


def _server(host: str, port: int, origin: Origin, *, implicit: bool | None = None) -> SmtpServer:
    implicit_tls = port == IMPLICIT_TLS_PORT if implicit is None else implicit
    return SmtpServer("", host, port, implicit_tls, "auto", None, origin=origin)
