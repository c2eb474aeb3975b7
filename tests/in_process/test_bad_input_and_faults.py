"""Every bad input and fault a build can meet, and what the user reads: one table.

Each row is run through the real command line in-process (``smtp_ca.cli.main``, with a ``Log``
on strings): config vars in ENV_DIR, STACK, an app in BUILD_DIR, a bundle read from a file://
URL or from a closed loopback port. Nothing is installed (``ensure_dependencies`` returns the
test environment's site-packages) and nothing leaves the machine. A row that relies on file
modes runs the same build in a child, as nobody when the tests run as root (root ignores modes;
tests/support/unprivileged.py). For every row:

* the exit status and a fragment of the message are as the table says;
* there is no Python traceback, unless the row asks for SMTP_CA_DEBUG=1;
* no secret (SMTP_PASSWORD, SMTP_LOGIN, a URL's password or token) is in the output;
* a failed build leaves BUILD_DIR exactly as it was (files, modes, directories, links), and
  writes no export file for later buildpacks.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pytest
import trustme

from smtp_ca import cli, pipeline
from smtp_ca.dependencies import install as bootstrap
from smtp_ca.dependencies.install import dependency_key
from smtp_ca.net import http as fetch
from smtp_ca.output import Log, Redactor
from smtp_ca.platforms.classic import PROFILE_PATH
from smtp_ca.settings import ca as ca_settings
from smtp_ca.wiring import BUNDLE_PATH, INITIALIZER_PATH
from support.bundle_vars import pinned_bundle_vars
from support.http_server import LocalServer
from support.unprivileged import Sandbox, give_to_nobody, pinned_imports, sandbox
from support.wrapped_log import LogBuffer, unwrap

PASSWORD = "SG.s3cret-Passw0rd-never-printed"
LOGIN = "apikey"
URL_PASSWORD = "url-pass-w0rd-secret"
URL_TOKEN = "tok3n-in-the-query-0123456789"
DEPENDENCIES = Path(jinja2.__file__).resolve().parents[1]


# --- the rig: an app, a cache, config vars, a buildpack directory ----------------------------


@dataclass
class Rig:
    root: Path
    monkeypatch: pytest.MonkeyPatch
    bundle_pem: bytes
    config: dict[str, str] = field(default_factory=dict)
    argv_env_dir: Path | None = None  # the ENV_DIR argument, when a row changes it
    secrets: list[str] = field(default_factory=lambda: [PASSWORD, LOGIN])
    box: Sandbox | None = None  # set: the build runs in a child, as nobody when root

    @property
    def build_dir(self) -> Path:
        return self.root / "build_0123abcd"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def other_cache_dir(self) -> Path:
        return self.root / "cache-2"

    @property
    def env_dir(self) -> Path:
        return self.root / "env"

    @property
    def buildpack_dir(self) -> Path:
        return self.root / "buildpack"

    @property
    def outside(self) -> Path:
        """A directory outside the app that a symbolic link in the app may point at."""
        return self.root / "outside"

    @property
    def bundle_file(self) -> Path:
        return self.root / "provider-bundle.pem"

    def write_env(self) -> None:
        self.env_dir.mkdir(exist_ok=True)
        for name, value in self.config.items():
            (self.env_dir / name).write_text(value)

    def compile(self, build_dir: Path | None = None, cache_dir: Path | None = None) -> Result:
        out, err = LogBuffer(), LogBuffer()
        log = Log(Redactor(), out=out, err=err)
        env_dir = self.argv_env_dir or self.env_dir
        build_dir, cache_dir = build_dir or self.build_dir, cache_dir or self.cache_dir
        argv = ["compile", str(build_dir), str(cache_dir), str(env_dir)]
        if self.box is not None:
            give_to_nobody([self.root, *self.root.rglob("*")])
            child = self.box.python(
                UNPRIVILEGED_BUILD, str(self.box.packages), str(self.buildpack_dir), *argv
            )
            return Result(child.returncode, unwrap(child.stdout), unwrap(child.stderr))
        status = cli.main(argv, log=log)
        return Result(status, out.getvalue(), err.getvalue())


# The rig's build, in a child: what the fixture patches in-process, done by hand. It imports
# the pinned packages the sandbox copied, as the test's virtualenv may be out of nobody's reach.
UNPRIVILEGED_BUILD = """
import os, sys
from pathlib import Path
from smtp_ca import cli, pipeline
from smtp_ca.net import http as fetch
from smtp_ca.output import Log, Redactor
dependencies, buildpack, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
os.environ["STACK"] = "heroku-24"
cli.BUILDPACK_DIR = buildpack
pipeline.ensure_dependencies = lambda *args, **kwargs: dependencies
fetch.BACKOFF_FACTOR = 0.01
sys.exit(cli.main(argv, log=Log(Redactor())))
"""


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``root``, links not followed: kind, mode, and bytes or link target."""
    if not root.exists():
        return {}
    entries: dict[str, tuple[object, ...]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entries[relative] = ("dir", stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                entries[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
            else:
                entries[relative] = ("other", stat.S_IFMT(info.st_mode))
    return entries


def make_app(build_dir: Path) -> Path:
    (build_dir / "config").mkdir(parents=True)
    (build_dir / "config" / "application.rb").write_text("# the app\n")
    (build_dir / "Gemfile").write_text("source 'https://rubygems.org'\n")
    return build_dir


@pytest.fixture(scope="module")
def provider_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider_ca: trustme.CA) -> Rig:
    """A Rails-shaped app, its provider's CA bundle on disk and pinned, and a build that
    installs nothing: the test environment already has the dependencies."""
    return make_rig(tmp_path, monkeypatch, provider_ca)


def make_rig(
    root: Path, monkeypatch: pytest.MonkeyPatch, provider_ca: trustme.CA, box: Sandbox | None = None
) -> Rig:
    pem = provider_ca.cert_pem.bytes()
    rig = Rig(root, monkeypatch, pem, box=box)
    rig.bundle_file.write_bytes(pem)
    rig.config = {
        **pinned_bundle_vars(rig.bundle_file.as_uri(), pem),
        "SMTP_CA_PUBLIC_ROOTS": "false",
        "SMTP_OPENSSL_VERIFY_MODE": "peer",
        "SMTP_LOGIN": LOGIN,
        "SMTP_PASSWORD": PASSWORD,
    }
    make_app(rig.build_dir)
    rig.buildpack_dir.mkdir()
    rig.outside.mkdir()
    (rig.outside / "keep.txt").write_text("not the app's\n")

    monkeypatch.setattr(cli, "BUILDPACK_DIR", rig.buildpack_dir)
    monkeypatch.setattr(pipeline, "ensure_dependencies", lambda *args, **kwargs: DEPENDENCIES)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(fetch, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setenv("STACK", "heroku-24")
    for name in list(os.environ):
        if name.startswith(("SMTP_", "BULK_SMTP_")):
            monkeypatch.delenv(name)
    return rig


# --- fault setups: each changes the rig before the build --------------------------------------


def _set(**config: str) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        rig.config.update(config)

    return setup


def _unset(*names: str) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        for name in names:
            rig.config.pop(name, None)

    return setup


def _stack(stack: str | None) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        if stack is None:
            rig.monkeypatch.delenv("STACK")
        else:
            rig.monkeypatch.setenv("STACK", stack)

    return setup


def _env_entry(name: str, make: Callable[[Path], None]) -> Callable[[Rig], None]:
    """Makes ENV_DIR/name with ``make`` instead of writing a value."""

    def setup(rig: Rig) -> None:
        rig.config.pop(name, None)
        rig.write_env()
        make(rig.env_dir / name)

    return setup


def _env_dir_is_a_file(rig: Rig) -> None:
    rig.argv_env_dir = rig.root / "env-file"
    rig.argv_env_dir.write_text("SMTP_PORT=587\n")


def _bundle(data: bytes, pin: bool = False) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        rig.bundle_file.write_bytes(data)
        if pin:
            rig.config["SMTP_CA_BUNDLE_SHA256"] = hashlib.sha256(data).hexdigest()
        else:
            rig.config.pop("SMTP_CA_BUNDLE_SHA256")

    return setup


def _closed_port_with_credentials(rig: Rig) -> None:
    server = LocalServer()
    port = server.port
    server.stop()
    rig.config["SMTP_CA_BUNDLE_URL"] = (
        f"https://deploy:{URL_PASSWORD}@127.0.0.1:{port}/bundle.pem?token={URL_TOKEN}"
    )
    rig.config.pop("SMTP_CA_BUNDLE_SHA256")
    rig.secrets += [URL_PASSWORD, URL_TOKEN]
    rig.monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def _closed_port() -> int:
    server = LocalServer()
    port = server.port
    server.stop()
    return port


def _default_bundle_unreachable(rig: Rig) -> None:
    """The default source on a host that cannot be reached, and no cached copy: a first build
    offline, or the CA's site down."""
    url = f"https://127.0.0.1:{_closed_port()}/repository/gd_bundle-g2-g1.crt"
    rig.monkeypatch.setattr(ca_settings, "DEFAULT_BUNDLE_URL", url)
    rig.monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in ("SMTP_CA_BUNDLE_URL", "SMTP_CA_BUNDLE_SHA256", "SMTP_CA_PUBLIC_ROOTS"):
        rig.config.pop(name, None)


def _bundle_gone_after_a_build(rig: Rig) -> None:
    """The file:// source read by an earlier build (so cached), then gone."""
    rig.write_env()
    first = rig.compile(make_app(rig.root / "build_earlier"))
    assert first.status == 0, first.output
    rig.bundle_file.unlink()


def _certs(*blocks: bytes | str) -> Callable[[Rig], None]:
    """SMTP_CA_CERTS made of ``blocks`` ("ROOT" is the provider's CA), and no download."""

    def setup(rig: Rig) -> None:
        rig.config["SMTP_CA_CERTS"] = "".join(
            rig.bundle_pem.decode()
            if block == "ROOT"
            else block
            if isinstance(block, str)
            else block.decode()
            for block in blocks
        )
        rig.config["SMTP_CA_BUNDLE_URL"] = "none"
        rig.config.pop("SMTP_CA_BUNDLE_SHA256")

    return setup


def _private_key_in_certs(rig: Rig) -> None:
    key = trustme.CA().private_key_pem.bytes()
    _certs("ROOT", key)(rig)
    rig.secrets.append(key.decode().splitlines()[1])


BULK_PASSWORD = "bulk-s3cret-Passw0rd"


def _bulk_password_in_the_port(rig: Rig) -> None:
    rig.config.update(
        BULK_SMTP_SERVER="bulk.example.com",
        BULK_SMTP_PASSWORD=BULK_PASSWORD,
        BULK_SMTP_PORT=BULK_PASSWORD,
    )
    rig.secrets.append(BULK_PASSWORD)


def _no_build_dir(rig: Rig) -> None:
    rig.build_dir.rename(rig.root / "elsewhere")


def _in_app(relative: str, make: Callable[[Rig, Path], None]) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        path = rig.build_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        make(rig, path)

    return setup


def _link_outside(rig: Rig, path: Path) -> None:
    path.symlink_to(rig.outside)


def _link_to_victim(rig: Rig, path: Path) -> None:
    path.symlink_to(rig.outside / "victim.pem")


def _link_loop(rig: Rig, path: Path) -> None:
    path.symlink_to(path)


def _directory(rig: Rig, path: Path) -> None:
    path.mkdir()
    (path / "something").write_text("the app's\n")


def _file(rig: Rig, path: Path) -> None:
    path.write_text("the app's own file\n")


def _apps_own_initializer(rig: Rig, path: Path) -> None:
    path.write_text("# the app's own initializer\n")


def _committed_old_files(rig: Rig) -> None:
    """An app that committed an old generated bundle, and has its own .profile.d script."""
    (rig.build_dir / ".smtp-ca").mkdir()
    (rig.build_dir / BUNDLE_PATH).write_bytes(b"# Generated by heroku-buildpack-smtp-ca\nold\n")
    (rig.build_dir / ".profile.d").mkdir()
    (rig.build_dir / ".profile.d" / "app.sh").write_text("export APP=1\n")


def _fail_rename_of(name: str, error: BaseException) -> Callable[[Rig], None]:
    """The rename into ``name`` fails, after the earlier files were moved into place."""

    def setup(rig: Rig) -> None:
        _committed_old_files(rig)
        real_replace = Path.replace

        def replace(self: Path, target: str | os.PathLike[str]) -> Path:
            if Path(target).name == name:
                raise error
            return real_replace(self, target)

        rig.monkeypatch.setattr(Path, "replace", replace)

    return setup


def _cancelled_while_moving(name: str) -> Callable[[Rig], None]:
    """Heroku cancels a build with SIGTERM; here it comes while ``name`` is being moved."""

    def setup(rig: Rig) -> None:
        _committed_old_files(rig)
        real_replace = Path.replace

        def replace(self: Path, target: str | os.PathLike[str]) -> Path:
            if Path(target).name == name:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_replace(self, target)

        rig.monkeypatch.setattr(Path, "replace", replace)

    return setup


def _unwritable_initializers(rig: Rig) -> None:
    _committed_old_files(rig)
    initializers = rig.build_dir / "config" / "initializers"
    initializers.mkdir()
    initializers.chmod(0o555)


def _staging_fails(rig: Rig) -> None:
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(rig.build_dir))

    rig.monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)


def _buildpack_dir_not_writable(rig: Rig) -> None:
    rig.monkeypatch.setattr(cli, "BUILDPACK_DIR", rig.root / "buildpack-gone")


def _cache_dir_is_a_file(rig: Rig) -> None:
    rig.cache_dir.parent.mkdir(parents=True, exist_ok=True)
    rig.cache_dir.write_text("a file where the cache should be\n")


def _damaged_merged_cache(rig: Rig) -> None:
    rig.write_env()
    first_app = rig.root / "first-app"
    first_app.mkdir()
    assert rig.compile(first_app).status == 0
    merged = rig.cache_dir / "smtp-ca" / "bundle" / "merged.pem"
    merged.write_bytes(merged.read_bytes()[:-100])


def _killed_between_data_and_metadata(rig: Rig) -> None:
    """What a build killed after writing merged.pem, before merged.json, leaves behind."""
    rig.write_env()
    first_app = rig.root / "first-app"
    first_app.mkdir()
    assert rig.compile(first_app).status == 0
    bundle_cache = rig.cache_dir / "smtp-ca" / "bundle"
    (bundle_cache / "merged.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf")
    (bundle_cache / ".merged.pem.x1y2z3.tmp").write_bytes(b"half of a temporary file")


def _stack_changed(rig: Rig) -> None:
    """The cache holds dependencies installed on heroku-22; this build runs on heroku-24."""
    rig.monkeypatch.setattr(pipeline, "ensure_dependencies", bootstrap.ensure_dependencies)
    deps = rig.cache_dir / "smtp-ca" / "python-deps"
    old = deps / dependency_key("heroku-22", pipeline.LOCK_FILE.read_bytes())
    (old / "requests").mkdir(parents=True)
    bootstrap.write_marker(old, old.name)
    (rig.cache_dir / "smtp-ca" / "stack").write_text("heroku-22\n")

    def install(layout: object, target: Path, *args: object) -> Path:
        assert not old.exists(), "the other stack's dependencies must be gone"
        return DEPENDENCIES

    rig.monkeypatch.setattr(bootstrap, "_install", install)


def _internal_error(rig: Rig) -> None:
    from smtp_ca.bundle import prepare as bundle

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"login {LOGIN} with {PASSWORD} went wrong")

    rig.monkeypatch.setattr(bundle, "prepare_bundle", broken)


