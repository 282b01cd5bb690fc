"""The command service's settings: read from the environment, refused loudly when absurd."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from command_service.settings import CommandSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CommandSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = CommandSettings()
    assert (settings.command_host, settings.command_port) == ("127.0.0.1", 8000)
    assert settings.order_ack_timeout_ms == 5000
    assert settings.cors_allow_origins == ("http://127.0.0.1:8001", "http://localhost:8001")


def test_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://shop.example, http://localhost:3000,")
    assert CommandSettings().cors_allow_origins == (
        "https://shop.example",
        "http://localhost:3000",
    )


@pytest.mark.parametrize("value", ["99", "120001", "soon"])
def test_ack_timeout_is_bounded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ORDER_ACK_TIMEOUT_MS", value)
    with pytest.raises(ValidationError, match="order_ack_timeout_ms"):
        CommandSettings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        CommandSettings().command_port = 1  # type: ignore[misc]


def test_a_bad_setting_stops_start_up_naming_the_variable() -> None:
    env = {**os.environ, "ORDER_ACK_TIMEOUT_MS": "5", "COMMAND_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "command_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "ORDER_ACK_TIMEOUT_MS" in result.stderr
    assert "COMMAND_PORT" in result.stderr
