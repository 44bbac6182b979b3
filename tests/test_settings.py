from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_size


def test_env_helpers_parse_good_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "off")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_SIZE", "500MB")
    assert env_bool("X_BOOL", True) is False
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST") == ["a", "b", "c"]
    assert env_size("X_SIZE", 1) == 500 * 1024**2
    assert env_size("X_UNSET", 7) == 7


@pytest.mark.parametrize("reader,value", [(lambda: env_bool("X", True), "maybe"),
                                          (lambda: env_int("X", 1), "ten"),
                                          (lambda: env_int("X", 1, minimum=1), "0"),
                                          (lambda: env_size("X", 1), "2 parsecs"),
                                          (lambda: env_size("X", 1), "0")])
def test_malformed_values_stop_start_up_naming_the_variable(monkeypatch, reader, value):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="^X "):
        reader()


def test_production_refuses_to_start_without_secret_key(tmp_path):
    import subprocess
    import sys
    env = {"DEBUG": "false", "ALLOWED_HOSTS": "x", "MODELGATE_VAR_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import django, os; "
                             "os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
                             "django.setup()"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
