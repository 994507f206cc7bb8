"""How the model should learn what is on the staff's screen: three ways, measured.

    .venv/bin/python -m bench.screen_context            # 30 reps each, writes bench/results/
    .venv/bin/python -m bench.screen_context --reps 3 --out /tmp/x   # quick look

Each way runs in its own worker over a real livekit-server, with the Gemini Live fake as
the model and a `livekit.rtc` participant as the page. The page declares one UI action
(so the worker offers the page tools) and then, per repetition, changes its screen once
(RPC `kaiwa.ui.context`, the same payload shape the console sends) and refers to it once:

  tool          kaiwa as shipped: the context is kept by the worker; the model calls
                `get_screen` when it needs it. Change: nothing reaches the model.
                Reference: one tool round trip (the fake's toolCall → its toolResponse).
  instructions  every change goes out at once as `Agent.update_instructions(base + screen)`
                (bench/bench_worker.py, BENCH_SCREEN_PUSH=instructions). On the Gemini API
                the plugin sends the whole new instruction text as a model-role
                client-content turn: the context keeps every version.
  turn          every change goes out at once as a user client-content turn holding the
                screen (`Agent.update_chat_ctx`, BENCH_SCREEN_PUSH=turn).

Measured per change and per reference: kaiwa + LiveKit time (page's RPC sent → the fake
has the context; toolCall sent → toolResponse received) and the bytes of text that enter
the model's context. Tokens are estimated at 4 bytes per token (the fake's rule; Gemini's
tokenizer is not available offline, and ids/JSON tokenise denser than prose). What cannot
be measured here: the real model's time for the extra generation step a tool call costs,
and how well it uses a context it was given without being asked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.assistant import DEFAULT_INSTRUCTIONS
from bench.common import RESULTS, Stack, fmt, new_caller, provenance, summary, write_json
from tests.fakes.gemini_live import GeminiLiveFake
from tests.fakes.gemini_live.records import ClientContentRecord, SetupInfo
from tests.support.responses import tool_output

log = logging.getLogger("bench.screen_context")
WAYS = ("tool", "instructions", "turn")
BYTES_PER_TOKEN = 4
DECLARATION = {
    "v": 1,
    "actions": [
        {
            "name": "filter",
            "description": "Filter the case queue by status.",
            "parameters": {"type": "object", "properties": {"status": {"type": "string"}}},
        }
    ],
}


def screen(seq: int) -> dict[str, Any]:
    """A console screen (web/src/console/main.ts screenContext): queue and case views."""
    ids = [f"R-{1001 + (seq * 7 + i) % 60}" for i in range(40)]
    ctx: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "view": "queue" if seq % 2 else "case",
        "filters": {"status": "quoted" if seq % 3 else "all", "device": "all", "text": ""},
        "sort": {"by": "updated", "direction": "desc"},
        "visible": ids,
        "total": 60,
        "cursor": ids[seq % 40],
        "selected": None if seq % 2 else ids[2],
        "form": None,
        "focus": None,
    }
    if not seq % 2:
        ctx["form"] = {"name": "note", "case_id": ids[2], "fields": {"note": ""}, "dirty": []}
        ctx["selected_summary"] = {
            "id": ids[2],
            "customer": "山田 花子",
            "status": "quoted",
            "device": "hdd",
        }
    return ctx


def cc_bytes(rec: ClientContentRecord) -> int:
    return sum(len(text.encode()) for _, text in rec.parts)


@dataclass
class Way:
    label: str
    env: dict[str, str]
    change_s: list[float] = field(default_factory=list)
    change_bytes: list[int] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)
    reference_bytes: list[int] = field(default_factory=list)
    stale: int = 0  # references that did not see the latest screen
    errors: list[str] = field(default_factory=list)


async def measure(way: Way, fake: GeminiLiveFake, lk_url: str, agent_name: str, reps: int) -> None:
    c = new_caller(lk_url, agent_name, prefix="screen")
    await c.join()
    conv = await fake.next_conversation(timeout=30)
    await c.wait_loud(c.join_started, timeout=30)  # the greeting
    conv.auto = False
    agent = await c.wait_for_agent()
    await c.room.local_participant.perform_rpc(
        destination_identity=agent.identity,
        method="kaiwa.ui.declare",
        payload=json.dumps(DECLARATION),
    )
    # the worker applies the tools at a quiet moment: Gemini restarts with them
    await conv.fake.wait_until(
        lambda: "get_screen" in SetupInfo(conv.setups[-1]).tool_names or None,
        timeout=20,
        what="the page tools in the setup",
    )
    await conv.wait_for_connection(count=len(conv.setups), timeout=10)
    try:
        for seq in range(1, reps + 1):
            payload = json.dumps(screen(seq), ensure_ascii=False)
            marker = f'"seq":{seq},'
            sent = time.monotonic()
            await c.room.local_participant.perform_rpc(
                destination_identity=agent.identity, method="kaiwa.ui.context", payload=payload
            )
            if way.label != "tool":
                rec = await conv.wait_for_client_content(
                    lambda r, m=marker: any(m in t for _, t in r.parts), timeout=10
                )
                way.change_s.append(rec.at - sent)
                way.change_bytes.append(cc_bytes(rec))
                continue
            way.change_s.append(0.0)
            way.change_bytes.append(0)
            call_id = await conv.send_tool_call("get_screen", {}, timeout=5)
            resp = await conv.wait_for_tool_response(call_id, timeout=10)
            rec = conv.tool_calls[call_id]
            assert rec.response_at is not None
            way.reference_s.append(rec.response_at - rec.sent_at)
            body = json.dumps(resp, ensure_ascii=False, separators=(",", ":"))
            way.reference_bytes.append(len(body.encode()))
            if tool_output(resp).get("seq") != seq:  # it must report the latest screen
                way.stale += 1
            await conv.speak(text="ok", seconds=0.1, barge_in=False)
    finally:
        await c.leave()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ways = [Way(w, {} if w == "tool" else {"BENCH_SCREEN_PUSH": w}) for w in args.ways]
    stacks: list[Stack] = []
    async with GeminiLiveFake() as fake:
        fake.script.greeting_seconds = 0.5
        try:
            for i, way in enumerate(ways):
                st = Stack(Path(tempfile.mkdtemp(prefix="kaiwa-bench-")))
                stacks.append(st)
                lk_url = (await st.start_livekit()).url
                name = f"kaiwa-screen-{i}-{way.label}"
                # the product's own instructions: their size is what `instructions` re-sends
                env = {**way.env, "KAIWA_INSTRUCTIONS": DEFAULT_INSTRUCTIONS}
                await st.start_worker(name, fake.env(), env)
                try:
                    await asyncio.wait_for(measure(way, fake, lk_url, name, args.reps), 600)
                except Exception as e:  # reported in the table, not fatal for the others
                    way.errors.append(f"{type(e).__name__}: {e}"[:300])
                    log.warning("%s failed: %s", way.label, e)
                await st.stop()
        finally:
            for st in stacks:
                await st.stop()
    base = len(DEFAULT_INSTRUCTIONS.encode())
    return {
        **provenance(" ".join(["python -m bench.screen_context", *sys.argv[1:]])),
        "reps": args.reps,
        "instructions_bytes": base,
        "screen_bytes_p50": sorted(len(json.dumps(screen(s)).encode()) for s in range(1, 21))[10],
        "ways": [
            {
                "label": w.label,
                "change_ms": summary(w.change_s),
                "change_bytes_mean": round(sum(w.change_bytes) / max(1, len(w.change_bytes))),
                "reference_ms": summary(w.reference_s),
                "reference_bytes_mean": round(
                    sum(w.reference_bytes) / max(1, len(w.reference_bytes))
                ),
                "stale_references": w.stale,
                "errors": w.errors,
            }
            for w in ways
        ],
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        "| way | per change: time to the model p50/p95 ms | per change: bytes into the context "
        "(≈ tokens) | per reference: extra round trip p50/p95 ms | per reference: bytes "
        "(≈ tokens) | tokens for a 10-minute shift (60 changes, 15 references) |",
        "|---|---|---|---|---|---|",
    ]
    for w in result["ways"]:
        ch, ref = w["change_ms"], w["reference_ms"]
        cb, rb = w["change_bytes_mean"], w["reference_bytes_mean"]
        shift = (60 * cb + 15 * rb) // BYTES_PER_TOKEN
        rows.append(
            f"| {w['label']} | {fmt(ch['p50'])}/{fmt(ch['p95'])} | {cb} "
            f"(≈ {cb // BYTES_PER_TOKEN}) | "
            + (f"{fmt(ref['p50'])}/{fmt(ref['p95'])}" if ref["n"] else "0 (none)")
            + f" | {rb} (≈ {rb // BYTES_PER_TOKEN}) | ≈ {shift:,} |"
        )
    return "\n".join(rows)


READING = """\
## Reading it, and the choice

