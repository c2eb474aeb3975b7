"""Heroku-style output and redaction of secrets."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smtp_ca.output import Log, Redactor, url_secrets

SRC = Path(__file__).resolve().parents[1] / "src"


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


# --- the redaction rule (smtp_ca.output's docstring) -----------------------------------------


def test_long_secrets_go_even_inside_words_and_short_ones_only_as_words() -> None:
    redact = Redactor(["hunter2-password", "apikey"])
    assert redact("x\\x00hunter2-passwordy") == "x\\x00[REDACTED]y"
    assert redact("login apikey, SMTP_LOGIN=apikey.") == (
        "login [REDACTED], SMTP_LOGIN=[REDACTED]."
    )
    assert redact("apikeys") == "apikeys"


def test_short_secret_that_is_an_ordinary_word_leaves_our_file_names_alone() -> None:
    redact = Redactor(["smtp"])
    assert redact("Wrote config/initializers/smtp_ca.rb") == "Wrote config/initializers/smtp_ca.rb"
    assert redact("login smtp failed") == "login [REDACTED] failed"


def test_very_short_secrets_are_redacted_as_words() -> None:
    """Two characters are still redacted where they stand alone; before, anything under three
    characters was skipped."""
    assert Redactor(["ab"])("password ab rejected; abc kept") == (
        "password [REDACTED] rejected; abc kept"
    )


def test_punctuation_only_short_secret_is_not_redacted() -> None:
    assert Redactor(["--"])("-----> Step -- done") == "-----> Step -- done"


def test_secrets_are_found_in_the_forms_python_prints_them() -> None:
    secret = "it's\\a-long-secret"
    redact = Redactor([secret])
    for shown in (repr(secret), '{"password": "it\'s\\\\a-long-secret"}', "it%27s%5Ca-long-secret"):
        assert "long-secret" not in redact(f"error: {shown}"), shown


def test_overlapping_secrets_are_both_removed_whole() -> None:
    assert Redactor(["xxxxxxxxab", "abcdefghij"])("xxxxxxxxabcdefghij!") == "[REDACTED]!"


def test_library_logging_and_warnings_go_through_the_log() -> None:
    import logging
    import warnings

    from smtp_ca.output import LogHandler

    out = io.StringIO()
    log = Log(Redactor(["tok3n-0123456789"]), out=out, err=io.StringIO())
    logger = logging.getLogger("test.library")
    handler = LogHandler(log)
    logger.addHandler(handler)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    try:
        logger.warning("Retrying after %s: /x?token=%s", "a reset", "tok3n-0123456789")
        logger.info("not shown: below WARNING")
        warnings.warn("deprecated tok3n-0123456789", DeprecationWarning, stacklevel=1)
    finally:
        logger.removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        logging.captureWarnings(False)
    text = out.getvalue()
    assert "       test.library: Retrying after a reset: /x?token=[REDACTED]\n" in text
    assert "not shown" not in text
    assert "DeprecationWarning: deprecated [REDACTED]" in text
    assert "tok3n" not in text


def test_errors_in_threads_and_finalizers_go_through_the_log_without_their_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from smtp_ca import cli

    out, err = io.StringIO(), io.StringIO()
    log = Log(out=out, err=err)

    def fail() -> None:
        raise RuntimeError("login apikey password hunter2-secret")

    class Leaky:
        def __del__(self) -> None:
            raise ValueError("hunter2-secret in a finalizer")

    with cli._everything_through(log):
        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
        leaky = Leaky()
        del leaky
    written = err.getvalue() + "".join(capsys.readouterr())
    assert "hunter2-secret" not in written
    assert "A background task failed (RuntimeError)" in err.getvalue()
    assert "Ignored an error while cleaning up (ValueError)" in err.getvalue()


def test_url_secrets_are_the_password_a_token_user_name_and_long_query_values() -> None:
    assert url_secrets("https://u:p%40ss@h/x?sig=0123456789ab&raw=1") == [
        "p%40ss",
        "p@ss",
        "0123456789ab",
    ]
    assert url_secrets("https://TOKEN-0123456789@h/") == ["TOKEN-0123456789"]
    assert url_secrets("https://user@h/") == []  # a short user name alone is not a secret
    assert url_secrets("https://[::1/x") == []


def test_a_redactor_taught_a_url_hides_its_token_wherever_it_appears() -> None:
    redactor = Redactor()
    redactor.add_url_secrets("https://TOKEN-0123456789@h.test/b.pem")
    assert (
        redactor("GET /b.pem?auth=TOKEN-0123456789 failed") == "GET /b.pem?auth=[REDACTED] failed"
    )


def test_a_megabyte_line_is_redacted_in_linear_time() -> None:
    """The URL-credential rule once scanned a run of letters from each of its starts: a
    megabyte line with no ``://`` took about twenty minutes. Run in a child with a generous
    timeout, so that a regression fails instead of hanging the suite."""
    child = (
        "import io, sys, time\n"
        "from smtp_ca.output import Log, Redactor\n"
        "texts = ['a' * 1_000_000, 'a1' * 500_000, ('scheme' * 12 + '://user') * 14_000,\n"
        "         'x://' + 'b' * 1_000_000, 'https://u:' + 'p' * 1_000_000 + '@h']\n"
        "log = Log(Redactor(['hunter2-password']), out=io.StringIO(), err=io.StringIO())\n"
        "started = time.process_time()\n"
        "for text in texts:\n"
        "    log.error(text + ' hunter2-password')\n"
        "print(time.process_time() - started)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # A few seconds of CPU at most where the quadratic search needed thousands.
    assert float(done.stdout) < 30, done.stdout
