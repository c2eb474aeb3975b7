"""End to end: a relay with a private CA, trusted from a config var alone; and the input
defects a new user meets (a port in SMTP_SERVER, a file:// bundle gone since the last build).

bin/compile runs as in test_compile.py (a clean buildpack copy, a pip-less python3, config vars only
in ENV_DIR); the app then moves to the dyno's path and real ActionMailer sends through a real
STARTTLS relay whose CA is in no public store and is hosted nowhere: only SMTP_CA_CERTS has it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trustme

from support.bundle_vars import pinned_bundle_vars
from support.heroku import move_to_dyno_path, snapshot
from support.rails_app import (
    dyno_environment,
    make_rails_app,
    require_ruby_rails,
    run_delivery,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

PASSWORD = "relay-s3cret-password-never-printed"


def test_relay_ca_from_smtp_ca_certs_alone_delivers_over_verified_tls(
    world: World, tmp_path: Path
) -> None:
    require_ruby_rails()
    relay_ca = trustme.CA(organization_name="Relay Private CA")
    requests_before = len(world.bundle_server.requests)
    with SMTPTestServer(mode="starttls", ca=relay_ca, credentials=("relay", PASSWORD)) as server:
        config_vars = smtp_config_vars(
            "localhost", server.port, login="relay", password=PASSWORD, auth_method="plain"
        )
        build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")

        build = world.build(
            tmp_path,
            {
                **config_vars,
                "SMTP_CA_BUNDLE_URL": "none",
                "SMTP_CA_PUBLIC_ROOTS": "false",
                "SMTP_CA_CERTS": relay_ca.cert_pem.bytes().decode(),
                "SMTP_CA_CHECK": "strict",
            },
            build_dir=build_dir,
        )
        assert build.returncode == 0, build.output
        assert "Downloaded no bundle (SMTP_CA_BUNDLE_URL=none)" in build.stdout
        assert "Added 1 certificate from SMTP_CA_CERTS:" in build.stdout
        anchored = next(line for line in build.stdout.splitlines() if "Anchored by" in line)
        assert anchored.endswith(", from SMTP_CA_CERTS.")
        assert PASSWORD not in build.output and "Traceback" not in build.output
        assert len(world.bundle_server.requests) == requests_before  # nothing downloaded

        dyno_dir = move_to_dyno_path(build_dir, tmp_path / "app")
        after = run_delivery(dyno_dir, dyno_environment(dyno_dir, config_vars))
        assert after.returncode == 0, after.stdout + after.stderr
        assert "DELIVERED" in after.stdout
        (message,) = server.wait_for_messages(1)
        assert message.tls
        assert message.authenticated_as == "relay"


def test_a_port_in_smtp_server_fails_before_any_download(world: World, tmp_path: Path) -> None:
    body = trustme.CA().cert_pem.bytes()
    bundle_vars = world.bundle_vars("/port-in-server.crt", body)
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
    before = snapshot(build_dir)

    build = world.build(
        tmp_path,
        {**bundle_vars, "SMTP_SERVER": "smtp.sendgrid.net:587"},
        build_dir=build_dir,
    )

    assert build.returncode == 1
    assert " !     SMTP_SERVER is 'smtp.sendgrid.net:587': it holds a port" in build.stderr
    assert "heroku config:set SMTP_SERVER=smtp.sendgrid.net SMTP_PORT=587" in build.stderr
    assert world.bundle_server.count("/port-in-server.crt") == 0
    assert "Traceback" not in build.output
    assert snapshot(build_dir) == before


def test_a_file_bundle_gone_since_the_last_build_is_stood_in_for(
    world: World, tmp_path: Path
) -> None:
    body = trustme.CA().cert_pem.bytes()
    bundle_file = tmp_path / "provider.pem"
    bundle_file.write_bytes(body)
    config_vars = pinned_bundle_vars(bundle_file.as_uri(), body)
    cache = tmp_path / "cache"  # shared by both builds, warm from the start
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    first = world.build(tmp_path / "one", config_vars, cache=cache)
    assert first.returncode == 0, first.output
    bundle_file.unlink()

    second = world.build(tmp_path / "two", config_vars, cache=cache)

    assert second.returncode == 0, second.output
    assert f" !     Warning: SMTP_CA_BUNDLE_URL names {bundle_file}, which does not exist." in (
        second.stderr
    )
    assert "Using the copy an earlier build read on" in second.stderr
    assert "matches the pin" in second.stdout
    written = (second.build_dir / ".smtp-ca" / "ca-bundle.pem").read_bytes()
    assert written == (first.build_dir / ".smtp-ca" / "ca-bundle.pem").read_bytes()
