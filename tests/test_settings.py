"""Settings: one file, SYNCD_* overrides, secrets only from the environment or a file."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from syncd.errors import ConfigError
from syncd.settings import load_settings


def write(tmp_path, text):
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    return path


def test_the_environment_overrides_the_file_setting_by_setting(tmp_path):
    path = write(tmp_path, "ldap:\n  urls: [ldap://file:389]\n  page_size: 50\njobs:\n  apply_seconds: 9\n")
    s = load_settings(path, {"SYNCD_LDAP__URLS": '["ldap://env:389"]', "SYNCD_JOBS__APPLY_SECONDS": "2"})
    assert s.ldap.urls == ["ldap://env:389"]
    assert s.ldap.page_size == 50
    assert s.jobs.apply_seconds == 2


def test_the_config_file_may_come_from_syncd_config(tmp_path):
    path = write(tmp_path, "jobs:\n  tacit_seconds: 7\n")
    assert load_settings(None, {"SYNCD_CONFIG": str(path)}).jobs.tacit_seconds == 7


def test_a_secret_written_in_the_config_file_is_refused_with_the_variable_to_use(tmp_path):
    path = write(tmp_path, "ldap:\n  bind_password: hunter2\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path, {})
    assert "SYNCD_LDAP__BIND_PASSWORD" in e.value.problems[0]
    assert "hunter2" not in str(e.value)


def test_a_secret_is_read_from_the_environment_or_from_a_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert load_settings(None, {"SYNCD_LDAP__BIND_PASSWORD": "a"}).ldap.bind_password.get_secret_value() == "a"
    from_file = load_settings(None, {"SYNCD_LDAP__BIND_PASSWORD_FILE": str(secret)})
    assert from_file.ldap.bind_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(from_file)


def test_an_unreadable_secret_file_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(None, {"SYNCD_SMTP__PASSWORD_FILE": str(tmp_path / "missing")})
    assert "SYNCD_SMTP__PASSWORD_FILE" in e.value.problems[0]


def test_unknown_keys_and_wrong_types_are_each_reported_with_their_path(tmp_path):
    path = write(tmp_path, "ldap:\n  page_sise: 10\njobs:\n  apply_seconds: soon\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path, {})
    text = "\n".join(e.value.problems)
    assert "ldap.page_sise" in text and "jobs.apply_seconds" in text


def test_each_problem_in_the_file_names_its_line_and_an_unknown_setting_its_closest_name(tmp_path):
    path = write(tmp_path, "ldap:\n  page_sise: 10\njobs:\n  apply_seconds: soon\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path, {})
    assert f"{path}:2: setting ldap.page_sise: unknown setting (did you mean 'page_size'?)" in e.value.problems
    assert any(p.startswith(f"{path}:4: setting jobs.apply_seconds: ") for p in e.value.problems)


def test_a_bad_value_from_the_environment_is_blamed_on_its_variable_not_on_the_file(tmp_path):
    path = write(tmp_path, "jobs:\n  apply_seconds: 5\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path, {"SYNCD_JOBS__APPLY_SECONDS": "soon"})
    [problem] = e.value.problems
    assert problem.startswith("environment variable SYNCD_JOBS__APPLY_SECONDS: setting jobs.apply_seconds: ")


def test_a_relative_sqlite_path_resolves_against_the_config_folder(tmp_path):
    path = write(tmp_path, "database:\n  url: sqlite:///data/syncd.db\n")
    assert load_settings(path, {}).database_url == f"sqlite:///{tmp_path}/data/syncd.db"


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["SYNCD_LDAP__PAGE_SIZE", "SYNCD_JOBS__APPLY_SECONDS", "SYNCD_LDAP__URLS",
                                        "SYNCD_LOG__LEVEL", "SYNCD_DATABASE__LEASE_SECONDS", "SYNCD_NOPE"]),
                       st.text(max_size=30)))
def test_any_environment_either_loads_or_is_a_config_error_never_a_crash(env):
    try:
        load_settings(None, env)
    except ConfigError as e:
        assert e.problems
