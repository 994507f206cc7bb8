"""The cluster `make cluster` starts, on free ports: redis-server, two livekit-server nodes
sharing it (livekit.cluster.yaml), two workers (one registered with each node, handles and
leases in the same Redis), a token server per node, and the Gemini fake.

* A caller on node A and a caller on node B both hear the greeting.
* kill -9 of the worker carrying a call (its whole process group: the worker and its job
  processes, as when a host dies): the other worker sees the lease run out and
  re-dispatches the room once; the caller hears the apology and the call continues in the
  SAME Gemini conversation (resumed from the handle in Redis).
* SIGTERM to the worker carrying a call (a rolling deploy): the call goes on to its end on
  the draining worker, a new call goes to the other worker, nothing is re-dispatched.
* Redis restarted (stopped, then started empty): what goes on, what stops, for how long.
* One livekit-server node killed: the call on the other node goes on; the caller on the
  dead node is disconnected and rejoins through the live node's token server.

The module runs its own processes (module-scoped) and kills some of them; tests run in file
order and restart what an earlier test left dead. Measured times go to
artifacts/cluster-faults.json (docs/reliability.md, "Cluster").
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit import api

from agent.cluster import CALLS_KEY
from agent.session_store import redis_client
from tests.e2e.conftest import fresh_conversation
from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.redis import RedisServer, redis_server_or_skip
from tests.support.stack import (
    API_KEY,
    API_SECRET,
    ARTIFACTS,
    ROOT,
    LiveKitServer,
    ManagedProcess,
    TokenServer,
    Worker,
    wait_http,
    worker_env,
)

AGENT = "kaiwa-cluster"
LEASE_S = 2.0
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
RECOVERY_MARK = "previous agent process failed"

RESULTS: dict[str, Any] = {}

pytestmark = pytest.mark.timeout(120)


@dataclass
class ClusterNode(LiveKitServer):
    """One livekit-server of the cluster: livekit.cluster.yaml with its own ports."""

    name: str = "node"
    redis_address: str = ""

    def config(self, workdir: Path) -> Path:
        cfg = yaml.safe_load((ROOT / "livekit.cluster.yaml").read_text())
        cfg["port"] = self.port
        cfg["rtc"]["tcp_port"] = self.tcp_port
        cfg["rtc"]["udp_port"] = self.udp_port
        cfg["redis"]["address"] = self.redis_address
        path = workdir / f"livekit-{self.name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    async def start(self, workdir: Path) -> None:
        env = {**os.environ, "LIVEKIT_KEYS": f"{API_KEY}: {API_SECRET}"}
        self.process = ManagedProcess(
            f"cluster-livekit-{self.name}",
            [self.binary, "--config", str(self.config(workdir))],
            env=env,
            cwd=workdir,
        )
        await self.process.start()
        await self.process.wait_for_line(r"starting LiveKit server", timeout=30)
        await wait_http(f"http://127.0.0.1:{self.port}/", timeout=15)

    async def stop(self) -> None:
        # a node waits for its rooms' participants before exiting; nothing here needs that
        if self.process is not None:
            await self.process.stop(timeout=3)


@dataclass
class Cluster:
    redis: RedisServer
    nodes: dict[str, ClusterNode]
    workers: dict[str, Worker]
    tokens: dict[str, TokenServer]
    gemini: GeminiLiveFake


@pytest.fixture(scope="module")
async def cluster(
    livekit_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    d = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(redis_server_or_skip(), d / "redis")
    redis.start()
    nodes = {
        n: ClusterNode(livekit_binary, name=n, redis_address=redis.address) for n in ("a", "b")
    }
    workers: dict[str, Worker] = {}
    tokens: dict[str, TokenServer] = {}
    async with GeminiLiveFake() as gemini:
        try:
            await asyncio.gather(*(node.start(d) for node in nodes.values()))
            for n, node in nodes.items():
                env = worker_env(
                    node,
                    gemini.env(),
                    KAIWA_AGENT_NAME=AGENT,
                    KAIWA_DESK_DB=str(d / "desk.sqlite3"),
                    KAIWA_STATE_URL=redis.url,
                    KAIWA_WORKER_LEASE_S=str(LEASE_S),
                    KAIWA_LOAD_THRESHOLD="1000",
                    KAIWA_NUM_IDLE_PROCESSES="1",
                )
                workers[n] = Worker(env, d, name=f"cluster-worker-{n}")
                tokens[n] = TokenServer(
                    worker_env(
                        node,
                        {},
                        KAIWA_AGENT_NAME=AGENT,
                        KAIWA_ALLOW_CLIENT_ROOM_NAMES="true",
                        KAIWA_ALLOW_CLIENT_IDENTITIES="true",
                    ),
                    d,
                )
                tokens[n].name = f"cluster-token-server-{n}"
                tokens[n].log_path = tokens[n].log_path.with_name(f"{tokens[n].name}.log")
            await asyncio.gather(
                *(w.start_and_register() for w in workers.values()),
                *(t.start_ready() for t in tokens.values()),
            )
            yield Cluster(redis, nodes, workers, tokens, gemini)
        finally:
            if RESULTS:
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / "cluster-faults.json").write_text(json.dumps(RESULTS, indent=2))
                print("cluster faults:", json.dumps(RESULTS))
            await asyncio.gather(*(p.stop() for p in [*workers.values(), *tokens.values()]))
            await asyncio.gather(*(node.stop() for node in nodes.values()))
            redis.stop()


def _room(tag: str) -> str:
    return f"cl-{tag}-{os.urandom(3).hex()}"


async def _join(tokens: TokenServer, room: str, identity: str) -> Caller:
    c = Caller(f"{tokens.url}/token")
    await c.join({"room_name": room, "participant_identity": identity}, timeout=30)
    return c


async def _listed(redis: RedisServer, room: str, timeout: float) -> None:
    """Wait until a worker lists the room's call in the cluster state."""
    client = redis_client(redis.url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            calls = await client.hvals(CALLS_KEY)
            if any(json.loads(c)["room"] == room for c in calls):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{room} not listed in {CALLS_KEY} within {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


def _worker_of(cluster: Cluster, room: str) -> str:
    for n, w in cluster.workers.items():
        if any('"received job request"' in line and room in line for line in w.lines):
            return n
    raise AssertionError(f"no worker received {room}")


async def test_callers_on_both_nodes_hear_the_greeting(cluster: Cluster) -> None:
    started = time.time()
    callers: list[Caller] = []
    try:
        for n in ("a", "b"):
            c = await _join(cluster.tokens[n], _room(f"node-{n}"), f"caller-{n}")
            callers.append(c)
        for c in callers:
            await c.wait_for_agent(timeout=30)
            await c.wait_for_agent_audio(seconds=1.0, timeout=30)  # the greeting
        # each caller's signalling went through its own node (its token server hands out
        # that node's URL); the rooms live on whichever node the selector chose
        print(
            "cluster greeting:",
            {c.room_name: _worker_of(cluster, c.room_name) for c in callers},
            f"{time.time() - started:.1f}s",
        )
    finally:
        for c in callers:
            await c.leave()


async def test_worker_killed_call_continues_on_the_other_worker(cluster: Cluster) -> None:
    room = _room("kill")
    since = time.monotonic()
    caller = await _join(cluster.tokens["a"], room, "caller-kill")
    try:
        first_agent = await caller.wait_for_agent(timeout=30)
        await caller.wait_for_agent_audio(seconds=1.0, timeout=30)  # the greeting
        conv = await fresh_conversation(cluster.gemini, since)
        await cluster.gemini.wait_until(lambda: conv.last_handle, timeout=10, what="a handle")
        connections = len(conv.connections)
        known = len(cluster.gemini.conversations)
        victim_name = _worker_of(cluster, room)
        victim = cluster.workers[victim_name]
        survivor = next(w for n, w in cluster.workers.items() if n != victim_name)
        # the worker lists the call in Redis on its next lease renewal
        await _listed(cluster.redis, room, timeout=LEASE_S * 2)
        since_line = len(survivor.lines)

        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)  # the worker and its job processes
        killed_at = time.monotonic()

        await caller.wait_until(
            lambda: any(
                p.identity != first_agent.identity and p.kind == first_agent.kind
                for p in caller.room.remote_participants.values()
            ),
            timeout=30,
            what="a replacement agent",
        )
        replaced_at = time.monotonic()
        # the same Gemini conversation, resumed from the dead job's last handle
        resumed = await conv.wait_for_connection(count=connections + 1, timeout=30)
        assert resumed.resumed_handle is not None
        assert len(cluster.gemini.conversations) == known  # no fresh conversation
        req = await conv.wait_for_client_content(
            lambda c: RECOVERY_MARK in (c.instructions or ""), timeout=20
        )
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=req.at)
        heard = caller.first_voiced_at(since=req.at)
        assert heard is not None
        line = await survivor.wait_for_line(
            r"recovery kind=job_redispatch", timeout=10, since=since_line
        )
        assert room in line
        took_over = [
            json.loads(x)
            for x in survivor.lines[since_line:]
            if '"worker lost; re-dispatching its call"' in x
        ]
        assert [t["room"] for t in took_over] == [room]  # once
        await caller.wait_until(
            lambda: first_agent.identity not in caller.room.remote_participants,
            timeout=10,
            what="the dead agent to be removed",
        )
        agents = [p for p in caller.room.remote_participants.values() if p.kind == first_agent.kind]
        assert len(agents) == 1

        # the conversation goes on with the new agent
        await caller.say_and_wait(load_wav(SPEECH))
        await conv.wait_for_voiced_audio(seconds=1.0, timeout=15)
        at = time.monotonic()
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=at)
        RESULTS["worker_kill_replacement_agent_s"] = round(replaced_at - killed_at, 2)
        RESULTS["worker_kill_apology_heard_s"] = round(heard - killed_at, 2)
        print(
            f"worker kill: replacement agent after {replaced_at - killed_at:.1f}s, "
            f"apology heard after {heard - killed_at:.1f}s (lease {LEASE_S:g}s)"
        )
        async with api.LiveKitAPI(
            cluster.nodes["b"].url.replace("ws://", "http://"), API_KEY, API_SECRET
        ) as lk:
            dispatches = await lk.agent_dispatch.list_dispatch(room_name=room)
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        replacements = [d for d in dispatches if "kaiwa_recovery" in (d.metadata or "")]
        assert len(replacements) == 1, dispatches
        # livekit-server did not restart the job on its own as well: still one agent
        kinds = [p.kind for p in listed.participants]
        assert kinds.count(api.ParticipantInfo.Kind.AGENT) == 1, listed
    finally:
        await caller.leave()


