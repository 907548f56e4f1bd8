"""More promises kept (#35): settings checked once, choices listed, the right extra named,
refusals that leave nothing behind, boxes inside their photo."""

from __future__ import annotations

import pytest
from test_trust import bearid, refused

from bearid.errors import BearIDError
from bearid.settings import Settings

# -- settings: every variable typed and checked once -----------------------------------------


@pytest.mark.parametrize(
    "name, value, why",
    [
        ("BEARID_WORKERS", "abc", "is not a whole number"),
        ("BEARID_WORKERS", "0", "greater than or equal to 1"),
        ("BEARID_WATCH_SECONDS", "nan", "finite"),
        ("BEARID_DEVICE", "gpu", "auto, cpu or cuda"),
        ("BEARID_MAX_UPLOAD_MB", "-1", "greater than or equal to 1"),
    ],
)
def test_a_bad_setting_is_one_error_naming_the_variable_and_the_value(monkeypatch, name, value, why):
    monkeypatch.setenv(name, value)
    with pytest.raises(BearIDError, match=f"{name}='{value}'") as caught:
        Settings.from_env()
    assert why in str(caught.value)


def test_settings_come_from_the_process_environment(monkeypatch):
    monkeypatch.setenv("BEARID_WORKERS", "3")
    monkeypatch.setenv("BEARID_STORE", "")  # empty: unset
    s = Settings.from_env()
    assert s.workers == 3 and s.store is None
    assert Settings.from_env({"BEARID_WORKERS": "5"}).workers == 5  # a given mapping, not the process's


def test_the_cli_refuses_a_bad_setting_before_any_verb():
    refused(bearid("validate", "nothing.xml", env={"BEARID_WORKERS": "abc"}), "BEARID_WORKERS", "'abc'")
