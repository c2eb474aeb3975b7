"""Heroku-style output and redaction of secrets."""

from __future__ import annotations

import io

from smtp_ca.output import Log, Redactor


def test_heroku_prefixes_and_streams() -> None:
    out, err = io.StringIO(), io.StringIO()
    log = Log(out=out, err=err)
    log.step("Preparing")
    log.info("detail\nsecond line")
    log.warn("careful")
    log.error("broken")
    assert out.getvalue() == "-----> Preparing\n       detail\n       second line\n"
    assert err.getvalue() == " !     Warning: careful\n !     broken\n"


def test_secrets_and_url_credentials_are_redacted() -> None:
    redact = Redactor(["hunter2-password"])
    text = redact("auth failed for hunter2-password at https://bob:pw@ca.example/x.pem")
    assert "hunter2-password" not in text
    assert "bob:pw" not in text
    assert "https://[REDACTED]@ca.example/x.pem" in text


def test_added_secret_is_redacted_in_every_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    log = Log(out=out, err=err)
    log.redact.add("apikey-123")
    log.info("login apikey-123")
    log.error("again apikey-123")
    assert "apikey-123" not in out.getvalue() + err.getvalue()