async def _both_workers(cluster: Cluster) -> None:
    """Restart whatever worker an earlier test killed or drained (as a supervisor would)."""
    dead = [w for w in cluster.workers.values() if not w.running]
    for w in dead:
        await w.stop()  # reap; kill what is left of its process group
    await asyncio.gather(*(w.start_and_register() for w in dead))


def _events(caller: Caller) -> dict[str, float]:
    """When the caller's SDK reported each connection event first (monotonic)."""
    seen: dict[str, float] = {}
    for name in ("reconnecting", "reconnected", "disconnected"):
        caller.room.on(name, lambda *_, n=name: seen.setdefault(n, time.monotonic()))
    return seen


def _host(cluster: Cluster, room: str) -> str:
    """The node whose process hosts the room (where its participants became active)."""
    for n, node in cluster.nodes.items():
        assert node.process is not None
        if any("participant active" in x and f'"room": "{room}"' in x for x in node.process.lines):
            return n
    raise AssertionError(f"no node hosts {room}")


async def test_worker_sigterm_rolling_deploy(cluster: Cluster) -> None:
    await _both_workers(cluster)
    room = _room("drain")
    caller = await _join(cluster.tokens["a"], room, "caller-drain")
    try:
        await caller.wait_for_agent(timeout=30)
        await caller.wait_for_agent_audio(seconds=1.0, timeout=30)  # the greeting
        name = _worker_of(cluster, room)
        draining = cluster.workers[name]
        other_name = next(n for n in cluster.workers if n != name)
        other = cluster.workers[other_name]
        since = {n: len(w.lines) for n, w in cluster.workers.items()}
        assert draining.proc is not None
        # the worker's main process only, as Kubernetes (PID 1) and systemd with
        # KillMode=mixed do. A SIGTERM to the whole group also kills the multiprocessing
        # forkserver, and the worker then takes every job for dead (exit 255): the call is
        # cut and only saved by the other worker's takeover (docs/reliability.md, Cluster).
        draining.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()
        await draining.wait_for_line("draining worker", timeout=10, since=since[name])

        # the call on the draining worker goes on: the caller speaks and is answered
        await caller.say_and_wait(load_wav(SPEECH))
        at = time.monotonic()
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=at)
        assert draining.running

        # a new call (on the other node) is dispatched to the other worker
        room2 = _room("during-drain")
        joined = time.monotonic()
        second = await _join(cluster.tokens["b"], room2, "caller-new")
        try:
            await second.wait_for_agent(timeout=30)
            await second.wait_for_agent_audio(seconds=1.0, timeout=30)
            greeting = second.first_voiced_at(since=joined)
            assert greeting is not None
            await other.wait_for_line(rf'"received job request".*"{room2}"', timeout=5)
            assert not any(room2 in x for x in draining.lines[since[name] :])
        finally:
            await second.leave()

        await caller.leave()  # the call ends normally
        ended_at = time.monotonic()
        code = await draining.wait_exit(30)
        exited_at = time.monotonic()
        assert code == 0, draining.tail()
        # nobody takes over a call that ended: no recovery dispatch, no second agent
        await asyncio.sleep(LEASE_S * 1.5)  # the drained worker's lease runs out
        assert not any(
            "recovery kind=job_redispatch" in x for x in other.lines[since[other_name] :]
        )
        async with api.LiveKitAPI(
            cluster.nodes["a"].url.replace("ws://", "http://"), API_KEY, API_SECRET
        ) as lk:
            dispatches = await lk.agent_dispatch.list_dispatch(room_name=room)
        assert not [d for d in dispatches if "kaiwa_recovery" in (d.metadata or "")]
        RESULTS["drain_call_kept_s"] = round(ended_at - sigterm_at, 2)
        RESULTS["drain_new_call_greeting_s"] = round(greeting - joined, 2)
        RESULTS["drain_exit_after_call_end_s"] = round(exited_at - ended_at, 2)
        print(
            f"rolling deploy: call kept {ended_at - sigterm_at:.1f}s through the drain, "
            f"new call greeted by worker {other_name} after {greeting - joined:.1f}s, "
            f"drained worker exited {exited_at - ended_at:.1f}s after the call ended"
        )
    finally:
        await caller.leave()


