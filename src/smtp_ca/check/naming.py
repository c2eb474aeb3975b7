"""How the check's hints name what the user set: config vars in a build, the command line in
``bin/check``.

A build checks the server its config vars name, so a hint says "Check SMTP_PORT"; a server it
found in a mail add-on's config vars or in the app's files is named by those ("Check
MAILGUN_SMTP_PORT", "Check the port in config/initializers/mail.rb"). Someone who
ran ``bin/check smtp.sendgrid.net:587`` set no config var: the hint names the host and the port
they typed, and the options of ``bin/check``, instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtp_ca.settings.smtp import Origin


@dataclass(frozen=True)
class Naming:
    """The words for each setting of the check's target, in the places the hints use them."""

    server: str  # "Check {server} for a typo."
    server_is: str  # "The certificate's names do not cover {server_is}": {host} filled in
    use_server: str  # "{use_server} a name the certificate holds"
    use_name: str  # "...not an alias: {use_name}": {name} filled in
    port: str  # "Check {port}: most providers take 587 (STARTTLS) or 465 (TLS)."
    tls: str  # "Check {port} and {tls}: port 465 usually wants {tls_on}."
    tls_on: str
    use_implicit_tls: str  # "For TLS from the first byte, {use_implicit_tls}."
    use_starttls: str  # "{use_starttls} to use STARTTLS on this port"
    use_port_465: str  # "or {use_port_465} for TLS from the first byte"
    timeout: str  # "or raise {timeout}"

    def server_set_to(self, host: str) -> str:
        """The server setting with its value: ``SMTP_SERVER=host``, or the host as typed."""
        return self.server_is.format(host=host)

    def command_using(self, name: str) -> str:
        """What tries ``name`` as the server instead."""
        return self.use_name.format(name=name)


def config_vars(prefix: str = "SMTP_") -> Naming:
    """A build's words: the config vars (``BULK_SMTP_`` ones for Mastodon's bulk mailer)."""
    server, port, tls = f"{prefix}SERVER", f"{prefix}PORT", f"{prefix}TLS"
    return Naming(
        server=server,
        server_is=f"{server}={{host}}",
        use_server=f"Set {server} to",
        use_name=f"heroku config:set {server}={{name}}",
        port=port,
        tls=tls,
        tls_on=f"{tls}=true",
        use_implicit_tls=f"set {tls}=true",
        use_starttls=f"Unset {tls} and {prefix}SSL",
        use_port_465=f"set {port}=465",
        timeout="SMTP_CA_CHECK_TIMEOUT",
    )


def found(origin: Origin) -> Naming:
    """A build's words for a server found in a mail add-on's config vars or the app's own
    files: what names its host and port there, and the TLS options of the app's settings."""
    settings = origin.settings
    return Naming(
        server=origin.server,
        server_is=origin.server_is,
        use_server="Use",
        use_name=origin.use_name,
        port=origin.port,
        tls=f"the tls option in {settings}",
        tls_on="tls: true",
        use_implicit_tls=f"set tls: true in {settings}",
        use_starttls=f"Take tls: true and ssl: true out of {settings}",
        use_port_465=f"use port 465 with tls: true in {settings}",
        timeout="SMTP_CA_CHECK_TIMEOUT",
    )


def command_line(host: str, port: int, *, port_given: bool) -> Naming:
    """``bin/check``'s words: the host and the port as typed, and its options."""
    shown = f"[{host}]" if ":" in host else host
    return Naming(
        server=shown,
        server_is="{host}",
        use_server="Use",
        use_name=f"bin/check {{name}}:{port}",
        port=f"the port {port}" if port_given else f"the port ({port} when none is given)",
        tls="--tls",
        tls_on="--tls",
        use_implicit_tls="add --tls",
        use_starttls="Leave out --tls",
        use_port_465=f"try {shown}:465",
        timeout="--timeout",
    )


# What a target is named by unless said otherwise: the build's config vars.
CONFIG_VARS = config_vars()
