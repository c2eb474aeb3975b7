"""What each Rails app shape of ``support.rails_app.APP_SHAPES`` is expected to do at delivery,
and how the dyno check is run for it: shared by tests/e2e/test_app_shapes.py (Debian 12's Ruby),
tests/e2e/test_eras.py (Ruby 2.7) and tests/e2e/test_cnb.py (the CNB path).

Every shape sends through a loopback SMTP server whose CA is only in the bundle the build wrote
(``bundle_config_vars``: SMTP_CA_CERTS, nothing downloaded). All deliver, verified, except
``"own-ca-file"``, whose settings name GoDaddy's bundle: the buildpack leaves them alone, and the
delivery fails as it did before. The dyno check's exit status must say the same as the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from support.rails_app import APP_SHAPES, AppShape, app_config_vars

BUNDLE = ".smtp-ca/ca-bundle.pem"
LOGIN = "shape-mailer-login"
PASSWORD = "SG.shape-s3cret-password-never-printed"
# OpenSSL::SSL::VERIFY_PEER, as the delivery rules fill it in (a number every mail gem takes).
VERIFY_PEER = 1

ServerMode = Literal["starttls", "implicit-tls"]


@dataclass(frozen=True)
class ShapeCase:
    """One shape: the server it talks to, what its settings name, and what a delivery does."""

    shape: AppShape
    server: ServerMode = "starttls"
    host: str = "localhost"
    base_names_server: bool = True
    """False: ActionMailer's own settings name no server (the mail goes through a mailer's or a
    message's), so the check says there is nothing to check (exit 3) until given --address."""
    names_verify_mode: bool = True
    delivers: bool = True

    def check_arguments(self, port: int) -> tuple[str, ...]:
        """What the check needs to check the server a delivery of this shape uses."""
        if self.base_names_server:
            return ()
        return ("--address", self.host, "--port", str(port))

    @property
    def check_status(self) -> int:
        """The check's exit status when run as ``check_arguments`` say: the delivery's verdict."""
        return 0 if self.delivers else 1


CASES: dict[AppShape, ShapeCase] = {
    case.shape: case
    for case in (
        ShapeCase("smtp-settings-initializer"),
        ShapeCase("assigned-after-boot"),
        ShapeCase("after-initialize-hook"),
        ShapeCase("mailer-options", base_names_server=False),
        ShapeCase("message-options", base_names_server=False),
        ShapeCase("after-action", base_names_server=False),
        ShapeCase("mailer-smtp-settings", base_names_server=False),
        ShapeCase("mail-gem"),
        ShapeCase("mailgun-addon", names_verify_mode=False),
        ShapeCase("literal-host", host="127.0.0.1", names_verify_mode=False),
        ShapeCase("implicit-tls", server="implicit-tls", names_verify_mode=False),
        ShapeCase("own-ca-file", delivers=False),
        ShapeCase("no-verify-mode", names_verify_mode=False),
    )
}
assert tuple(CASES) == APP_SHAPES, "one case per shape, in the order of APP_SHAPES"


def shape_config_vars(case: ShapeCase, port: int, **extra: str) -> dict[str, str]:
    """The app's config vars for its server on ``port``."""
    return app_config_vars(
        case.host, port, login=LOGIN, password=PASSWORD, shape=case.shape, **extra
    )


def bundle_config_vars(ca_pem: bytes) -> dict[str, str]:
    """A bundle of the provider's CA alone, from SMTP_CA_CERTS (nothing is downloaded), merged
    with the public roots as every bundle is."""
    return {"SMTP_CA_BUNDLE_URL": "none", "SMTP_CA_CERTS": ca_pem.decode()}


def expected_ca_file(case: ShapeCase, app: Path | str) -> str:
    """The ca_file a delivery of this shape runs with, in an app at ``app`` on the dyno."""
    if case.shape == "own-ca-file":
        return f"{app}/config/environments/gd_bundle-g2-g1.crt"
    return f"{app}/{BUNDLE}"


def assert_delivery_settings(
    case: ShapeCase, settings: Mapping[str, object], app: Path | str
) -> None:
    """The settings the mail gem's delivery ran with: the bundle where the app names no CA file,
    peer where it names no verify mode."""
    assert settings["ca_file"] == expected_ca_file(case, app), settings
    assert "ca_path" not in settings or settings["ca_path"] is None, settings
    mode = "peer" if case.names_verify_mode else VERIFY_PEER
    assert settings["openssl_verify_mode"] == mode, settings
    assert settings["user_name"] == LOGIN and settings["password"] == "[REDACTED]", settings