def _then(*setups: Callable[[Rig], None]) -> Callable[[Rig], None]:
    def setup(rig: Rig) -> None:
        for one in setups:
            one(rig)

    return setup


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Rig], None]
    expected: str  # a fragment of the output
    status: int = 1
    traceback: bool = False  # only with SMTP_CA_DEBUG=1
    unprivileged: bool = False  # relies on file permissions: run as nobody when root


def _timeout(value: str, name: str = "SMTP_CA_CHECK_TIMEOUT") -> Case:
    return Case(
        f"{name.lower()}-{value}",
        _set(**{name: value}),
        f"{name} is {value!r}; it must be a number of seconds from 0.001 to 120",
    )


CASES = [
    # Config vars: which variable, what is wrong, what is accepted.
    Case("port-zero", _set(SMTP_PORT="0"), "SMTP_PORT is '0'; it must be a whole number from 1"),
    Case("port-too-big", _set(SMTP_PORT="65536"), "SMTP_PORT is '65536'; it must be a whole"),
    Case("port-words", _set(SMTP_PORT="587 tls"), "SMTP_PORT is '587 tls'"),
    Case("port-not-ascii", _set(SMTP_PORT="\uff15\uff18\uff17"), "SMTP_PORT is '\uff15"),
    Case("port-is-the-password", _set(SMTP_PORT=PASSWORD), "SMTP_PORT is '[REDACTED]'"),
    Case("port-long", _set(SMTP_PORT="5" * 300), "SMTP_PORT is a value of 300 characters"),
    Case(
        "check-mode",
        _set(SMTP_CA_CHECK="sometimes"),
        "SMTP_CA_CHECK is 'sometimes', which is not one of: strict, warn, off",
    ),
    *(_timeout(value) for value in ("0", "-1", "121", "nan", "inf", "1e1", "1_0", "ten")),
    Case(
        "url-http",
        _set(SMTP_CA_BUNDLE_URL="http://ca.example/b.pem"),
        "SMTP_CA_BUNDLE_URL uses http://",
    ),
    Case(
        "url-ftp",
        _set(SMTP_CA_BUNDLE_URL="ftp://ca.example/b.pem"),
        "SMTP_CA_BUNDLE_URL must be an https:// URL, a file:// path, or none",
    ),
    Case(
        "url-no-host",
        _set(SMTP_CA_BUNDLE_URL="https:///b.pem"),
        "SMTP_CA_BUNDLE_URL must be an https:// URL",
    ),
    Case(
        "url-broken-ipv6",
        _set(SMTP_CA_BUNDLE_URL="https://[::1/b.pem"),
        "SMTP_CA_BUNDLE_URL is not a valid URL",
    ),
    Case(
        "url-control-character",
        _set(SMTP_CA_BUNDLE_URL="https://ca.example/b.pem\tx"),
        "SMTP_CA_BUNDLE_URL holds a control character",
    ),
    Case(
        "pin-short",
        _set(SMTP_CA_BUNDLE_SHA256="abc"),
        "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal digits (a SHA-256 digest); it has 3",
    ),
    Case(
        "pin-not-hex",
        _set(SMTP_CA_BUNDLE_SHA256="g" * 64),
        "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal digits",
    ),
    Case(
        "public-roots",
        _set(SMTP_CA_PUBLIC_ROOTS="yes"),
        "SMTP_CA_PUBLIC_ROOTS is 'yes', which is not one of: true, false",
    ),
    Case(
        "debug-flag",
        _set(SMTP_CA_DEBUG="maybe"),
        "SMTP_CA_DEBUG is 'maybe', which is not one of: 1, true, yes, 0, false, no",
    ),
    Case(
        "verify-mode",
        _set(SMTP_OPENSSL_VERIFY_MODE="verify"),
        "SMTP_OPENSSL_VERIFY_MODE is 'verify'; the mail gem accepts none, peer",
    ),
    Case(
        "server",
        _set(SMTP_SERVER="smtp example.com"),
        "SMTP_SERVER must be a host name or an IP address",
    ),
    Case(
        "server-with-port",
        _set(SMTP_SERVER="smtp.sendgrid.net:587"),
        "SMTP_SERVER is 'smtp.sendgrid.net:587': it holds a port, but must be the host name alone",
    ),
    Case(
        "server-with-scheme",
        _set(SMTP_SERVER="smtp://smtp.sendgrid.net"),
        "heroku config:set SMTP_SERVER=smtp.sendgrid.net\n",
    ),
    Case(
        "server-url-with-port-and-path",
        _set(SMTP_SERVER="smtps://smtp.example.com:465/"),
        "it holds a scheme (smtps://) and a port and a path",
    ),
    Case(
        "server-ipv6-with-port",
        _set(SMTP_SERVER="[2001:db8::25]:587"),
        "heroku config:set SMTP_SERVER=2001:db8::25 SMTP_PORT=587",
    ),
    Case(
        "server-ipv6-is-fine",
        _set(SMTP_SERVER="::1", SMTP_PORT=str(_closed_port()), SMTP_CA_CHECK_TIMEOUT="2"),
        "-----> Checking [::1]:",
        status=0,
    ),
    # Judged as the app's Ruby uses them (tests/e2e/test_ruby_baseline.py shows the app failing):
    # brackets reach net-smtp as part of the name; a zero-padded address is no address to
    # Ruby's certificate check, while this machine connects to 127.0.0.1 and Python verifies.
    Case(
        "server-ipv6-in-brackets",
        _set(SMTP_SERVER="[::1]"),
        " !     SMTP_SERVER is '[::1]': the app's mail gem hands it to net-smtp as it is, and "
        "Ruby looks it up as a host name, brackets included, which fails (getaddrinfo: Name or "
        "service not known): no mail would be sent. An IPv6 address goes in SMTP_SERVER "
        "without brackets.\n !     Set it with: heroku config:set SMTP_SERVER=::1\n",
    ),
    Case(
        "server-zero-padded-ipv4",
        _set(SMTP_SERVER="127.000.000.001"),
        " !     SMTP_SERVER is '127.000.000.001', which this machine connects to as the IPv4 "
        "address 127.0.0.1; the app's Ruby does not read it as an address, and checks the "
        "server's certificate for that text as a host name, which no certificate holds: the "
        "check would pass, and the app's mail fail. Write the address the usual way.\n"
        " !     Set it with: heroku config:set SMTP_SERVER=127.0.0.1\n",
    ),
    Case(
        "bulk-server-in-brackets",
        _set(BULK_SMTP_SERVER="[2001:db8::25]"),
        "Set it with: heroku config:set BULK_SMTP_SERVER=2001:db8::25",
    ),
    *(_timeout(value, "SMTP_CA_FETCH_TIMEOUT") for value in ("0", "121", "1e1", "soon")),
    # Mastodon's bulk mailer: the same checks, by the BULK_SMTP_ names.
    Case(
        "bulk-server-with-port",
        _set(BULK_SMTP_SERVER="smtp.sendgrid.net:587"),
        "heroku config:set BULK_SMTP_SERVER=smtp.sendgrid.net BULK_SMTP_PORT=587",
    ),
    Case(
        "bulk-port",
        _set(BULK_SMTP_SERVER="bulk.example.com", BULK_SMTP_PORT="smtp"),
        "BULK_SMTP_PORT is 'smtp'; it must be a whole number from 1 to 65535",
    ),
    Case(
        "bulk-password-in-the-port",
        _bulk_password_in_the_port,
        "BULK_SMTP_PORT is '[REDACTED]'",
    ),
    Case(
        "bulk-verify-mode",
        _set(BULK_SMTP_SERVER="bulk.example.com", BULK_SMTP_OPENSSL_VERIFY_MODE="on"),
        "BULK_SMTP_OPENSSL_VERIFY_MODE is 'on'; the mail gem accepts none, peer",
    ),
    Case(
        "bulk-tls-upper-case",
        _set(BULK_SMTP_SERVER="bulk.example.com", BULK_SMTP_TLS="TRUE", SMTP_CA_CHECK="off"),
        "BULK_SMTP_TLS is 'TRUE'; Mastodon 4.4 and later only take the exact value 'true'",
        status=0,
    ),
    Case("stack-unset", _stack(None), "STACK is not set."),
    Case("stack-eol", _stack("heroku-20"), "The stack heroku-20 is end of life"),
    Case("stack-unknown", _stack("container"), "Unknown stack 'container'"),
    # Values Mastodon reads its own way: a warning, and the build goes on.
    Case(
        "tls-upper-case",
        _set(SMTP_TLS="TRUE"),
        "SMTP_TLS is 'TRUE'; Mastodon 3.5 and later only take the exact value 'true'",
        status=0,
    ),
    Case(
        "tls-false",
        _set(SMTP_TLS="false"),
        "Mastodon 1.4 to 3.4 turn TLS on for any value that is set, even this one",
        status=0,
    ),
    Case(
        "starttls-unknown",
        _set(SMTP_ENABLE_STARTTLS="sometimes"),
        "SMTP_ENABLE_STARTTLS is 'sometimes'; Mastodon knows 'auto', 'always' and 'never'",
        status=0,
    ),
    Case(
        "starttls-auto-no",
        _set(SMTP_ENABLE_STARTTLS_AUTO="no"),
        "SMTP_ENABLE_STARTTLS_AUTO is 'no'; Mastodon only turns STARTTLS off for the exact",
        status=0,
    ),
    # A Mastodon app (SMTP_SERVER set; the rig's app has no production.rb to say otherwise)
    # that names no verify mode: with SMTP_CA_VERIFY_DEFAULT=off nothing fills one in.
    Case(
        "verify-mode-unset",
        _then(
            _unset("SMTP_OPENSSL_VERIFY_MODE"),
            _set(SMTP_SERVER="smtp.example.com", SMTP_CA_CHECK="off", SMTP_CA_VERIFY_DEFAULT="off"),
        ),
        " !     Warning: SMTP_OPENSSL_VERIFY_MODE is not set: Ruby 2.7 and older then verify "
        "no certificate. Set it: heroku config:set SMTP_OPENSSL_VERIFY_MODE=peer\n",
        status=0,
    ),
    # By default the initializer fills in peer: a detail line, and no warning.
    Case(
        "verify-mode-unset-filled-in",
        _then(
            _unset("SMTP_OPENSSL_VERIFY_MODE"),
            _set(SMTP_SERVER="smtp.example.com", SMTP_CA_CHECK="off"),
        ),
        "       SMTP_OPENSSL_VERIFY_MODE is not set: the buildpack's initializer fills in peer at "
        "delivery (SMTP_CA_VERIFY_DEFAULT=peer), so the app verifies the server, whichever "
        "net/smtp it runs\n",
        status=0,
    ),
    Case(
        "verify-default-typo",
        _set(SMTP_CA_VERIFY_DEFAULT="none"),
        "SMTP_CA_VERIFY_DEFAULT is 'none', which is not one of: peer, off.",
    ),
    Case(
        "typo-in-own-variable",
        _set(SMTP_CA_CHEK="strict"),
        "SMTP_CA_CHEK is not a config var this buildpack reads; did you mean SMTP_CA_CHECK?",
        status=0,
    ),
    Case(
        "ca-file-build-path",
        _set(SMTP_CA_FILE="/tmp/build_5f3e/.smtp-ca/ca-bundle.pem"),
        "SMTP_CA_FILE is set to /tmp/build_5f3e/.smtp-ca/ca-bundle.pem, a path that exists only "
        "during the build",
        status=0,
    ),
    Case(
        "ca-file-removed-on-heroku-24",
        _set(SMTP_CA_FILE="/usr/lib/ssl/cert.pem"),
        "SMTP_CA_FILE is set to /usr/lib/ssl/cert.pem, which heroku-24 no longer has",
        status=0,
    ),
    Case(
        "ca-file-kept-on-heroku-22",
        _then(_set(SMTP_CA_FILE="/usr/lib/ssl/cert.pem"), _stack("heroku-22")),
        "SMTP_CA_FILE is set to /usr/lib/ssl/cert.pem: the app uses that file",
        status=0,
    ),
    Case(
        "bulk-ca-file-unexpanded",
        _set(BULK_SMTP_CA_FILE="$HOME/.smtp-ca/ca-bundle.pem"),
        "BULK_SMTP_CA_FILE is set to $HOME/.smtp-ca/ca-bundle.pem: config vars are not expanded",
        status=0,
    ),
    # ENV_DIR itself.
    Case(
        "env-directory",
        _env_entry("SMTP_PORT", lambda path: path.mkdir()),
        "The config var SMTP_PORT in ENV_DIR is a directory",
    ),
    Case(
        "env-binary",
        _env_entry("SMTP_SERVER", lambda path: path.write_bytes(b"smtp\xff\xfe")),
        "The config var SMTP_SERVER is not text: byte 5 of its value is not UTF-8",
    ),
    Case(
        "env-nul",
        _env_entry("SMTP_SERVER", lambda path: path.write_bytes(b"smtp\0x")),
        "The config var SMTP_SERVER holds a NUL byte",
    ),
    Case(
        "env-binary-secret",
        _env_entry("SMTP_PASSWORD", lambda path: path.write_bytes(PASSWORD.encode() + b"\xff")),
        "The config var SMTP_PASSWORD is not text",
    ),
    Case(
        "env-huge",
        _env_entry("SMTP_CA_BUNDLE_URL", lambda path: path.write_bytes(b"h" * 100_000)),
        "The config var SMTP_CA_BUNDLE_URL is 100000 bytes; Heroku allows 32 KB",
    ),
    Case(
        "env-dangling-link",
        _env_entry("SMTP_CA_CHECK", lambda path: path.symlink_to(path.parent / "nowhere")),
        "The config var SMTP_CA_CHECK in ENV_DIR is a symbolic link to a file that does not exist",
    ),
    Case(
        "env-fifo",
        _env_entry("SMTP_SERVER", lambda path: os.mkfifo(path)),
        "The config var SMTP_SERVER in ENV_DIR is not a regular file",
    ),
    Case(
        "env-other-apps-binary-var-is-not-read",
        _env_entry("RAILS_MASTER_KEY", lambda path: path.write_bytes(b"\xff\0" * 50_000)),
        "Wrote .smtp-ca/ca-bundle.pem",
        status=0,
    ),
    Case("env-dir-is-a-file", _env_dir_is_a_file, "is not a directory"),
    # The bundle source.
    Case(
        "bundle-missing",
        lambda rig: rig.bundle_file.unlink(),
        "provider-bundle.pem, which does not exist",
    ),
    Case(
        "bundle-file-gone-since-an-earlier-build",
        _bundle_gone_after_a_build,
        "provider-bundle.pem, which does not exist.\n !     Using the copy an earlier build read",
        status=0,
    ),
    Case(
        "default-bundle-unreachable-on-a-first-build",
        _default_bundle_unreachable,
        "The build goes on with certifi's public roots alone. What they lack is Go Daddy Secure "
        "Certificate Authority - G2",
        status=0,
    ),
    Case(
        "bundle-pin-mismatch",
        _set(SMTP_CA_BUNDLE_SHA256="0" * 64),
        "does not match SMTP_CA_BUNDLE_SHA256",
    ),
    Case(
        "bundle-html",
        _bundle(b"<!DOCTYPE html><html><body>Sign in</body></html>", pin=True),
        "looks like an HTML page, not PEM certificates",
    ),
    Case("bundle-empty", _bundle(b"", pin=True), "is empty"),
    Case(
        "bundle-truncated",
        _bundle(b"-----BEGIN CERTIFICATE-----\nMIIB\n", pin=True),
        "has -----BEGIN CERTIFICATE----- but no END line: the file is truncated",
    ),
    Case(
        "bundle-too-large",
        _bundle(b"#" * (2 * 1024 * 1024 + 1)),
        "is larger than 2 MiB; a CA bundle is a few KiB",
    ),
    Case(
        "bundle-server-down-with-credentials-in-url",
        _closed_port_with_credentials,
        "Could not download the CA bundle from SMTP_CA_BUNDLE_URL (https://[REDACTED]@127.0.0.1:",
    ),
    # SMTP_CA_CERTS and SMTP_CA_BUNDLE_URL=none.
    Case(
        "certs-alone",
        _certs("ROOT"),
        "Added 1 certificate from SMTP_CA_CERTS:\n         ",
        status=0,
    ),
    Case(
        "certs-private-key",
        _private_key_in_certs,
        "SMTP_CA_CERTS: block 2 (line ",
    ),
    Case(
        "certs-certificate-request",
        _certs(
            "ROOT",
            b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        ),
        ") is a CERTIFICATE REQUEST, not a certificate.",
    ),
    Case(
        "certs-garbled-block",
        _certs(b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"),
        "SMTP_CA_CERTS: block 1 (line 1) is not a valid X.509 certificate",
    ),
    Case(
        "certs-not-pem",
        _certs("relay-ca.pem"),
        "SMTP_CA_CERTS is not PEM: it has no -----BEGIN CERTIFICATE----- line.",
    ),
    Case(
        "certs-one-line",
        _certs("-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----"),
        "it is one line with \\n where its line breaks should be",
    ),
    Case(
        "bundle-url-none-nothing-else",
        _set(SMTP_CA_BUNDLE_URL="none", SMTP_CA_PUBLIC_ROOTS="false"),
        "The CA bundle would be empty: SMTP_CA_BUNDLE_URL=none downloads nothing",
    ),
    Case(
        "bundle-url-none-with-a-pin",
        _then(_certs("ROOT"), _set(SMTP_CA_BUNDLE_SHA256="0" * 64)),
        "SMTP_CA_BUNDLE_SHA256 is set, but SMTP_CA_BUNDLE_URL=none: nothing is downloaded",
        status=0,
    ),
    # BUILD_DIR and what the app committed.
    Case("build-dir-missing", _no_build_dir, "is not a directory"),
    Case(
        "profile-d-links-outside",
        _in_app(".profile.d", _link_outside),
        ".profile.d in the app is a symbolic link to",
    ),
    Case(
        "smtp-ca-links-outside",
        _in_app(".smtp-ca", _link_outside),
        ".smtp-ca in the app is a symbolic link to",
    ),
    Case(
        "config-links-outside",
        _in_app("config/initializers", _link_outside),
        "config/initializers in the app is a symbolic link to",
    ),
    Case(
        "bundle-file-is-a-link",
        _in_app(BUNDLE_PATH, _link_to_victim),
        f"{BUNDLE_PATH} in the app is a symbolic link; the buildpack will not write through it",
    ),
    Case(
        "link-loop",
        _in_app(".profile.d", _link_loop),
        ".profile.d in the app is a symbolic link that cannot be followed",
    ),
    Case(
        "bundle-path-is-a-directory",
        _in_app(BUNDLE_PATH, _directory),
        f"{BUNDLE_PATH} in the app is a directory; the buildpack writes a file there",
    ),
    Case(
        "smtp-ca-is-a-file",
        _in_app(".smtp-ca", _file),
        ".smtp-ca in the app is not a directory (a file, or a broken link)",
    ),
    Case(
        "apps-own-initializer-is-kept",
        _in_app(INITIALIZER_PATH, _apps_own_initializer),
        f"Kept the app's own {INITIALIZER_PATH}",
        status=0,
    ),
    Case(
        "last-rename-fails",
        _fail_rename_of(
            "smtp_ca.rb", PermissionError(errno.EACCES, "Permission denied", INITIALIZER_PATH)
        ),
        f"Could not put {INITIALIZER_PATH} into place: Permission denied. Nothing in the app "
        "was changed.",
    ),
    Case(
        "export-rename-fails",
        _fail_rename_of("export", OSError(errno.ENOSPC, "No space left on device")),
        "/buildpack/export into place: No space left on device. Nothing in the app",
    ),
    Case(
        "interrupted-while-moving-files",
        _fail_rename_of("smtp_ca.rb", KeyboardInterrupt()),
        "Interrupted.",
        status=130,
    ),
    Case(
        "cancelled-with-sigterm-while-moving-files",
        _cancelled_while_moving("smtp_ca.rb"),
        " !     Terminated (SIGTERM).\n",
        status=143,
    ),
    Case(
        "initializers-directory-read-only",
        _unwritable_initializers,
        f"Could not put {INITIALIZER_PATH} into place: Permission denied",
        unprivileged=True,
    ),
    Case(
        "staging-directory-cannot-be-made",
        _staging_fails,
        "Could not write into the app's directory",
    ),
    Case(
        "export-cannot-be-written",
        _buildpack_dir_not_writable,
        "Could not write the export file for later buildpacks in",
    ),
    # The cache.
    Case("cache-dir-is-a-file", _cache_dir_is_a_file, "CACHE_DIR"),
    Case(
        "damaged-bundle-cache",
        _damaged_merged_cache,
        "Threw away the cached CA bundle: it is damaged",
        status=0,
    ),
    Case(
        "build-killed-while-writing-the-cache",
        _killed_between_data_and_metadata,
        "Threw away the cached CA bundle: it is damaged (its SHA-256 does not match",
        status=0,
    ),
    Case(
        "stack-change",
        _stack_changed,
        "Stack changed from heroku-22 to heroku-24: reinstalling the buildpack's Python",
        status=0,
    ),
    # Our own bugs.
    Case(
        "internal-error",
        _internal_error,
        "Internal error in the SMTP CA buildpack (RuntimeError). This is a bug, not a problem "
        "with your app.\n !     Please report it to the issue tracker of "
        "heroku-buildpack-smtp-ca, with this build log.\n !     Set SMTP_CA_DEBUG=1 to see the "
        "details.",
    ),
    Case(
        "internal-error-with-debug",
        _then(_internal_error, _set(SMTP_CA_DEBUG="1")),
        "RuntimeError: login [REDACTED] with [REDACTED] went wrong",
        traceback=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(
    rig: Rig, case: Case, monkeypatch: pytest.MonkeyPatch, provider_ca: trustme.CA
) -> None:
    if not case.unprivileged:
        _check_fault(rig, case)
        return
    with sandbox("smtp-ca-fault-", packages=pinned_imports()) as box:
        (box.root / "rig").mkdir()
        _check_fault(make_rig(box.root / "rig", monkeypatch, provider_ca, box), case)


def _check_fault(rig: Rig, case: Case) -> None:
    case.setup(rig)
    rig.write_env()  # rows that made an ENV_DIR entry themselves took it out of rig.config
    before = snapshot(rig.build_dir)
    outside_before = snapshot(rig.outside)

    result = rig.compile()

    assert result.status == case.status, result.output
    assert case.expected in result.output, result.output
    assert ("Traceback" in result.output) == case.traceback, result.output
    for secret in rig.secrets:
        assert secret not in result.output, f"{secret!r} leaked:\n{result.output}"
    assert snapshot(rig.outside) == outside_before, "a write went outside the app"
    if case.status != 0:
        assert snapshot(rig.build_dir) == before, "a failed build changed the app"
        assert list(rig.buildpack_dir.iterdir()) == [], "no export, staged or final"
    else:
        assert b"-----BEGIN CERTIFICATE-----" in (rig.build_dir / BUNDLE_PATH).read_bytes()
        assert (rig.build_dir / PROFILE_PATH).is_file()
        assert [p.name for p in rig.buildpack_dir.iterdir()] == ["export"]
        assert not list(rig.build_dir.glob(".smtp-ca-staging-*"))


def test_a_failed_rename_puts_back_every_file_it_replaced(rig: Rig) -> None:
    """The table checks the whole tree; this spells out what the undo did."""
    _fail_rename_of("smtp_ca.rb", PermissionError(errno.EACCES, "Permission denied"))(rig)
    rig.write_env()
    old_bundle = (rig.build_dir / BUNDLE_PATH).read_bytes()

    result = rig.compile()

    assert result.status == 1
    assert (rig.build_dir / BUNDLE_PATH).read_bytes() == old_bundle  # put back
    assert not (rig.build_dir / PROFILE_PATH).exists()  # new: removed
    assert (rig.build_dir / ".profile.d" / "app.sh").is_file()  # the app's: untouched
    assert not (rig.build_dir / "config" / "initializers").exists()  # made by us: removed


# --- the same app compiled twice: byte-identical files --------------------------------------


def test_the_same_app_compiled_twice_gives_byte_identical_files(rig: Rig) -> None:
    """Two cold builds of two copies of the app at different paths, with public roots (the
    whole merge), then a warm rebuild of the first: every file, mode and link the same."""
    rig.config["SMTP_CA_PUBLIC_ROOTS"] = "true"
    rig.write_env()
    other = make_app(rig.root / "build_fedcba98")

    first = rig.compile()
    second = rig.compile(other, rig.other_cache_dir)

    assert first.status == second.status == 0, first.output + second.output
    assert "Merged with" in first.stdout and "Merged with" in second.stdout
    assert snapshot(rig.build_dir) == snapshot(other)
    assert len(snapshot(other)) > len(snapshot(make_app(rig.root / "pristine")))

    rebuilt = rig.compile()  # a warm cache, and the first build's files already in place
    assert rebuilt.status == 0, rebuilt.output
    assert snapshot(rig.build_dir) == snapshot(other)


# --- usage mistakes and environment ------------------------------------------------------------


def test_usage_mistakes_are_reported_through_the_log() -> None:
    out, err = LogBuffer(), LogBuffer()
    status = cli.main(["compile"], log=Log(out=out, err=err))
    assert status == 2
    assert err.getvalue().startswith(" !     the following arguments are required: build_dir")
    assert " !     usage: smtp_ca compile" in err.getvalue()
    assert out.getvalue() == ""


def test_invalid_debug_flag_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_CA_DEBUG", "on please")
    err = LogBuffer()
    status = cli.main(["compile", "/nonexistent", "/nonexistent"], log=Log(err=err))
    assert status == 1
    assert "SMTP_CA_DEBUG is 'on please', which is not one of" in err.getvalue()


def test_library_logging_goes_through_the_log_redacted(rig: Rig) -> None:
    """What libraries log with ``logging`` is redacted like our own lines."""
    import logging

    rig.write_env()
    rig.monkeypatch.setattr(
        pipeline,
        "ensure_dependencies",
        lambda *args, **kwargs: (
            logging.getLogger("somelib").warning("login %s with %s failed", LOGIN, PASSWORD)
            or DEPENDENCIES
        ),
    )

    result = rig.compile()

    assert result.status == 0, result.output
    assert "somelib: login [REDACTED] with [REDACTED] failed" in result.stdout
    for secret in rig.secrets:
        assert secret not in result.output


def test_retries_are_reported_in_the_builds_words_not_urllib3s(rig: Rig) -> None:
    """urllib3 logs "Retrying (Retry(total=2, connect=2, ...)) after connection broken by
    ..." at WARNING for every retry; the build says it once per retry, its own way."""
    _closed_port_with_credentials(rig)
    rig.write_env()

    result = rig.compile()

    assert result.status == 1
    assert "urllib3" not in result.output and "Retrying" not in result.output
    retries = [line for line in result.stdout.splitlines() if "Attempt" in line]
    assert len(retries) == 3, result.stdout
    assert retries[0].startswith("       Attempt 1 of 4 to download https://[REDACTED]@127.0.0.1:")
    assert "failed (Connection refused); trying again in 0.01 s." in retries[0]
    assert "?[REDACTED]" in retries[0]
    for secret in rig.secrets:
        assert secret not in result.output
