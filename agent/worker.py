"""The worker: one AgentServer, one rtc_session per room, the whole wiring on one screen.

settings → realtime model → agent (instructions, greeting) → tools → room options.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobExecutorType, room_io

from token_server.roles import CHANNEL_ATTRIBUTE, role_of

from . import pii, tuning
from .assistant import DEFAULT_INSTRUCTIONS, Assistant
from .call import CallState, open_services
from .faults import record_recovery
from .gemini import CallHooks, ToolPolicyView, build_realtime_model
from .lifecycle import (
    CallLifecycle,
    call_scope,
    install_worker_recovery,
    job_recovery,
    metrics_options,
    wait_for_caller,
)
from .push_to_talk import TURN_MODE_ATTRIBUTE, PushToTalk, push_to_talk_for, turn_handling
from .recorder import purge_old_transcripts, start_recording
from .resilience import end_call_when_model_lost
from .session_store import open_handle_store
from .settings import Settings, load_settings
from .tools import build_tools, confirm, page_actions
from .tools import jobs as job_tools
from .tools.access import Access
from .tools.runtime import TOOLS_ATTRIBUTE, policy_of

logger = logging.getLogger("kaiwa.worker")

INTERRUPT_RPC = "kaiwa.interrupt"
CONFIRM_RPC = "kaiwa.confirm"


def build_server(settings: Settings) -> AgentServer:
    executor = (
        JobExecutorType.THREAD if settings.job_executor == "thread" else JobExecutorType.PROCESS
    )
    optional: dict[str, Any] = {}
    if settings.num_idle_processes is not None:
        optional["num_idle_processes"] = settings.num_idle_processes
    if settings.prewarm:
        # first-use work (tool schemas, genai client, TLS) done before the call, not on the
        # job's loop at Gemini connect: greeting p50 -89 ms (bench/results/tuning.md)
        optional["setup_fnc"] = tuning.prewarm
    if settings.max_sessions:
        optional["load_fnc"] = sessions_load(settings.max_sessions)
    if settings.load_threshold is not None:
        optional["load_threshold"] = settings.load_threshold
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        job_executor_type=executor,
        drain_timeout=settings.drain_timeout_s,
        port=settings.worker_http_port,
        **metrics_options(settings),
        # LiveKit's load = machine-wide CPU (2.5 s average) unless KAIWA_MAX_SESSIONS; at
        # or above the threshold the worker takes no new jobs (see bench/README.md).
        **optional,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    install_worker_recovery(server, settings)
    purge_old_transcripts(settings)  # call-record retention (KAIWA_CALL_RETENTION_DAYS)
    return server


def sessions_load(max_sessions: int) -> Callable[[AgentServer], float]:
    """Load as the share of `max_sessions` in use, instead of machine-wide CPU.

    livekit-server itself only dispatches to workers whose reported load is under its
    `agents.target_load` (0.7); CPU-based load counts every process on the box
    (livekit-server, browsers, other workers), so a busy neighbour makes the worker
    refuse calls it could carry. A session count measured by bench/capacity.py is a
    steadier admission rule.
    """

    def load(server: AgentServer) -> float:
        return min(1.0, len(server.active_jobs) / max_sessions)

    return load


def room_options(settings: Settings) -> room_io.RoomOptions:
    return room_io.RoomOptions(
        # 16 kHz straight from the room's resampler: the plugin then skips its own
        # 24→16 kHz resampling step, and smaller frames cut input buffering latency.
        audio_input=room_io.AudioInputOptions(
            sample_rate=settings.audio_input_rate, frame_size_ms=settings.audio_frame_ms
        ),
        video_input=settings.video_input,
        text_input=True,
        text_output=True,
        audio_output=True,
    )


ROLE_INSTRUCTIONS = {
    "staff": (
        "You are talking with {identity}, a member of staff operating the case system by "
        "voice. They may see and change every case; record changes as they ask."
    ),
    "caller": (
        "You are talking with a caller (a customer), not staff. Before reading or changing "
        "any case, verify them with verify_caller (case number and the last 4 digits of the "
        "phone on file, or name and full phone number). Then discuss only their own cases; "
        "never list or search other customers. A caller may ask for status, approve or "
        "decline a quote (respond_to_quote, then confirm_action after their yes) and "
        "schedule a return. For anything else, say that our staff do it at the reception "
        "counter or by phone during office hours."
    ),
}


def with_role(instructions: str | None, access: Access) -> str:
    """The persona plus who is on the line (the signed role, never the page or the model)."""
    base = instructions or DEFAULT_INSTRUCTIONS
    who = ROLE_INSTRUCTIONS["staff" if access.staff else "caller"]
    return f"{base}\n\n{who.format(identity=access.identity or 'a staff member')}"


def tool_policies(tools: list[Any]) -> dict[str, ToolPolicyView]:
    """Each tool's behaviour and scheduling, as declared with the tool, for the model."""
    out: dict[str, ToolPolicyView] = {}
    for tool in tools:
        info = getattr(tool, "info", None)
        if info is not None:
            p = policy_of(tool)
            out[info.name] = ToolPolicyView(behavior=p.behavior, scheduling=p.scheduling)
    return out


