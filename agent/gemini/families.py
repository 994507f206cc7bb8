"""What each Gemini Live model family accepts, and how its tools behave by default.

Google's Live API docs (reference/gemini-live-protocol.md) list differences that would
otherwise surface as a refused setup mid-call or, worse, as silently changed behaviour:
on `gemini-3.8-live` tools are NON_BLOCKING unless declared otherwise, proactive audio is
always on (sending false is an error), affective dialog is gone and `thinkingConfig` is
refused; the extended-thinking variant signals idle through `interaction_status`.
Settings are checked against the family at start (one line per problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Behavior = Literal["blocking", "non_blocking"]


@dataclass(frozen=True)
class ModelFamily:
    name: str
    default_tool_behavior: Behavior
    proactive_audio_always_on: bool
    affective_dialog: bool
    thinking_config: bool
    idle_signal: Literal["turn_complete", "interaction_status"] = "turn_complete"


NATIVE_AUDIO_25 = ModelFamily(
    name="2.5",
    default_tool_behavior="blocking",
    proactive_audio_always_on=False,
    affective_dialog=True,
    thinking_config=True,
)
LIVE_38 = ModelFamily(
    name="3.8",
    default_tool_behavior="non_blocking",
    proactive_audio_always_on=True,
    affective_dialog=False,
    thinking_config=False,
)
LIVE_38_EXTENDED = ModelFamily(
    name="3.8-extended-thinking",
    default_tool_behavior="non_blocking",
    proactive_audio_always_on=True,
    affective_dialog=False,
    thinking_config=True,
    idle_signal="interaction_status",
)


def family_of(model: str) -> ModelFamily:
    name = model.removeprefix("models/")
    if "3.8" in name:
        return LIVE_38_EXTENDED if "extended-thinking" in name else LIVE_38
    return NATIVE_AUDIO_25


def problems(
    model: str,
    *,
    affective_dialog: bool | None,
    proactive_audio: bool | None,
    thinking_budget: int | None,
) -> list[str]:
    """Settings that the model would refuse, each as one line naming the setting."""
    fam = family_of(model)
    out = []
    if affective_dialog and not fam.affective_dialog:
        out.append(f"KAIWA_AFFECTIVE_DIALOG does not apply to {model} (removed in 3.8); unset it")
    if proactive_audio is False and fam.proactive_audio_always_on:
        out.append(
            f"KAIWA_PROACTIVE_AUDIO=false is refused by {model} (always on in 3.8); unset it"
        )
    if thinking_budget is not None and not fam.thinking_config:
        out.append(
            f"KAIWA_THINKING_BUDGET is refused by {model}; unset it or use "
            "gemini-3.8-live-extended-thinking"
        )
    return out


def declared_behavior(policy_behavior: Behavior | None) -> Behavior:
    """Every kaiwa tool is declared explicitly: blocking unless its policy says otherwise.

    Relying on the family's default would make every tool non-blocking on 3.8, so the
    model could announce a case number before the case exists.
    """
    return policy_behavior or "blocking"
