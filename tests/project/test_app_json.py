"""app.json: the shapes Heroku's app.json schema requires, and agreement with the config var table.

docs/configuration.md's table is the one list of config vars: the list users are told about,
and the source the others are checked against. app.json must offer exactly those, every
variable name the code in src/ reads (whichever module reads it) and the runtime files use must
be in the table, and nothing is in the table that nothing reads. The table must also state the
defaults and accepted values that settings enforces, and app.json's values for the buildpack's
own variables must be those defaults.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from smtp_ca.errors import BuildError
from smtp_ca.settings import ca as ca_settings
from smtp_ca.settings import load as settings_module
from smtp_ca.settings import smtp as smtp_settings
from smtp_ca.settings import values as config_values
from smtp_ca.settings.load import load_settings
from support.paths import REPO

ROOT = REPO
APP_JSON = ROOT / "app.json"
CONFIGURATION = ROOT / "docs" / "configuration.md"
SRC = ROOT / "src" / "smtp_ca"
TEMPLATES = ROOT / "templates"

BUILDPACK_NAME = "heroku-buildpack-smtp-ca"
VARIABLE_NAME = re.compile(r"(?:BULK_)?SMTP_[A-Z0-9_]+")
TABLE_ROW = re.compile(r"^\|\s*`(?P<name>[A-Z0-9_]+)`\s*\|(?P<rest>.*)\|\s*$")
# Never registry hosts here: the placeholder form only.
PLACEHOLDER = "<you>"


def _app() -> dict[str, Any]:
    data = json.loads(APP_JSON.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "app.json must be a JSON object"
    return data


def _configuration_section(title: str) -> str:
    text = CONFIGURATION.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\s*$(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/configuration.md has no '## {title}' section"
    return match.group("body")


def config_var_table() -> dict[str, str]:
    """The config var table: variable name -> the rest of its row."""
    rows: dict[str, str] = {}
    for line in _configuration_section("Config vars").splitlines():
        match = TABLE_ROW.match(line.strip())
        if match:
            name = match.group("name")
            assert name not in rows, f"{name} appears twice in the config var table"
            rows[name] = match.group("rest")
    assert rows, "docs/configuration.md's Config vars section has no table rows"
    return rows


#: Environment variables that src/ reads but that are not config vars of a build: bin/check's
#: own and the build process's, described in docs/configuration.md's "bin/check's environment"
#: and "The build's environment".
NOT_CONFIG_VARS = {"SMTP_CA_CACHE_DIR", "SMTP_CA_CACHE_LOCK_WAIT"}


def src_variable_names() -> set[str]:
    """String literals anywhere in src/smtp_ca that are whole variable names (SMTP_*,
    BULK_SMTP_*): what the code reads, however its modules are split."""
    names: set[str] = set()
    for module in SRC.rglob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        names.update(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and VARIABLE_NAME.fullmatch(node.value)
        )
    return names - NOT_CONFIG_VARS


def template_variable_names() -> set[str]:
    """Variables the runtime files read or set (shell ${VAR} and Ruby ENV["VAR"])."""
    names: set[str] = set()
    for template in [*TEMPLATES.glob("*.j2"), *TEMPLATES.glob("*.rb")]:
        text = template.read_text(encoding="utf-8")
        names.update(re.findall(r"\$\{?((?:BULK_)?SMTP_[A-Z0-9_]+)", text))
        names.update(re.findall(r"ENV\[[\"']((?:BULK_)?SMTP_[A-Z0-9_]+)[\"']\]", text))
    return names


# --- app.json shapes ----------------------------------------------------------------------


def test_app_json_has_the_required_top_level_shapes() -> None:
    app = _app()
    assert isinstance(app.get("name"), str) and app["name"].strip()
    assert len(app["name"]) <= 30, "Heroku limits an app.json name to 30 characters"
    assert isinstance(app.get("description"), str) and app["description"].strip()
    assert isinstance(app.get("repository"), str)
    assert BUILDPACK_NAME in app["repository"]
    keywords = app.get("keywords", [])
    assert isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)


def test_buildpacks_put_this_one_first_then_ruby() -> None:
    buildpacks = _app()["buildpacks"]
    assert isinstance(buildpacks, list) and buildpacks
    for buildpack in buildpacks:
        assert isinstance(buildpack, dict), "each buildpack must be an object"
        assert isinstance(buildpack.get("url"), str) and buildpack["url"]
    urls = [b["url"] for b in buildpacks]
    assert BUILDPACK_NAME in urls[0], f"this buildpack must come first, got {urls}"
    assert "heroku/ruby" in urls
    assert urls.index("heroku/ruby") > 0


def test_urls_are_marked_placeholders() -> None:
    """No invented address for this project: every URL naming it carries the placeholder."""
    app = _app()
    urls = [app["repository"], *(b["url"] for b in app["buildpacks"])]
    for url in urls:
        if BUILDPACK_NAME in url:
            assert PLACEHOLDER in url, f"{url} must be a marked placeholder"


def test_env_entries_are_objects_with_a_description() -> None:
    env = _app()["env"]
    assert isinstance(env, dict) and env
    for name, entry in env.items():
        assert isinstance(entry, dict), f"env {name} must be an object"
        assert isinstance(entry.get("description"), str), f"env {name} needs a description"
        assert entry["description"].strip(), f"env {name} has an empty description"
        if "value" in entry:
            assert isinstance(entry["value"], str), f"env {name}: value must be a string"
        if "required" in entry:
            assert isinstance(entry["required"], bool), f"env {name}: required is a boolean"
        if "generator" in entry:
            assert entry["generator"] == "secret", f"env {name}: the only generator is secret"


@pytest.mark.parametrize("name", ["SMTP_PASSWORD", "BULK_SMTP_PASSWORD"])
def test_passwords_have_no_value_and_are_optional(name: str) -> None:
    entry = _app()["env"][name]
    assert "value" not in entry
    assert entry.get("required") is False


@pytest.mark.parametrize("name", ["SMTP_CA_FILE", "BULK_SMTP_CA_FILE"])
def test_ca_file_variables_are_left_unset(name: str) -> None:
    """A value here would win over the bundle the buildpack wires in."""
    entry = _app()["env"][name]
    assert "value" not in entry
    assert entry.get("required") is False


def test_optional_entries_without_a_value_say_so() -> None:
    """Heroku treats a variable as required unless told otherwise."""
    for name, entry in _app()["env"].items():
        if "value" not in entry:
            assert entry.get("required") is False, f"env {name} has no value: required false"


def test_test_environment_turns_the_check_off() -> None:
    environments = _app()["environments"]
    test = environments["test"]
    assert isinstance(test, dict)
    env = test.get("env", {})
    assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
    assert env.get("SMTP_CA_CHECK") == "off"
    scripts = test.get("scripts", {})
    assert isinstance(scripts, dict) and all(isinstance(v, str) for v in scripts.values())


def _config(env: dict[str, Any]) -> dict[str, str]:
    return {name: entry["value"] for name, entry in env.items() if "value" in entry}


def test_example_values_pass_the_buildpacks_own_validation() -> None:
    app = _app()
    variables = _config(app["env"])
    settings = load_settings(variables, "heroku-24")
    assert settings.notices == (), "the example must not trigger warnings"
    assert settings.config_notices == (), "the example must not trigger warnings"
    assert settings.verify_mode == "peer"
    test_variables = {**variables, **app["environments"]["test"].get("env", {})}
    assert load_settings(test_variables, "heroku-24").check_mode == "off"


def test_validation_does_reject_a_bad_example_value() -> None:
    """Guards the test above: load_settings is really validating what it gets."""
    variables = {**_config(_app()["env"]), "SMTP_CA_CHECK": "sometimes"}
    with pytest.raises(BuildError):
        load_settings(variables, "heroku-24")


# --- app.json against the config var table ------------------------------------------------


def test_every_documented_variable_is_in_app_json() -> None:
    missing = sorted(set(config_var_table()) - set(_app()["env"]))
    assert not missing, f"in the config var table but not in app.json env: {missing}"


def test_every_smtp_variable_in_app_json_is_documented() -> None:
    smtp_keys = {name for name in _app()["env"] if VARIABLE_NAME.fullmatch(name)}
    missing = sorted(smtp_keys - set(config_var_table()))
    assert not missing, f"in app.json env but not in the config var table: {missing}"


def test_the_table_only_lists_smtp_variables() -> None:
    odd = sorted(name for name in config_var_table() if not VARIABLE_NAME.fullmatch(name))
    assert not odd, f"config var table rows that are not SMTP variables: {odd}"


def test_every_variable_src_reads_is_documented() -> None:
    names = src_variable_names()
    # Sanity: the scan finds what the settings are known to read.
    assert {"SMTP_CA_CHECK", "SMTP_SERVER", "SMTP_PASSWORD", "SMTP_CA_FILE"} <= names
    missing = sorted(names - set(config_var_table()))
    assert not missing, f"src/ reads these, the config var table lacks them: {missing}"


def test_every_variable_the_runtime_files_use_is_documented() -> None:
    names = template_variable_names()
    assert "SMTP_CA_FILE" in names
    missing = sorted(names - set(config_var_table()))
    assert not missing, f"templates/ use these, the config var table lacks them: {missing}"


def test_every_documented_variable_is_read_by_the_code_or_the_runtime_files() -> None:
    unread = sorted(set(config_var_table()) - src_variable_names() - template_variable_names())
    assert not unread, f"documented, but neither src/ nor templates/ use them: {unread}"


def test_variables_that_are_not_config_vars_are_documented_too() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    for name in NOT_CONFIG_VARS:
        assert f"`{name}`" in text, f"docs/configuration.md must describe {name}"


#: Config vars of the buildpack's own (not Mastodon's, whose app.json values are examples).
def _buildpack_variables() -> list[str]:
    return [n for n in config_var_table() if n.startswith("SMTP_CA_") and n != "SMTP_CA_FILE"]


def test_app_json_gives_the_buildpacks_own_variables_their_documented_defaults() -> None:
    env = _app()["env"]
    with_values = [name for name in _buildpack_variables() if "value" in env[name]]
    assert with_values, "app.json gives none of the buildpack's variables a value"
    for name in with_values:
        default = _row(name).split("|")[0].strip()
        assert default == _quoted(env[name]["value"]), (
            f"app.json gives {name}={env[name]['value']!r}, the table's default is {default}"
        )


# --- the config var table against settings ------------------------------------------------


def _row(name: str) -> str:
    return config_var_table()[name]


def _quoted(value: str) -> str:
    return f"`{value}`"


def test_the_table_states_the_bundle_defaults() -> None:
    assert _quoted(ca_settings.DEFAULT_BUNDLE_URL) in _row("SMTP_CA_BUNDLE_URL")
    assert _quoted(ca_settings.DEFAULT_BUNDLE_SHA256) in _row("SMTP_CA_BUNDLE_SHA256")


def test_the_table_states_check_modes_and_default() -> None:
    row = _row("SMTP_CA_CHECK")
    for mode in settings_module.CHECK_MODES:
        assert _quoted(mode) in row
    assert load_settings({}, "heroku-24").check_mode == "warn"
    assert row.split("|")[0].strip() == "`warn`"


def test_the_table_states_the_timeout_default_and_bound() -> None:
    row = _row("SMTP_CA_CHECK_TIMEOUT")
    assert row.split("|")[0].strip() == _quoted(f"{settings_module.DEFAULT_CHECK_TIMEOUT:g}")
    assert _quoted(f"{settings_module.MAX_CHECK_TIMEOUT:g}") in row


def test_the_table_states_the_public_roots_default() -> None:
    assert load_settings({}, "heroku-24").public_roots is True
    assert _row("SMTP_CA_PUBLIC_ROOTS").split("|")[0].strip() == "`true`"


def test_the_table_states_the_port_default() -> None:
    default = _quoted(str(smtp_settings.DEFAULT_SMTP_PORT))
    assert _row("SMTP_PORT").split("|")[0].strip().startswith(default)


def test_the_table_states_the_verify_modes() -> None:
    row = _row("SMTP_OPENSSL_VERIFY_MODE")
    for mode in smtp_settings.VERIFY_MODES:
        assert _quoted(mode) in row


def test_the_table_states_the_starttls_modes() -> None:
    row = _row("SMTP_ENABLE_STARTTLS")
    for mode in smtp_settings.STARTTLS_MODES:
        assert _quoted(mode) in row


def test_the_table_says_secrets_are_redacted() -> None:
    mastodon = [n for n in config_values.SECRET_VARIABLES if VARIABLE_NAME.fullmatch(n)]
    assert mastodon
    for name in mastodon:
        assert "redacted" in _row(name).lower(), f"the table must say {name} is redacted"


def test_the_mail_add_ons_variables_are_documented_where_the_build_finds_the_server() -> None:
    """The add-ons' variables are not in the table (they are the add-ons', not the
    buildpack's); the section that says where the build finds the server names every one the
    build reads, and says that their secrets are redacted."""
    section = _configuration_section("Where the build finds the server")
    addon_variables = set(config_values.ADDON_SERVER_VARIABLES) | set(
        config_values.ADDON_SECRET_VARIABLES
    )
    assert addon_variables <= set(config_values.VARIABLES)
    for name in sorted(addon_variables):
        assert f"`{name}`" in section, f"docs/configuration.md must name {name} there"
    assert "redacted" in section
    # And nothing else the build does not read is named as an add-on's variable there.
    named = set(re.findall(r"`((?:MAILGUN|SENDGRID|SPARKPOST|MANDRILL|CLOUDMAILIN)_\w+)`", section))
    assert named <= addon_variables, sorted(named - addon_variables)


def test_the_table_states_the_fetch_timeout_default_and_bound() -> None:
    row = _row("SMTP_CA_FETCH_TIMEOUT")
    assert row.split("|")[0].strip() == _quoted(f"{settings_module.DEFAULT_FETCH_TIMEOUT:g}")
    assert _quoted(f"{settings_module.MAX_FETCH_TIMEOUT:g}") in row
    assert load_settings({}, "heroku-24").fetch_timeout == settings_module.DEFAULT_FETCH_TIMEOUT


def test_the_table_states_that_the_bundle_url_may_be_none() -> None:
    assert _quoted(ca_settings.NO_BUNDLE_URL) in _row("SMTP_CA_BUNDLE_URL")
    assert load_settings({"SMTP_CA_BUNDLE_URL": "none"}, "heroku-24").bundle_url is None
