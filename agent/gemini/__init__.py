"""The Gemini layer: the only place that knows the plugin's private names.

`session.py` holds short overrides of the plugin's realtime session; each delegates to a
plain class here (reply clock, tool ledger, reconnect budget, GoAway plan, speech gate,
close codes, model families) that knows nothing of the plugin. `private.py` lists every
private name used and checks them at worker start.
"""

from .model import build_realtime_model
from .session import CallHooks, KaiwaRealtimeModel, KaiwaRealtimeSession, ToolPolicyView

__all__ = [
    "CallHooks",
    "KaiwaRealtimeModel",
    "KaiwaRealtimeSession",
    "ToolPolicyView",
    "build_realtime_model",
]
