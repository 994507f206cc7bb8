// kaiwa web page: wires the LiveKit room to the UI.

import {
  ConnectionState,
  DisconnectReason,
  MediaDeviceFailure,
  RoomEvent,
  Track,
  type LocalTrackPublication,
  type RemoteParticipant,
  type RemoteTrack,
  type Room,
  type RpcInvocationData,
} from 'livekit-client';
import { CaseCard } from './casecard';
import { mountConfirmPrompt, type ConfirmPrompt } from './confirm_prompt';
import { PTT_CSS, TalkKey } from './talk_key';
import {
  ATTR_AGENT_STATE,
  ATTR_NOTICE,
  ATTR_TOOLS,
  RPC_INTERRUPT,
  TOPIC_CHAT,
  TOPIC_TRANSCRIPTION,
  TokenError,
  createRoom,
  fetchToken,
  findAgent,
  isAgent,
  parseNotice,
  parseTools,
  type Notice,
} from './connection';
import { applyStaticText, lang, t, type Key } from './i18n';
import { LevelMeter, type Levels } from './levels';
import { Transcript } from './transcript';

const AGENT_JOIN_TIMEOUT_MS = 15_000;

export type ConnectionView = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'failed';
export type AgentView = 'absent' | 'waiting' | 'initializing' | 'idle' | 'listening' | 'thinking' | 'speaking';

export interface KaiwaState {
  lang: 'ja' | 'en';
  connection: ConnectionView;
  agent: AgentView;
  agentIdentity: string | null;
  identity: string | null;
  roomName: string | null;
  tools: string[];
  notice: Notice | null;
  micEnabled: boolean;
  muted: boolean;
  camera: boolean;
  screen: boolean;
  caseId: string | null;
  error: string | null;
}

export interface KaiwaApi {
  state: KaiwaState;
  levels: Levels;
  room?: Room;
  /** The RPC handlers, callable directly (payload string → "ok"; throws RpcError on bad input). */
  handlers: Record<'showCase' | 'statusChanged' | 'clear', (payload: string) => string>;
}

