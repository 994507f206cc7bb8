"""Every token-server setting is documented in token_server/ENV.md and .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from token_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_names() -> list[str]:
    names = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names.append(str(alias.choices[0]))
    return names


@pytest.mark.parametrize("name", _env_names())
def test_setting_is_documented(name: str) -> None:
    assert f"| `{name}` |" in (ROOT / "token_server" / "ENV.md").read_text()
    assert f"\n{name}=" in (ROOT / ".env.example").read_text()