async def _try_call(tokens: TokenServer, room: str, identity: str, timeout: float) -> Caller:
    """A new call that must reach the greeting within `timeout` (raises otherwise)."""
    c = Caller(f"{tokens.url}/token")
    try:
        await asyncio.wait_for(
            c.join({"room_name": room, "participant_identity": identity}, timeout=timeout),
            timeout,
        )
        await c.wait_for_agent_audio(seconds=0.5, timeout=timeout)
    except BaseException:
        await c.leave(timeout=2)
        raise
    return c


async def test_redis_restart(cluster: Cluster) -> None:
    await _both_workers(cluster)
    since_t = time.monotonic()
    room = _room("redis")
    caller = await _join(cluster.tokens["a"], room, "caller-redis")
    extra: list[Caller] = []
    try:
        await caller.wait_for_agent(timeout=30)
        await caller.wait_for_agent_audio(seconds=1.0, timeout=30)
        conv = await fresh_conversation(cluster.gemini, since_t)
        await _listed(cluster.redis, room, timeout=LEASE_S * 2)
        worker = cluster.workers[_worker_of(cluster, room)]
        since = {n: len(w.lines) for n, w in cluster.workers.items()}

        cluster.redis.stop()
        down_at = time.monotonic()
        # a resumption handle issued during the outage cannot be kept
        await conv.issue_handle()
        await worker.wait_for_line(
            "could not keep the resumption handle",
            timeout=10,
            since=since[_worker_of(cluster, room)],
        )
        RESULTS["redis_down_handle_save_failed_s"] = round(time.monotonic() - down_at, 2)
        # the call in progress goes on: the caller speaks and is answered
        await caller.say_and_wait(load_wav(SPEECH))
        at = time.monotonic()
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=at)
        RESULTS["redis_down_call_continues"] = True
        # a new call while Redis is down
        t = time.monotonic()
        try:
            extra.append(await _try_call(cluster.tokens["b"], _room("redis-down"), "c-down", 8))
            RESULTS["redis_down_new_call"] = f"greeted after {time.monotonic() - t:.1f}s"
        except Exception as e:
            RESULTS["redis_down_new_call"] = f"failed after {time.monotonic() - t:.1f}s: {e!r:.120}"
        for n, w in cluster.workers.items():
            await w.wait_for_line(
                "cluster state \\(Redis\\) unreachable", timeout=10, since=since[n]
            )

        cluster.redis.start()
        up_at = time.monotonic()
        RESULTS["redis_outage_s"] = round(up_at - down_at, 2)
        # the worker lists its call again, and keeps the next handle
        await _listed(cluster.redis, room, timeout=LEASE_S * 3)
        RESULTS["redis_up_call_relisted_s"] = round(time.monotonic() - up_at, 2)
        await conv.issue_handle()
        await worker.wait_for_line(
            "resumption handle kept again", timeout=10, since=since[_worker_of(cluster, room)]
        )
        RESULTS["redis_up_handle_kept_s"] = round(time.monotonic() - up_at, 2)
        # new calls: retried until one is greeted
        attempts = 0
        while True:
            attempts += 1
            try:
                extra.append(
                    await _try_call(cluster.tokens["b"], _room("redis-up"), f"c-up{attempts}", 8)
                )
                break
            except Exception:
                if time.monotonic() - up_at > 40:
                    raise
        RESULTS["redis_up_new_call_greeted_s"] = round(time.monotonic() - up_at, 2)
        RESULTS["redis_up_new_call_attempts"] = attempts
        # the call that lived through the outage still goes on
        await caller.say_and_wait(load_wav(SPEECH))
        at = time.monotonic()
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=at)
        print("redis restart:", {k: v for k, v in RESULTS.items() if k.startswith("redis")})
    finally:
        if cluster.redis.proc is None or cluster.redis.proc.poll() is not None:
            cluster.redis.start()
        for c in extra:
            await c.leave()
        await caller.leave()