declare global {
  interface Window {
    kaiwa: KaiwaApi;
  }
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const ui = {
  start: $<HTMLButtonElement>('start'),
  disconnect: $<HTMLButtonElement>('disconnect'),
  mute: $<HTMLButtonElement>('mute'),
  camera: $<HTMLButtonElement>('camera'),
  screen: $<HTMLButtonElement>('screen'),
  interrupt: $<HTMLButtonElement>('interrupt'),
  reconnect: $<HTMLButtonElement>('reconnect'),
  chatForm: $<HTMLFormElement>('chat-form'),
  chatInput: $<HTMLInputElement>('chat-input'),
  chatSend: $<HTMLButtonElement>('chat-send'),
  connection: $('connection-state'),
  agent: $('agent-state'),
  tools: $('tool-indicator'),
  notice: $('notice'),
  confirm: $('confirm'),
  error: $('error'),
  toast: $('toast'),
  hint: $('hint'),
  audioSink: $('audio-sink'),
  preview: $('preview'),
  previewCamera: $<HTMLVideoElement>('preview-camera'),
  previewScreen: $<HTMLVideoElement>('preview-screen'),
};

const state: KaiwaState = {
  lang,
  connection: 'disconnected',
  agent: 'absent',
  agentIdentity: null,
  identity: null,
  roomName: null,
  tools: [],
  notice: null,
  micEnabled: false,
  muted: false,
  camera: false,
  screen: false,
  caseId: null,
  error: null,
};
const levels: Levels = { user: 0, agent: 0 };
const meter = new LevelMeter(levels, { user: $('orb-user'), agent: $('orb-agent') });
const transcript = new Transcript($('transcript'));
const caseCard = new CaseCard(showToast, (id) => (state.caseId = id));

window.kaiwa = {
  state,
  levels,
  room: undefined,
  handlers: { showCase: caseCard.showCase, statusChanged: caseCard.statusChanged, clear: caseCard.clear },
};

let room: Room | undefined;
let leaving = false;
let busy = false;
let agentTimer: number | undefined;
/** present: agent in the room; gone: it timed out or left (shown as an error). */
let agentPresence: 'waiting' | 'present' | 'gone' = 'waiting';
let enableAudioButton: HTMLButtonElement | undefined;
/** Confirm / Decline for the action the agent waits on (its `kaiwa.confirmation`), per room. */
let confirmPrompt: ConfirmPrompt | undefined;

// ---------------------------------------------------------------- rendering

function render(): void {
  const live = state.connection === 'connected' || state.connection === 'reconnecting';
  const inSession = room !== undefined;

  ui.connection.dataset.state = state.connection;
  ui.connection.querySelector('.pill-label')!.textContent = t(`conn.${state.connection}` as Key);

  ui.agent.dataset.state = state.agent;
  ui.agent.querySelector('.agent-state-label')!.textContent = t(`agent.${state.agent}` as Key);
  document.body.dataset.agent = state.agent;
  document.body.dataset.connection = state.connection;

  ui.tools.hidden = state.tools.length === 0;
  ui.tools.querySelector('.tool-text')!.textContent = t('running', { tools: state.tools.join(', ') });

  ui.notice.hidden = !state.notice;
  ui.notice.dataset.level = state.notice?.level ?? '';
  ui.notice.textContent = state.notice?.text ?? '';

  ui.start.hidden = inSession;
  ui.start.disabled = busy;
  ui.start.textContent = busy ? t('starting') : t('start');
  ui.start.setAttribute('aria-busy', String(busy));
  ui.disconnect.hidden = !inSession;
  ui.hint.textContent = inSession ? t('hintLive') : t('hint');
  ui.disconnect.disabled = !inSession;

  ui.mute.disabled = !live;
  ui.mute.setAttribute('aria-pressed', String(state.muted));
  const micLabel = !state.micEnabled && live && !busy ? t('micOn') : state.muted ? t('unmute') : t('mute');
  ui.mute.querySelector('.btn-label')!.textContent = micLabel;
  ui.camera.disabled = !live;
  ui.camera.setAttribute('aria-pressed', String(state.camera));
  ui.screen.disabled = !live || !navigator.mediaDevices?.getDisplayMedia;
  ui.screen.setAttribute('aria-pressed', String(state.screen));
  ui.interrupt.disabled = !live || !state.agentIdentity;
  ui.interrupt.classList.toggle('btn-attention', state.agent === 'speaking');
  ui.chatInput.disabled = !live;
  ui.chatSend.disabled = !live;

  ui.preview.hidden = !state.camera && !state.screen;
  ui.previewCamera.hidden = !state.camera;
  ui.previewScreen.hidden = !state.screen;
}

function showError(message: string, offerReconnect = false): void {
  state.error = message;
  ui.error.querySelector('.error-text')!.textContent = message;
  ui.reconnect.hidden = !offerReconnect;
  ui.error.hidden = false;
}

function clearError(): void {
  state.error = null;
  ui.error.hidden = true;
  ui.reconnect.hidden = true;
}

let toastTimer: number | undefined;
function showToast(text: string): void {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (ui.toast.hidden = true), 6000);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// push-to-talk: shown only when the agent runs this call with the talk key (a counter's
// credential says so; the page cannot choose)
const pttStyle = document.createElement('style');
pttStyle.textContent = PTT_CSS;
document.head.append(pttStyle);
const talkKey = new TalkKey(
  () => state.agentIdentity,
  () => ({ idle: t('pttIdle'), held: t('pttHeld'), hint: t('pttHint') }),
  { id: 'ptt' },
);
ui.interrupt.after(talkKey.button);

// ---------------------------------------------------------------- session

async function start(): Promise<void> {
  if (busy || room) return;
  busy = true;
  leaving = false;
  clearError();
  state.connection = 'connecting';
  render();
  const audioReady = meter.resume(); // creates the AudioContext inside the click's user activation

  try {
    const token = await fetchToken();
    state.roomName = token.room_name ?? null;
    const r = createRoom();
    wire(r);
    confirmPrompt = mountConfirmPrompt(ui.confirm, r);
    room = window.kaiwa.room = talkKey.room = r;
    await r.connect(token.server_url, token.participant_token);
    state.identity = r.localParticipant.identity;
    state.connection = 'connected';
    busy = false;
    render();
    await audioReady;
    void r.startAudio().catch(() => undefined); // AudioPlaybackStatusChanged handles a refusal
    syncAudioPlayback(r);
    refreshAgent(r);
    if (!state.agentIdentity) {
      state.agent = 'waiting';
      agentTimer = window.setTimeout(() => {
        if (room !== r || state.agentIdentity) return;
        agentPresence = 'gone';
        state.agent = 'absent';
        showError(t('err.agentTimeout'), true);
        render();
      }, AGENT_JOIN_TIMEOUT_MS);
    }
    render();
    await enableMic(r);
  } catch (err) {
    busy = false;
    if (err instanceof TokenError) {
      showError(tokenMessage(err));
      console.warn('kaiwa:', err.message);
    } else {
      showError(t('err.connect', { detail: describe(err) }), true);
      console.warn('kaiwa: connect failed', err);
    }
    await teardown();
    state.connection = 'disconnected';
    render();
  }
}

function tokenMessage(err: TokenError): string {
  switch (err.kind) {
    case 'refused':
      return t('err.tokenRefused', { detail: err.detail });
    case 'http':
      return t('err.tokenHttp', { status: err.detail });
    case 'network':
      return t('err.tokenNetwork');
    default:
      return t('err.tokenBadResponse');
  }
}

async function enableMic(r: Room): Promise<void> {
  try {
    await r.localParticipant.setMicrophoneEnabled(true, {
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true,
    });
  } catch (err) {
    const failure = MediaDeviceFailure.getFailure(err);
    if (failure === MediaDeviceFailure.PermissionDenied) showError(t('err.micDenied'));
    else if (failure === MediaDeviceFailure.NotFound) showError(t('err.micMissing'));
    else showError(t('err.micOther', { detail: describe(err) }));
    console.warn('kaiwa: microphone unavailable', err);
  }
  syncLocalTracks(r);
}

async function leave(): Promise<void> {
  leaving = true;
  const r = room;
  await r?.disconnect();
  await teardown();
  state.connection = 'disconnected';
  render();
}

async function reconnect(): Promise<void> {
  clearError();
  if (room) {
    leaving = true;
    await room.disconnect();
    await teardown();
  }
  await start();
}

/** Forget the current room and reset everything that belonged to it (transcript and case stay). */
async function teardown(): Promise<void> {
  window.clearTimeout(agentTimer);
  const r = room;
  room = window.kaiwa.room = undefined;
  r?.removeAllListeners();
  confirmPrompt?.destroy();
  confirmPrompt = undefined;
  talkKey.setEnabled(false);
  talkKey.room = undefined;
  meter.stop();
  ui.audioSink.replaceChildren();
  ui.previewCamera.srcObject = null;
  ui.previewScreen.srcObject = null;
  enableAudioButton?.remove();
  enableAudioButton = undefined;
  agentPresence = 'waiting';
  Object.assign(state, {
    agent: 'absent',
    agentIdentity: null,
    identity: null,
    tools: [],
    notice: null,
    micEnabled: false,
    muted: false,
    camera: false,
    screen: false,
  } satisfies Partial<KaiwaState>);
}

// ---------------------------------------------------------------- room events

function wire(r: Room): void {
  r.registerTextStreamHandler(TOPIC_TRANSCRIPTION, (reader, { identity }) => {
    const speaker = identity === r.localParticipant.identity ? 'user' : 'agent';
    void transcript.consume(reader, identity, speaker);
  });

  const rpc = (fn: (payload: string) => string) => async (data: RpcInvocationData) => fn(data.payload);
  r.registerRpcMethod('kaiwa.ui.show_case', rpc(caseCard.showCase));
  r.registerRpcMethod('kaiwa.ui.status_changed', rpc(caseCard.statusChanged));
  r.registerRpcMethod('kaiwa.ui.clear', rpc(caseCard.clear));

  r.on(RoomEvent.ConnectionStateChanged, (s: ConnectionState) => {
    if (room !== r) return;
    if (s === ConnectionState.Reconnecting || s === ConnectionState.SignalReconnecting) state.connection = 'reconnecting';
    else if (s === ConnectionState.Connected) state.connection = 'connected';
    render();
  })
    .on(RoomEvent.Reconnecting, () => {
      state.connection = 'reconnecting';
      render();
    })
    .on(RoomEvent.Reconnected, () => {
      state.connection = 'connected';
      render();
    })
    .on(RoomEvent.Disconnected, (reason?: DisconnectReason) => void onDisconnected(r, reason))
    .on(RoomEvent.ParticipantConnected, () => refreshAgent(r))
    .on(RoomEvent.ParticipantDisconnected, () => refreshAgent(r))
    .on(RoomEvent.ParticipantAttributesChanged, () => refreshAgent(r))
    .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
      if (track.kind !== Track.Kind.Audio) return;
      const el = track.attach();
      el.dataset.participant = participant.identity;
      ui.audioSink.append(el);
      if (isAgent(participant)) meter.setTrack('agent', track.mediaStreamTrack);
    })
    .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
      track.detach().forEach((el) => el.remove());
      refreshAgent(r);
    })
    .on(RoomEvent.AudioPlaybackStatusChanged, () => syncAudioPlayback(r))
    .on(RoomEvent.LocalTrackPublished, () => syncLocalTracks(r))
    .on(RoomEvent.LocalTrackUnpublished, () => syncLocalTracks(r))
    .on(RoomEvent.TrackMuted, () => syncLocalTracks(r))
    .on(RoomEvent.TrackUnmuted, () => syncLocalTracks(r));
}