- **Tokens.** A pushed screen stays in the context window that every later turn is processed
  with, until context compression drops it. `turn` adds one screen per change (≈ 160 tokens
  each) and `instructions` adds the whole instruction text again with it on the Gemini API
  (the plugin appends instructions as a model-role turn there; only Vertex AI replaces
  them). `tool` adds a screen only when the model asks for one. Over the assumed shift
  (a change every 10 s, a spoken reference every 40 s; an assumption, not a measurement of
  clerks) the push ways put 3.5× (`turn`) and ~10× (`instructions`) the tokens into the
  context.
- **Speech.** Both push ways send a `clientContent` message per change, and the Live API's
  reference says a message there *interrupts any current model generation*: every click,
  filter or keystroke burst while the agent speaks would cut it off mid-sentence. The fake
  does not model that, so it is not in the table; it is the decisive cost.
- **Latency.** A push reaches the model in a few ms and costs nothing at the reference; the
  tool costs one round trip on kaiwa's side (the table) plus one more generation step of
  the real model, which cannot be measured here. kaiwa's pages answer every UI action
  with the resulting screen, so the step is paid only for a reference that follows a
  click, not one that follows a voice command.
- **Freshness.** All three saw the latest screen in every repetition here (`stale` below
  would say otherwise). With a push, the model has the screen only if the push landed
  before the caller's words; with the tool it reads the screen when it needs it.

**kaiwa uses the `get_screen` tool**: the fewest tokens, no interrupted speech, and always
the current screen, for one tool step on references that follow a click.
"""


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Screen context: a `get_screen` tool, an instruction update, or a client-content turn",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}, commit `{result['commit']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at the end {m['load_average']}",
        f"- {result['reps']} changes and references per way; the product's default "
        f"instructions are {result['instructions_bytes']} bytes, a console screen "
        f"{result['screen_bytes_p50']} bytes (p50)",
        "",
        table(result),
        "",
    ]
    for w in result["ways"]:
        lines.append(
            f"- {w['label']}: references that missed the latest screen "
            f"{w['stale_references']}, errors {w['errors'] or 'none'}"
        )
    return "\n".join([*lines, "", READING])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "screen_context.json", result)
    (args.out / "screen_context.md").write_text(markdown(result))
    print(table(result))


if __name__ == "__main__":
    main()
