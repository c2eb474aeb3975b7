"""Heroku-style output and redaction of secrets."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtp_ca.output import (
    ALERT_PREFIX,
    DETAIL_PREFIX,
    STEP_PREFIX,
    WIDTH,
    Log,
    Redactor,
    url_secrets,
    wrap,
)
from support.paths import SOURCE
from support.wrapped_log import LogBuffer, too_wide, unwrap

SRC = SOURCE


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

    out = LogBuffer()
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


# --- wrapping (smtp_ca.output's docstring) ----------------------------------------------------

# The hint of tests/golden/strict-check-fails.log, once a single 347-character line.
HINT = (
    "Ask the mail provider for its CA bundle (the one that holds smtp-ca Golden Stranger Root "
    "CA), point SMTP_CA_BUNDLE_URL at it and set SMTP_CA_BUNDLE_SHA256 (sha256sum FILE); or, "
    'for a private CA, put its certificate in SMTP_CA_CERTS (heroku config:set SMTP_CA_CERTS="'
    '$(cat ca.pem)"). Or ask the provider to send its intermediate certificate.'
)


def _logged(*messages: str, redactor: Redactor | None = None) -> tuple[str, str]:
    """What ``Log`` prints for each message as an error and as a detail: (stderr, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    log = Log(redactor, out=out, err=err)
    for message in messages:
        log.error(message)
        log.info(message)
    return err.getvalue(), out.getvalue()


def test_a_long_error_wraps_at_words_within_80_columns_under_its_prefix() -> None:
    err, out = _logged(HINT)
    assert err.splitlines() == [
        " !     Ask the mail provider for its CA bundle (the one that holds smtp-ca ",
        " !     Golden Stranger Root CA), point SMTP_CA_BUNDLE_URL at it and set ",
        " !     SMTP_CA_BUNDLE_SHA256 (sha256sum FILE); or, for a private CA, put its ",
        " !     certificate in SMTP_CA_CERTS (heroku config:set ",
        ' !     SMTP_CA_CERTS="$(cat ca.pem)"). Or ask the provider to send its ',
        " !     intermediate certificate.",
    ]
    assert all(line.startswith(DETAIL_PREFIX) for line in out.splitlines())
    for printed in (err, out):
        assert max(map(len, printed.splitlines())) <= WIDTH
        assert unwrap(printed).splitlines()[0].endswith(HINT)


def test_steps_warnings_and_short_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    log = Log(out=out, err=err)
    log.step("Checking " + "smtp.example.com:587 " * 5 + "(STARTTLS)")
    log.warn("short")
    log.info("x" * (WIDTH - len(DETAIL_PREFIX)))  # exactly 80 columns: not wrapped
    assert out.getvalue().splitlines() == [
        "-----> Checking smtp.example.com:587 smtp.example.com:587 smtp.example.com:587 ",
        # A step's title goes on under the detail indent, as Heroku's buildpacks wrap theirs.
        "       smtp.example.com:587 smtp.example.com:587 (STARTTLS)",
        DETAIL_PREFIX + "x" * (WIDTH - len(DETAIL_PREFIX)),
    ]
    assert err.getvalue() == " !     Warning: short\n"


def test_words_urls_and_paths_are_never_split() -> None:
    url = "https://smtp-ca.example/" + "very-long-path/" * 8 + "bundle.pem"
    path = "/tmp/build_0123abcd/" + "deep/" * 20 + "ca-bundle.pem"
    message = f"Could not download {url} (HTTP 500); the copy at {path} is kept as it is."
    err, _ = _logged(message)
    lines = err.splitlines()
    assert " !     Could not download " in lines
    assert f" !     {url} " in lines  # longer than a line: whole, on a line of its own
    assert f" !     {path} " in lines
    assert err.split() == [word for line in lines for word in [*line.split()]]
    assert [word for word in err.split() if word != "!"] == message.split()
    assert not too_wide(err)


def test_list_items_keep_their_indentation_on_continuation_lines() -> None:
    err, out = _logged(
        "  1. localhost, issued by smtp-ca Golden Stranger Root CA, valid until 2031-01-01 "
        "00:00:00 UTC, which is a long time from now",
        "    - a nested item of a list, long enough that it has to be wrapped once or twice",
    )
    assert err.splitlines() == [
        " !       1. localhost, issued by smtp-ca Golden Stranger Root CA, valid until ",
        " !          2031-01-01 00:00:00 UTC, which is a long time from now",
        " !         - a nested item of a list, long enough that it has to be wrapped ",
        " !           once or twice",
    ]
    assert (
        out.splitlines()[1]
        == DETAIL_PREFIX + "     2031-01-01 00:00:00 UTC, which is a long time from now"
    )


def test_verbatim_text_is_never_wrapped() -> None:
    out = io.StringIO()
    line = "MIIB" + "A" * 200
    Log(out=out).verbatim(f"-----BEGIN CERTIFICATE-----\n{line}\n-----END CERTIFICATE-----")
    assert out.getvalue().splitlines()[1] == line


def test_a_line_ends_in_a_space_exactly_where_it_was_wrapped() -> None:
    """The soft-break mark: the spaces of a break stay at the end of the line before it;
    every other line the log writes is stripped."""
    err, _ = _logged("word  " * 30 + "end  ", "trailing   ", "", "  ")
    lines = err.splitlines()
    assert lines[0] == " !     " + "word  " * 12
    assert [line.endswith(" ") for line in lines] == [True, True, False, False, False, False]
    assert unwrap(err).splitlines() == [
        " !     " + "word  " * 30 + "end",
        " !     trailing",
        " !",
        " !",
    ]


# A secret that would straddle column 80: a wrap done first would split it into halves that
# the redactor does not know (a password with spaces in it is broken at its spaces).
STRADDLING = "zebra quartz umbrella violin"
PADDING = "x" * (WIDTH - len(ALERT_PREFIX) - 10 - len("auth failed: "))


@pytest.mark.parametrize(
    "secret, message",
    [
        (STRADDLING, f"auth failed: {PADDING} {STRADDLING} for apikey"),
        ("hunter2-password-is-long", f"auth failed: {PADDING} hunter2-password-is-long!"),
        ("pass%20word%40x", f"auth failed: {PADDING[12:]} https://bob:pass%20word%40x@ca.test/b"),
    ],
)
def test_secrets_are_redacted_before_any_line_is_wrapped(secret: str, message: str) -> None:
    start = len(ALERT_PREFIX) + message.index(secret)
    assert start < WIDTH < start + len(secret)  # across the 80th column
    err, out = _logged(message, redactor=Redactor([secret, "apikey"]))
    for printed in (err, out):
        for piece in (*secret.split(), secret[:12], secret[-12:], "bob:"):
            assert piece not in printed, printed
        assert "[REDACTED]" in printed
        assert max(map(len, printed.splitlines())) <= WIDTH
    assert unwrap(err).splitlines() == [ALERT_PREFIX + Redactor([secret, "apikey"])(message)]


def test_a_url_credential_across_the_80th_column_is_redacted_without_knowing_it() -> None:
    """No secret configured: the URL rule alone finds the password, in the whole line, and the
    URL then moves whole to a line of its own."""
    message = "fetch failed: " + "y" * 38 + " https://deploy:s3cret-token@ca.test/b.pem"
    assert len(ALERT_PREFIX) + message.index("s3cret") < WIDTH < len(ALERT_PREFIX) + len(message)
    err, _ = _logged(message)
    assert "s3cret" not in err and "deploy" not in err
    assert " !     https://[REDACTED]@ca.test/b.pem\n" in err


# Text as a log line holds it: no line break, no trailing space (``Log`` strips lines).
_LINE = (
    st.lists(
        st.sampled_from([*"ab c  1.-*•!>\té", "-----> ", " !     ", "https://h/x", "  2. "]),
        max_size=120,
    )
    .map("".join)
    .map(str.rstrip)
)


@settings(max_examples=400, deadline=None)
@given(
    prefix=st.sampled_from([STEP_PREFIX, DETAIL_PREFIX, ALERT_PREFIX]),
    line=_LINE,
    width=st.integers(20, 100),
)
@example(prefix=ALERT_PREFIX, line="  1. " + "word " * 30 + "end", width=WIDTH)
@example(prefix=DETAIL_PREFIX, line="! ! " * 40 + "!", width=WIDTH)
@example(prefix=STEP_PREFIX, line="-----> " * 20 + "x", width=WIDTH)
def test_unwrap_is_the_inverse_of_wrap(prefix: str, line: str, width: int) -> None:
    continued = DETAIL_PREFIX if prefix == STEP_PREFIX else prefix  # as Log.step wraps
    wrapped = wrap(prefix, line, width, continued=continued)
    assert unwrap("\n".join(wrapped)) == prefix + line
    assert wrapped[0].startswith(prefix)
    assert all(physical.startswith(continued) for physical in wrapped[1:])
    assert not too_wide("\n".join(wrapped), width)
    # Only a prefix and spaces added: every word of the line whole, in order.
    assert [word for p in wrapped for word in p[len(prefix) :].split()] == line.split()
    assert len(prefix) == len(continued)  # so the slice above drops either


def test_unwrap_joins_nothing_but_wrapped_lines() -> None:
    log = (
        "-----> Checking\n       The server presented:\n         1. localhost\n"
        " !     Its SHA-256 is abc. To pin it:\n !     heroku config:set X=abc\n"
    )
    assert unwrap(log) == log
    err, out = _logged("a " * 60 + "b", "two\nlines")
    assert unwrap(err + out).splitlines() == [
        " !     " + "a " * 60 + "b",
        " !     two",
        " !     lines",
        "       " + "a " * 60 + "b",
        "       two",
        "       lines",
    ]


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


def test_a_heroku_command_and_its_argument_stay_on_one_line() -> None:
    for command in (
        "heroku config:set SMTP_CA_BUNDLE_SHA256=" + "ab" * 32,
        "heroku config:unset X",
    ):
        for lead in range(30, 80):
            line = "y" * (lead - len(ALERT_PREFIX)) + " then " + command + " and build again."
            lines = wrap(ALERT_PREFIX, line)
            assert any(command in physical for physical in lines), lines
            assert unwrap("\n".join(lines)) == ALERT_PREFIX + line
            assert not too_wide("\n".join(lines))


def test_a_quoted_shell_argument_is_never_broken() -> None:
    command = 'heroku config:set SMTP_CA_CERTS="$(cat ca.pem)"'
    for lead in range(40, 80):
        lines = wrap(ALERT_PREFIX, "x" * (lead - len(ALERT_PREFIX)) + " " + command)
        assert any('"$(cat ca.pem)"' in line for line in lines), lines
        assert (
            unwrap("\n".join(lines))
            == ALERT_PREFIX + "x" * (lead - len(ALERT_PREFIX)) + " " + command
        )
    # An unclosed quote is only a character: nothing is lost, and lines still break.
    lone = 'say "' + "word " * 30 + "end"
    assert unwrap("\n".join(wrap(ALERT_PREFIX, lone))) == ALERT_PREFIX + lone
    assert len(wrap(ALERT_PREFIX, lone)) > 1