async function onDisconnected(r: Room, reason?: DisconnectReason): Promise<void> {
  if (room !== r) return;
  const expected = leaving || reason === DisconnectReason.CLIENT_INITIATED;
  await teardown();
  state.connection = expected ? 'disconnected' : 'failed';
  if (!expected) {
    const ended = reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.ROOM_CLOSED;
    showError(ended ? t('err.ended') : t('err.lost'), true);
  }
  render();
}

/** Find the agent participant and mirror its attributes (state, running tools, notice). */
function refreshAgent(r: Room): void {
  if (room !== r) return;
  const agent = findAgent(r);
  if (agent) {
    window.clearTimeout(agentTimer);
    if (agentPresence === 'gone') clearError(); // it arrived late after all
    agentPresence = 'present';
    const raw = agent.attributes[ATTR_AGENT_STATE];
    state.agent = isAgentView(raw) ? raw : 'initializing';
    state.agentIdentity = agent.identity;
    state.tools = parseTools(agent.attributes[ATTR_TOOLS]);
    state.notice = parseNotice(agent.attributes[ATTR_NOTICE]);
    talkKey.follow(agent.attributes);
    const pub = [...agent.audioTrackPublications.values()].find((p) => p.track);
    meter.setTrack('agent', pub?.track?.mediaStreamTrack);
  } else {
    if (agentPresence === 'present') {
      agentPresence = 'gone';
      showError(t('err.agentLeft'), true);
    }
    state.agent = agentPresence === 'waiting' && room ? 'waiting' : 'absent';
    state.agentIdentity = null;
    state.tools = [];
    state.notice = null;
    talkKey.setEnabled(false);
    meter.setTrack('agent', undefined);
  }
  render();
}

