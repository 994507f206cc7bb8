"""The worker: one AgentServer, one rtc_session per room, the whole wiring on one screen.

settings → realtime model → agent (instructions, greeting) → tools → room options.
"""

from __future__ import annotations

import json
import logging

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobExecutorType, room_io

from .assistant import Assistant
from .model import build_realtime_model
from .settings import Settings, load_settings
from .tools import build_tools
from .tools.runtime import TOOLS_ATTRIBUTE, activity

logger = logging.getLogger("kaiwa.worker")

INTERRUPT_RPC = "kaiwa.interrupt"


def build_server(settings: Settings) -> AgentServer:
    executor = (
        JobExecutorType.THREAD if settings.job_executor == "thread" else JobExecutorType.PROCESS
    )
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        job_executor_type=executor,
        drain_timeout=settings.drain_timeout_s,
        port=settings.worker_http_port,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server


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


async def entrypoint(ctx: JobContext) -> None:
    settings = load_settings()
    agent = Assistant(
        instructions=settings.resolved_instructions(),
        greeting_instructions=settings.greeting_instructions if settings.greeting else None,
        tools=build_tools(settings),
    )
    session: AgentSession = AgentSession(
        llm=build_realtime_model(settings, instructions=str(agent.instructions)),
    )

    await ctx.connect()
    participant = await ctx.wait_for_participant()
    logger.info(
        "session starting",
        extra={"room": ctx.room.name, "participant": participant.identity},
    )

    async def on_interrupt(data: rtc.RpcInvocationData) -> str:
        # The page's interrupt button: stop the agent's speech now (barge-in by click).
        await session.interrupt(force=True)
        return json.dumps({"ok": True})

    ctx.room.local_participant.register_rpc_method(INTERRUPT_RPC, on_interrupt)

    async def publish_tools(value: str) -> None:
        await ctx.room.local_participant.set_attributes({TOOLS_ATTRIBUTE: value})

    activity.attach(publish_tools)

    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_options(settings),
        record=False,
    )
