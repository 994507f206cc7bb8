"""The worker's settings: one typed object read from the environment and `.env`.

Every field is documented in `.env.example` with its default. Secrets are `SecretStr` so
they never show up in a repr or a log line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from token_server.devkeys import DEV_API_KEY, DEV_API_SECRET, credential_problem

from .jobs import JobSpec, example_jobs

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Sensitivity = Literal["high", "low", "default"]


class SettingsError(RuntimeError):
    """A configuration problem, worded as one line a person can act on."""


class MCPServerConfig(BaseModel):
    """One MCP tool server (an item of KAIWA_MCP_SERVERS).

    HTTP: {"name": "crm", "url": "http://host/mcp", "headers": {...}, "allowed_tools": [...]}
    stdio: {"name": "files", "command": "python", "args": ["server.py"], "env": {...}}
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    url: str | None = None
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # may carry tokens
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    allowed_tools: list[str] | None = None
    timeout_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError(f"MCP server '{self.name}': give either 'url' or 'command'")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- LiveKit ---
    livekit_url: str = Field("ws://127.0.0.1:7880", validation_alias="LIVEKIT_URL")
    # defaults are the published dev credentials: refused unless KAIWA_DEV=1 (check_keys)
    livekit_api_key: str = Field(DEV_API_KEY, validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr = Field(
        SecretStr(DEV_API_SECRET), validation_alias="LIVEKIT_API_SECRET"
    )
    dev: bool = Field(False, validation_alias="KAIWA_DEV")
    # write tool arguments, transcripts and contact data into logs (never in production)
    log_pii: bool = Field(False, validation_alias="KAIWA_LOG_PII")
    agent_name: str = Field("kaiwa", validation_alias="KAIWA_AGENT_NAME")

    # --- Google / Gemini ---
    google_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GOOGLE_API_KEY", "GEMINI_API_KEY")
    )
    use_vertexai: bool = Field(False, validation_alias="GOOGLE_GENAI_USE_VERTEXAI")
    google_cloud_project: str | None = Field(None, validation_alias="GOOGLE_CLOUD_PROJECT")
    google_cloud_location: str = Field("us-central1", validation_alias="GOOGLE_CLOUD_LOCATION")
    # GA since 2026-09 (2.5 native audio is a preview); tools are declared one by one, so
    # 3.8's non-blocking default never applies by accident (agent/gemini/families.py)
    model: str = Field("gemini-3.8-live", validation_alias="KAIWA_MODEL")
    voice: str = Field("Puck", validation_alias="KAIWA_VOICE")
    language: str | None = Field(None, validation_alias="KAIWA_LANGUAGE")
    instructions: str | None = Field(None, validation_alias="KAIWA_INSTRUCTIONS")
    instructions_file: Path | None = Field(None, validation_alias="KAIWA_INSTRUCTIONS_FILE")
    temperature: float | None = Field(None, ge=0.0, le=2.0, validation_alias="KAIWA_TEMPERATURE")
    # model-family options (checked against KAIWA_MODEL at start; unset: the model's default)
    affective_dialog: bool | None = Field(None, validation_alias="KAIWA_AFFECTIVE_DIALOG")
    proactive_audio: bool | None = Field(None, validation_alias="KAIWA_PROACTIVE_AUDIO")
    thinking_budget: int | None = Field(None, ge=0, validation_alias="KAIWA_THINKING_BUDGET")

    # --- turn taking (Gemini's server-side VAD) ---
    vad_start_sensitivity: Sensitivity = Field("default", validation_alias="KAIWA_VAD_START")
    vad_end_sensitivity: Sensitivity = Field("default", validation_alias="KAIWA_VAD_END")
    vad_silence_ms: int | None = Field(
        None, ge=0, le=10_000, validation_alias="KAIWA_VAD_SILENCE_MS"
    )
    vad_prefix_padding_ms: int | None = Field(
        None, ge=0, le=10_000, validation_alias="KAIWA_VAD_PREFIX_PADDING_MS"
    )

    # --- conversation ---
    greeting: bool = Field(True, validation_alias="KAIWA_GREETING")
    greeting_instructions: str = Field(
        "Greet the caller briefly as the reception desk of a data-recovery service and ask "
        "how you can help. Use the caller's language if you know it.",
        validation_alias="KAIWA_GREETING_INSTRUCTIONS",
    )
    video_input: bool = Field(True, validation_alias="KAIWA_VIDEO_INPUT")
    timezone: str = Field("Asia/Tokyo", validation_alias="KAIWA_TIMEZONE")

    # --- long sessions ---
    compression_trigger_tokens: int | None = Field(
        25_600, ge=0, validation_alias="KAIWA_COMPRESSION_TRIGGER_TOKENS"
    )
    compression_target_tokens: int | None = Field(
        12_800, ge=0, validation_alias="KAIWA_COMPRESSION_TARGET_TOKENS"
    )

    # --- resilience (Gemini connection; see docs/reliability.md) ---
    setup_timeout_s: float = Field(10.0, gt=0, validation_alias="KAIWA_SETUP_TIMEOUT_S")
    # a reply is due (the caller stopped speaking, a tool answered) and Gemini sent nothing
    stall_timeout_s: float = Field(6.0, gt=0, validation_alias="KAIWA_STALL_TIMEOUT_S")
    # int16 RMS above which the caller's audio counts as speech (the reply clock's gate)
    speech_rms: float = Field(400.0, gt=0, validation_alias="KAIWA_SPEECH_RMS")
    max_reconnects: int = Field(6, ge=1, validation_alias="KAIWA_MAX_RECONNECTS")
    reconnect_window_s: float = Field(60.0, gt=0, validation_alias="KAIWA_RECONNECT_WINDOW_S")
    go_away_margin_s: float = Field(2.0, ge=0, validation_alias="KAIWA_GO_AWAY_MARGIN_S")
    audio_buffer_s: float = Field(5.0, ge=0, validation_alias="KAIWA_AUDIO_BUFFER_S")

    state_dir: Path = Field(PROJECT_ROOT / "data" / "sessions", validation_alias="KAIWA_STATE_DIR")
    # Redis (redis:// rediss:// unix://) for handles, re-dispatch locks and the worker
    # registry of a cluster; wins over KAIWA_STATE_DIR. May hold a password: a SecretStr.
    state_url: SecretStr | None = Field(None, validation_alias="KAIWA_STATE_URL")

    @field_validator("state_url", mode="before")
    @classmethod
    def _state_url_scheme(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        raw = v.get_secret_value() if isinstance(v, SecretStr) else str(v)
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            # don't echo the value: it may carry a password
            raise ValueError("KAIWA_STATE_URL must start with redis://, rediss:// or unix://")
        return raw

    # --- tools ---
    tool_timeout_s: float = Field(15.0, gt=0, validation_alias="KAIWA_TOOL_TIMEOUT_S")
    # a SQLite file path, or a postgresql:// URL (the same desk, shared by many workers)
    desk_db: str = Field(
        str(PROJECT_ROOT / "data" / "desk.sqlite3"), validation_alias="KAIWA_DESK_DB"
    )

    # --- tool sources (beyond the built-in desk tools; see README "MCP and OpenAPI") ---
    # The slow example tool's simulated lab lookup (check_lab_progress), seconds.
    lab_delay_s: float = Field(3.0, ge=0, le=600, validation_alias="KAIWA_LAB_DELAY_S")
    # MCP servers: a JSON list of MCPServerConfig objects.
    mcp_servers: Annotated[list[MCPServerConfig], NoDecode] = Field(
        default_factory=list, validation_alias="KAIWA_MCP_SERVERS"
    )
    # OpenAPI 3 backend: spec (file path or http(s) URL), base URL, one auth header
    # ("Name: value"), and the operation ids to offer (comma list; required).
    openapi_spec: str | None = Field(None, validation_alias="KAIWA_OPENAPI_SPEC")
    openapi_base_url: str | None = Field(None, validation_alias="KAIWA_OPENAPI_BASE_URL")
    openapi_auth_header: SecretStr | None = Field(
        None, validation_alias="KAIWA_OPENAPI_AUTH_HEADER"
    )
    openapi_operations: str = Field("", validation_alias="KAIWA_OPENAPI_OPERATIONS")
    # Gemini's built-in tools, run by Google (not available with the fake).
    google_search: bool = Field(False, validation_alias="KAIWA_GOOGLE_SEARCH")
    code_execution: bool = Field(False, validation_alias="KAIWA_CODE_EXECUTION")

    # --- audio path ---
    audio_frame_ms: int = Field(20, ge=10, le=100, validation_alias="KAIWA_AUDIO_FRAME_MS")
    audio_input_rate: Literal[16000, 24000, 48000] = Field(
        16000, validation_alias="KAIWA_AUDIO_INPUT_RATE"
    )

    @field_validator("audio_input_rate", mode="before")
    @classmethod
    def _rate_from_env(cls, v: object) -> object:
        # env values are strings, and a Literal of ints does not coerce "24000"
        return int(v) if isinstance(v, str) and v.strip().isdigit() else v

    # --- lifecycle (caller drops, crashed jobs, metrics; see docs/reliability.md) ---
    rejoin_grace_s: float = Field(30.0, ge=0, le=3600, validation_alias="KAIWA_REJOIN_GRACE_S")
    rejoin_instructions: str | None = Field(
        "The caller's connection dropped for a few seconds and they are back now. Say in one "
        "short sentence that you lost them for a moment, then continue where you left off.",
        validation_alias="KAIWA_REJOIN_INSTRUCTIONS",
    )
    recovery_instructions: str | None = Field(
        "You are taking over a call whose previous agent process failed; the caller may have "
        "heard silence. Apologise in one short sentence for the interruption and ask them to "
        "repeat what they last said. Use the caller's language if you know it.",
        validation_alias="KAIWA_RECOVERY_INSTRUCTIONS",
    )
    job_redispatch: bool = Field(True, validation_alias="KAIWA_JOB_REDISPATCH")
    job_redispatch_max: int = Field(2, ge=0, validation_alias="KAIWA_JOB_REDISPATCH_MAX")
    metrics_port: int | None = Field(None, ge=0, le=65535, validation_alias="KAIWA_METRICS_PORT")
    # Dispatch metadata saying "recovery" counts only when kaiwa's worker signed it (HMAC
    # with LIVEKIT_API_SECRET) at most this many seconds ago (agent/recovery_token.py).
    recovery_max_age_s: float = Field(
        600.0, gt=0, le=7200, validation_alias="KAIWA_RECOVERY_MAX_AGE_S"
    )
    # With KAIWA_STATE_URL: a worker not heard from for this long counts as dead, and
    # another worker re-dispatches its calls (agent/cluster.py).
    worker_lease_s: float = Field(10.0, ge=1, le=300, validation_alias="KAIWA_WORKER_LEASE_S")

    @field_validator("rejoin_instructions", "recovery_instructions", "metrics_port", mode="before")
    @classmethod
    def _lifecycle_blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    # --- worker ---
    drain_timeout_s: int = Field(300, ge=0, validation_alias="KAIWA_DRAIN_TIMEOUT_S")
    worker_http_port: int = Field(8081, ge=0, le=65535, validation_alias="KAIWA_WORKER_HTTP_PORT")
    job_executor: Literal["process", "thread"] = Field(
        "process", validation_alias="KAIWA_JOB_EXECUTOR"
    )
    # LiveKit's admission control: no new jobs while machine CPU >= this (0..1; "inf": off)
    # Report load as active sessions / this number instead of machine CPU (unset: CPU).
    max_sessions: int | None = Field(None, ge=1, validation_alias="KAIWA_MAX_SESSIONS")
    # unset: LiveKit's default (0.7 with `start`, off with `dev`)
    load_threshold: float | None = Field(None, gt=0, validation_alias="KAIWA_LOAD_THRESHOLD")
    # prewarmed job processes kept idle (unset: LiveKit's default, one per CPU in production)
    num_idle_processes: int | None = Field(
        None, ge=0, le=64, validation_alias="KAIWA_NUM_IDLE_PROCESSES"
    )
    # setup_fnc warming each idle job process (agent/tuning.py); measured: time to greeting
    # p50 697 -> 608 ms, event-loop stalls 14 -> 2 per 25 calls (bench/results/tuning.md)
    prewarm: bool = Field(True, validation_alias="KAIWA_PREWARM")

    @field_validator("num_idle_processes", mode="before")
    @classmethod
    def _blank_idle_is_default(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    # --- call records, cost, traces (agent/recorder.py, agent/telemetry.py, desk/calls.py) ---
    call_records: bool = Field(True, validation_alias="KAIWA_CALL_RECORDS")
    call_flush_s: float = Field(1.0, gt=0, le=60, validation_alias="KAIWA_CALL_FLUSH_S")
    call_retention_days: float | None = Field(
        90.0, ge=0, validation_alias="KAIWA_CALL_RETENTION_DAYS"
    )
    # per 1M tokens, in `currency`; defaults and their source: .env.example
    currency: str = Field("USD", min_length=1, max_length=8, validation_alias="KAIWA_CURRENCY")
    price_input_text: float = Field(0.50, ge=0, validation_alias="KAIWA_PRICE_INPUT_TEXT")
    price_input_audio: float = Field(3.00, ge=0, validation_alias="KAIWA_PRICE_INPUT_AUDIO")
    price_output_text: float = Field(2.00, ge=0, validation_alias="KAIWA_PRICE_OUTPUT_TEXT")
    price_output_audio: float = Field(12.00, ge=0, validation_alias="KAIWA_PRICE_OUTPUT_AUDIO")
    price_cached_input: float | None = Field(
        None, ge=0, validation_alias="KAIWA_PRICE_CACHED_INPUT"
    )
    otel_endpoint: str | None = Field(None, validation_alias="KAIWA_OTEL_ENDPOINT")

    @field_validator("call_retention_days", "price_cached_input", "otel_endpoint", mode="before")
    @classmethod
    def _records_blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    # --- background jobs (agent/jobs.py, agent/tools/jobs.py; staff only) ---
    # more allow-listed jobs: a JSON list of JobSpec objects (a name already taken by an
    # example replaces it)
    jobs: Annotated[list[JobSpec], NoDecode] = Field(
        default_factory=list, validation_alias="KAIWA_JOBS"
    )
    jobs_examples: bool = Field(True, validation_alias="KAIWA_JOBS_EXAMPLES")
    jobs_dir: Path = Field(PROJECT_ROOT / "data" / "jobs", validation_alias="KAIWA_JOBS_DIR")
    jobs_diagnose_s: float = Field(30.0, gt=0, le=3600, validation_alias="KAIWA_JOBS_DIAGNOSE_S")
    jobs_max_running: int = Field(3, ge=1, le=20, validation_alias="KAIWA_JOBS_MAX_RUNNING")

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs_json(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return []
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError as e:
                raise ValueError(f"KAIWA_JOBS is not valid JSON ({e})") from None
        return v

    def allowed_jobs(self) -> list[JobSpec]:
        """The shipped examples (unless KAIWA_JOBS_EXAMPLES=false), then KAIWA_JOBS."""
        found = {j.name: j for j in example_jobs(diagnose_s=self.jobs_diagnose_s)}
        if not self.jobs_examples:
            found = {}
        found.update({j.name: j for j in self.jobs})
        return list(found.values())

    @field_validator(
        "google_api_key",
        "google_cloud_project",
        "language",
        "instructions",
        "instructions_file",
        "temperature",
        "affective_dialog",
        "proactive_audio",
        "thinking_budget",
        "vad_silence_ms",
        "vad_prefix_padding_ms",
        "compression_trigger_tokens",
        "compression_target_tokens",
        "max_sessions",
        "load_threshold",
        "openapi_spec",
        "openapi_base_url",
        "openapi_auth_header",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _mcp_json(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return []
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError as e:
                raise ValueError(f"KAIWA_MCP_SERVERS is not valid JSON ({e})") from None
        return v

    @model_validator(mode="after")
    def _check_model_family(self) -> Settings:
        from .gemini.families import problems

        found = problems(
            self.model,
            affective_dialog=self.affective_dialog,
            proactive_audio=self.proactive_audio,
            thinking_budget=self.thinking_budget,
        )
        if found:
            raise ValueError("; ".join(found))
        return self

    @model_validator(mode="after")
    def _check_instructions_file(self) -> Settings:
        if self.instructions_file is not None and not self.instructions_file.is_file():
            raise ValueError(f"KAIWA_INSTRUCTIONS_FILE={self.instructions_file} does not exist")
        return self

    @model_validator(mode="after")
    def _check_tool_sources(self) -> Settings:
        names = [s.name for s in self.mcp_servers]
        if len(set(names)) != len(names):
            raise ValueError("KAIWA_MCP_SERVERS: server names must be unique")
        if self.openapi_spec is not None:
            if not self.openapi_base_url:
                raise ValueError("KAIWA_OPENAPI_BASE_URL is required with KAIWA_OPENAPI_SPEC")
            if not self.openapi_operation_ids:
                raise ValueError(
                    "KAIWA_OPENAPI_OPERATIONS must list the operation ids to offer "
                    "(comma separated)"
                )
            if "://" not in self.openapi_spec and not Path(self.openapi_spec).is_file():
                raise ValueError(f"KAIWA_OPENAPI_SPEC={self.openapi_spec} does not exist")
        if self.openapi_auth_header is not None and ":" not in (
            self.openapi_auth_header.get_secret_value()
        ):
            raise ValueError("KAIWA_OPENAPI_AUTH_HEADER must look like 'Name: value'")
        return self

    @property
    def openapi_operation_ids(self) -> list[str]:
        return [op.strip() for op in self.openapi_operations.split(",") if op.strip()]

    def check_keys(self) -> None:
        """Stop at start when production would run on the published dev key/secret."""
        problem = credential_problem(
            self.livekit_api_key, self.livekit_api_secret.get_secret_value(), dev_mode=self.dev
        )
        if problem is not None:
            raise SettingsError(problem)

    def require_google_credentials(self) -> None:
        """Stop at start, before registering with LiveKit, when Gemini can't be reached."""
        if self.use_vertexai:
            if not self.google_cloud_project:
                raise SettingsError(
                    "GOOGLE_CLOUD_PROJECT is not set: Vertex AI mode "
                    "(GOOGLE_GENAI_USE_VERTEXAI=true) needs a project id"
                )
            return
        if self.google_api_key is None or not self.google_api_key.get_secret_value().strip():
            raise SettingsError(
                "GOOGLE_API_KEY is not set: put a Gemini API key in .env "
                "(or set GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT)"
            )

    def resolved_instructions(self) -> str | None:
        """Instructions from the file if given, else inline, else None (use the default persona)."""
        if self.instructions_file is not None:
            return self.instructions_file.read_text(encoding="utf-8").strip() or None
        return self.instructions

    # --- push-to-talk (agent/push_to_talk.py) ---
    # auto: open mic, Gemini's VAD ends each turn. push_to_talk: on staff calls (the
    # console), Gemini's automatic activity detection is off and the caller's audio reaches
    # it only while the console's talk key is held (activityStart .. activityEnd).
    turn_mode: Literal["auto", "push_to_talk"] = Field("auto", validation_alias="KAIWA_TURN_MODE")


def load_settings() -> Settings:
    """Read settings, turning validation errors into one readable line."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in e.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