function isAgentView(v: string | undefined): v is AgentView {
  return v === 'initializing' || v === 'idle' || v === 'listening' || v === 'thinking' || v === 'speaking';
}

function syncLocalTracks(r: Room): void {
  if (room !== r) return;
  const lp = r.localParticipant;
  const mic = lp.getTrackPublication(Track.Source.Microphone);
  state.micEnabled = !!mic?.track;
  state.muted = !!mic?.track && mic.isMuted;
  meter.setTrack('user', mic?.track?.mediaStreamTrack);
  state.camera = attachPreview(lp.getTrackPublication(Track.Source.Camera), ui.previewCamera);
  state.screen = attachPreview(lp.getTrackPublication(Track.Source.ScreenShare), ui.previewScreen);
  render();
}

function attachPreview(pub: LocalTrackPublication | undefined, video: HTMLVideoElement): boolean {
  const track = pub && !pub.isMuted ? pub.track : undefined;
  if (!track) {
    video.srcObject = null;
    return false;
  }
  const current = video.srcObject instanceof MediaStream ? video.srcObject.getVideoTracks()[0] : undefined;
  if (current !== track.mediaStreamTrack) track.attach(video);
  return true;
}

function syncAudioPlayback(r: Room): void {
  if (r.canPlaybackAudio) {
    enableAudioButton?.remove();
    enableAudioButton = undefined;
    return;
  }
  if (enableAudioButton) return;
  const b = document.createElement('button');
  b.type = 'button';
  b.id = 'enable-audio';
  b.className = 'btn btn-primary';
  b.textContent = t('err.audioBlocked');
  b.addEventListener('click', () => void r.startAudio().then(() => syncAudioPlayback(r)));
  ui.notice.before(b);
  enableAudioButton = b;
}

