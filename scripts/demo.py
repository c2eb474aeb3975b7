"""The demo behind ``bash scripts/demo``: the bug, the build, the delivery, all on loopback.

Stand-ins for the internet: an HTTPS server plays the CA's website (serving the mail
provider's CA bundle), aiosmtpd plays the provider's SMTP server (STARTTLS, AUTH PLAIN, a
certificate from a CA no default store trusts), a local wheelhouse plays the package index
(pip itself is the wheel the buildpack carries). Everything else is real: bin/compile from a
clean copy of the buildpack with a pip-less python3, Rails' ActionMailer on the moved app,
.profile.d sourced, and the build's dyno check (ruby .smtp-ca/check.rb) there.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

import trustme

from support.heroku import (
    build_environment,
    clean_buildpack_copy,
    compile_app,
    move_to_dyno_path,
    write_env_dir,
)
from support.http_server import LocalServer
from support.offline_inputs import load_inputs
from support.pipless_python import make_pipless_python
from support.rails_app import (
    delivery_output,
    dyno_environment,
    make_rails_app,
    run_delivery,
    run_dyno_check,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer

PASSWORD = "SG.demo-password"
# ActionMailer logs "Delivered mail <id>" at info level whether or not the SMTP server took the
# mail: above a DELIVERY-FAILED line it reads as a delivery. The demo prints its own verdict.
QUIET_RAILS = {"RAILS_LOG_LEVEL": "warn"}


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.strip().splitlines())


def main() -> int:
    inputs = load_inputs()
    with tempfile.TemporaryDirectory(prefix="smtp-ca-demo-") as scratch:
        root = Path(scratch)
        provider_ca, site_ca = trustme.CA(), trustme.CA()
        site_ca_file = root / "site-ca.pem"
        site_ca.cert_pem.write_to_path(str(site_ca_file))
        bundle = provider_ca.cert_pem.bytes()
        with (
            LocalServer(tls=site_ca) as site,
            SMTPTestServer(ca=provider_ca, credentials=("apikey", PASSWORD)) as smtp,
        ):
            site.serve("/provider-bundle.crt", bundle)
            config_vars = smtp_config_vars(
                "localhost", smtp.port, login="apikey", password=PASSWORD, auth_method="plain"
            )
            config_vars |= {
                "SMTP_CA_BUNDLE_URL": site.url("/provider-bundle.crt"),
                "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(bundle).hexdigest(),
                "SMTP_CA_CHECK": "strict",
            }
            build_dir = make_rails_app(root / "build_5f2c9e", "mastodon-1.3")

            banner("1. Mastodon 1.3-style app, SMTP_OPENSSL_VERIFY_MODE=peer, no buildpack")
            before = run_delivery(build_dir, dyno_environment(build_dir, config_vars | QUIET_RAILS))
            print(indent(delivery_output(before)))
            if before.returncode == 0:
                print("    Delivered, yet this app should fail before the buildpack runs.")
                return 1
            print("    Not delivered: the bug. Ruby does not trust the provider's CA.")

            banner("2. bin/compile, as Heroku runs it (pip-less python3, config vars in ENV_DIR)")
            env = build_environment(
                make_pipless_python(root / "python").parent,
                inputs,
                root / "home",
                REQUESTS_CA_BUNDLE=str(site_ca_file),
            )
            build = compile_app(
                clean_buildpack_copy(root / "buildpack"),
                build_dir,
                root / "cache",
                write_env_dir(root / "env", config_vars),
                env,
            )
            print(build.stdout + build.stderr, end="")
            if build.returncode != 0:
                print("The build failed.", file=sys.stderr)
                return 1

            banner("3. The app on a dyno: moved to another path, .profile.d sourced")
            dyno_dir = move_to_dyno_path(build_dir, root / "app")
            after = run_delivery(dyno_dir, dyno_environment(dyno_dir, config_vars | QUIET_RAILS))
            print(indent(delivery_output(after)))
            if after.returncode != 0:
                print(f"    Not delivered (exit {after.returncode}): the demo failed.")
                return 1
            (message,) = smtp.wait_for_messages(1)
            print(
                f"    Delivered: the SMTP server received the mail over {message.tls_version}, "
                f"authenticated as {message.authenticated_as}."
            )

            banner("4. The dyno check: heroku run ruby .smtp-ca/check.rb (no login, no mail)")
            check = run_dyno_check(dyno_dir, config_vars)
            print(indent(check.stdout + check.stderr))
            if check.returncode != 0:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
