"""Reading the tool responses the Gemini fake received from kaiwa."""

from __future__ import annotations

import ast
import json
from typing import Any


def tool_output(response: dict[str, Any]) -> Any:
    """A successful tool response's output, decoded (the plugin sends str(output))."""
    assert "output" in response, response
    out = response["output"]
    if isinstance(out, str):
        for decode in (json.loads, ast.literal_eval):
            try:
                return decode(out)
            except (ValueError, SyntaxError):
                continue
    return out