async def test_node_killed(cluster: Cluster) -> None:
    """Last: leaves one node dead. Kill -9 a livekit-server node with a caller on each node.

    Measured, not assumed: which calls survive depends on every connection a call has. Here
    each worker is registered with one node URL and its jobs connect through that node, so
    a call uses up to three nodes (the caller's signalling node, the node hosting the room,
    the agent's signalling node). The test records each call's layout and what happened.
    """
    await _both_workers(cluster)
    pair = {n: await _join(cluster.tokens[n], _room(f"node{n}"), f"c-node-{n}") for n in "ab"}
    callers = list(pair.values())
    try:
        for c in callers:
            await c.wait_for_agent(timeout=30)
            await c.wait_for_agent_audio(seconds=1.0, timeout=30)
        layout = {
            n: {
                "signal": n,
                "room": _host(cluster, c.room_name),
                "agent_worker": _worker_of(cluster, c.room_name),
            }
            for n, c in pair.items()
        }
        # spare the node hosting caller A's room: caller A keeps its signalling and room
        victim = "b" if layout["a"]["room"] == "a" else "a"
        survivor = "a" if victim == "b" else "b"
        kept, cut = pair[survivor], pair[victim]
        seen = {n: _events(c) for n, c in pair.items()}
        kept_agent = kept.agent()
        assert kept_agent is not None
        node = cluster.nodes[victim]
        assert node.process is not None and node.process.proc is not None
        os.killpg(node.process.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        RESULTS["node_kill_victim"] = victim
        RESULTS["node_kill_layout"] = layout

        # the caller on the surviving node speaks: is it answered?
        kept.say(load_wav(SPEECH))
        try:
            await kept.wait_for_agent_audio(seconds=1.0, timeout=20, since=killed_at + 0.5)
            answered = kept.first_voiced_at(since=killed_at + 0.5) or killed_at
            RESULTS["node_kill_kept_call"] = f"answered {answered - killed_at:.1f}s after"
        except TimeoutError:
            RESULTS["node_kill_kept_call"] = "not answered within 20 s"
        gone = kept_agent.identity not in kept.room.remote_participants
        RESULTS["node_kill_kept_call_agent_left"] = gone

        # the caller signalling through the dead node: when does its SDK give up?
        await cut.wait_until(
            lambda: "disconnected" in seen[victim], timeout=60, what="a disconnect"
        )
        RESULTS["node_kill_cut_client_events_s"] = {
            k: round(v - killed_at, 2)
            for k, v in sorted(seen[victim].items(), key=lambda kv: kv[1])
        }
        assert "disconnected" not in seen[survivor]
        # it comes back through the live node's token server, same room name and identity
        # (what the page's Reconnect does with KAIWA_ALLOW_CLIENT_ROOM_NAMES/IDENTITIES)
        known = len(cluster.gemini.conversations)
        start, attempts, outcome = time.monotonic(), 0, "not greeted within 20 s"
        while time.monotonic() - start < 20:
            attempts += 1
            try:
                back = await _try_call(cluster.tokens[survivor], cut.room_name, cut.identity, 8)
            except Exception as e:
                outcome = f"not greeted within 20 s: {e!r:.160}"
                await asyncio.sleep(0.5)
                continue
            callers.append(back)
            outcome = f"greeted {time.monotonic() - start:.1f}s after rejoining"
            RESULTS["node_kill_rejoin_room_on"] = _host(cluster, cut.room_name)
            RESULTS["node_kill_rejoin_new_conversations"] = (
                len(cluster.gemini.conversations) - known
            )
            break
        RESULTS["node_kill_rejoin"] = outcome
        RESULTS["node_kill_rejoin_attempts"] = attempts
        print("node kill:", {k: v for k, v in RESULTS.items() if k.startswith("node")})
    finally:
        for c in callers:
            await c.leave(timeout=3)