// ---------------------------------------------------------------- controls

async function toggleMute(): Promise<void> {
  if (!room) return;
  const r = room;
  if (!state.micEnabled) {
    clearError();
    await enableMic(r); // retry after a denied/missing microphone
    return;
  }
  await r.localParticipant.setMicrophoneEnabled(state.muted).catch((err) => console.warn('kaiwa: mute', err));
  syncLocalTracks(r);
}

async function toggleCamera(): Promise<void> {
  if (!room) return;
  const r = room;
  try {
    await r.localParticipant.setCameraEnabled(!state.camera);
  } catch (err) {
    const denied = MediaDeviceFailure.getFailure(err) === MediaDeviceFailure.PermissionDenied;
    showError(denied ? t('err.cameraDenied') : t('err.camera', { detail: describe(err) }));
  }
  syncLocalTracks(r);
}

async function toggleScreen(): Promise<void> {
  if (!room) return;
  const r = room;
  try {
    await r.localParticipant.setScreenShareEnabled(!state.screen, { audio: false });
  } catch (err) {
    // NotAllowedError = the person closed the picker: nothing to report
    if (MediaDeviceFailure.getFailure(err) !== MediaDeviceFailure.PermissionDenied) {
      showError(t('err.screen', { detail: describe(err) }));
    }
  }
  syncLocalTracks(r);
}

async function interrupt(): Promise<void> {
  if (!room || !state.agentIdentity) return;
  try {
    await room.localParticipant.performRpc({
      destinationIdentity: state.agentIdentity,
      method: RPC_INTERRUPT,
      payload: '{}',
    });
  } catch (err) {
    showToast(t('err.interrupt', { detail: describe(err) }));
  }
}

async function sendChat(): Promise<void> {
  const text = ui.chatInput.value.trim();
  if (!room || !text) return;
  try {
    await room.localParticipant.sendText(text, { topic: TOPIC_CHAT });
    transcript.addTyped(text);
    ui.chatInput.value = '';
  } catch (err) {
    showToast(t('err.send', { detail: describe(err) }));
  }
}

// ---------------------------------------------------------------- boot

applyStaticText();
render();

ui.start.addEventListener('click', () => void start());
ui.disconnect.addEventListener('click', () => void leave());
ui.reconnect.addEventListener('click', () => void reconnect());
ui.mute.addEventListener('click', () => void toggleMute());
ui.camera.addEventListener('click', () => void toggleCamera());
ui.screen.addEventListener('click', () => void toggleScreen());
ui.interrupt.addEventListener('click', () => void interrupt());
ui.chatForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void sendChat();
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !e.defaultPrevented && !ui.interrupt.disabled) {
    e.preventDefault();
    void interrupt();
  }
});
window.addEventListener('pagehide', () => {
  leaving = true;
  void room?.disconnect();
});