async def entrypoint(ctx: JobContext) -> None:
    settings = load_settings()
    pii.install(enabled=not settings.log_pii)  # no names, phones or emails in this job's logs
    # A job that replaces a crashed one explains the gap instead of greeting afresh
    # (only when kaiwa's worker signed the recovery metadata for this room).
    recovery = job_recovery(ctx.job, settings)
    # ctx.room has no name before connect(); the job's room does
    room_name, scope = ctx.job.room.name, call_scope(ctx.job.id, recovery)
    greeting = settings.greeting_instructions if settings.greeting else None
    if recovery is not None:
        greeting = settings.recovery_instructions
    call = CallState(
        services=open_services(settings),
        scope=f"{room_name}:{scope}",
        language=settings.language,
        tool_timeout_s=settings.tool_timeout_s,
    )
    recorder = start_recording(ctx, settings, call)  # the call record (agent/recorder.py)
    # keyed by room AND conversation: a reused room name never resumes another call
    handles = open_handle_store(settings, room_name, scope)
    resume_handle = await handles.load() if recovery is not None else None
    ctx.add_shutdown_callback(handles.forget)

    async def cancel_running_tools() -> None:
        call.cancel_all()  # nothing may write after the call ended

    ctx.add_shutdown_callback(cancel_running_tools)

    await ctx.connect()
    # bounded: a re-dispatched job whose caller has left must not wait forever
    participant = await wait_for_caller(ctx, timeout=max(settings.rejoin_grace_s, 30.0))
    if participant is None:
        logger.info("no caller joined; leaving", extra={"room": ctx.room.name})
        ctx.shutdown("no caller")
        return
    # Who is talking: the token server signed the role into the participant's attributes;
    # neither the page nor the model can change it. Tools and instructions follow it.
    call.access = Access(role=role_of(participant.attributes).value, identity=participant.identity)
    recorder.identify(
        call.access.role, participant.identity, participant.attributes.get(CHANNEL_ATTRIBUTE)
    )
    tools = build_tools(settings, call.access.role)
    agent = Assistant(
        instructions=with_role(settings.resolved_instructions(), call.access),
        greeting_instructions=greeting,
        tools=tools,
    )
    hooks = CallHooks(
        on_resumption_handle=handles.save,
        on_tools_cancelled=call.cancel_calls,
        on_caller_speech_started=call.confirmations.caller_started_speaking,
        on_caller_speech_ended=recorder.caller_speech_ended,
        tool_policies=tool_policies(tools),
    )
    # push-to-talk (the credential's signed kaiwa.turn_mode, or KAIWA_TURN_MODE for staff
    # calls): manual activity, audio only while the key is held
    ptt = push_to_talk_for(settings, call.access, participant.attributes)
    session: AgentSession[CallState] = AgentSession(
        userdata=call,
        llm=build_realtime_model(
            settings,
            instructions=str(agent.instructions),
            # a replacement for a crashed job resumes the same Gemini conversation
            resume_handle=resume_handle,
            hooks=hooks,
            push_to_talk=ptt,
        ),
        turn_handling=turn_handling(ptt),
    )
    confirm.listen(session, call.confirmations)
    recorder.attach(session)
    # Watch the caller from now on (a hang-up during session start counts too): a hang-up
    # ends the job at once; a dropped caller gets KAIWA_REJOIN_GRACE_S to rejoin.
    CallLifecycle(
        ctx,
        session,
        participant.identity,
        grace_s=settings.rejoin_grace_s,
        rejoin_instructions=settings.rejoin_instructions,
    ).start()
    logger.info(
        "session starting",
        extra={
            "room": ctx.room.name,
            "participant": participant.identity,
            "role": call.access.role,
        },
    )

    async def on_interrupt(data: rtc.RpcInvocationData) -> str:
        # The page's interrupt button: stop the agent's speech now (barge-in by click).
        await session.interrupt(force=True)
        return json.dumps({"ok": True})

    async def on_confirm(data: rtc.RpcInvocationData) -> str:
        # The page's confirm / decline button for a pending action: explicit, no transcript.
        if data.caller_identity != participant.identity:
            return json.dumps({"ok": False, "error": "only the caller of this call may answer"})
        try:
            body = json.loads(data.payload or "{}")
            cid, answer = str(body["confirmation_id"]), str(body.get("answer", "yes"))
        except (ValueError, KeyError, TypeError):
            return json.dumps({"ok": False, "error": "expected {confirmation_id, answer}"})
        if answer not in ("yes", "no"):
            return json.dumps({"ok": False, "error": "answer must be yes or no"})
        said: confirm.Answer = "yes" if answer == "yes" else "no"
        action = call.confirmations.button(cid, said)
        if action is None:
            return json.dumps({"ok": False, "error": "no such pending action"})
        # The press only records the answer: the action runs when the model calls
        # confirm_action, and the model heard nothing (no speech, no typed text). So it is
        # told in the conversation (reply instructions, the framework's public API) and
        # goes on: confirm_action after Confirm; "it was not done" after Decline.
        try:
            session.generate_reply(instructions=confirm.button_instructions(action, said))
        except RuntimeError as e:  # the session is not running (closing)
            logger.warning("button answer not passed to the model: %s", e)
        return json.dumps({"ok": True, "answer": said})

    ctx.room.local_participant.register_rpc_method(INTERRUPT_RPC, on_interrupt)
    ctx.room.local_participant.register_rpc_method(CONFIRM_RPC, on_confirm)
    # the page's declared UI actions and screen context: this session's ui_* / get_screen tools
    await page_actions.attach(ctx.room, agent, session, participant.identity, call=call)
    # staff calls: allow-listed background jobs, progress on kaiwa.jobs, the result once
    await job_tools.attach(ctx.room, session, call, participant.identity, settings)

    async def publish_tools(value: str) -> None:
        await ctx.room.local_participant.set_attributes({TOOLS_ATTRIBUTE: value})

    call.activity.attach(publish_tools)

    async def publish_confirmation(value: str) -> None:
        await ctx.room.local_participant.set_attributes({confirm.CONFIRMATION_ATTRIBUTE: value})

    # the newest action waiting for the caller's answer, for the page's Confirm / Decline
    call.confirmations.on_change = confirm.AttributePublisher(publish_confirmation)
    if ptt:
        talk_key = PushToTalk(session, participant.identity)
        talk_key.prepare()  # no audio reaches Gemini before the first press
        talk_key.attach(ctx.room)
        await ctx.room.local_participant.set_attributes({TURN_MODE_ATTRIBUTE: "push_to_talk"})

    end_call_when_model_lost(session, ctx, settings.language)
    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_options(settings),
        record=False,
    )
    if recovery is not None:
        record_recovery(
            "job_redispatch",
            time.time() - recovery.crashed_at,
            previous_job_id=recovery.previous_job_id,
            attempt=recovery.attempt,
            room=ctx.room.name,
            replayed=(
                "the Gemini conversation, resumed from its last handle"
                if resume_handle
                else "nothing: new Gemini session; the caller is asked to repeat"
            ),
        )
