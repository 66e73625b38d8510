"""The service's settings (fast tier): a bad value names its variable, and README's table
documents every variable there is."""

import re

import pytest

from app.core.config import ConfigError, Settings, load_settings
from tests.support.service import ROOT

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_BATCH", "0"),
        ("PORT", "70000"),
        ("RUNTIME", "gpu"),
        ("RATE_LIMIT", "fast"),
        ("RELOAD_INTERVAL_S", "soon"),
        ("FILTER_RULE", "lenient"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert f"{variable}={value!r}" in str(refused.value)


def test_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " a, b ,,c")
    monkeypatch.setenv("ADMIN_TOKEN", "")
    monkeypatch.setenv("MAX_FILES", "3")
    settings = load_settings()
    assert settings.api_keys == ("a", "b", "c")
    assert settings.admin_token is None  # empty is unset
    assert settings.max_files == 3


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    variables = {name.upper() for name in Settings.model_fields}
    assert variables - documented == set(), "README's settings table lacks these"
    assert documented - variables == set(), "README documents settings that do not exist"
