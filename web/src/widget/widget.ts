// <kaiwa-voice>: the voice client as a drop-in custom element for an existing web page.
//
// Contract: web/README.md "Drop-in widget". The host page gives the token endpoint, its
// actions (handlers in its own code + JSON schemas) and a function that returns its screen
// context; the widget joins, publishes the mic, shows the orb, transcript, agent state and
// running tools, interrupts, and speaks protocol v1 (page-declared UI actions + screen context).

import { ConnectionState, RoomEvent, Track, type RemoteParticipant, type RemoteTrack, type Room, type RpcInvocationData } from 'livekit-client';
import {
  ATTR_AGENT_STATE,
  ATTR_TOOLS,
  RPC_INTERRUPT,
  TOPIC_TRANSCRIPTION,
  createRoom,
  fetchToken,
  findAgent,
  parseTools,
} from '../connection';
import { mountConfirmPrompt, type ConfirmPrompt } from '../confirm_prompt';
import { PTT_CSS, TalkKey } from '../talk_key';
import { MAX_CONTEXT_BYTES, PROTOCOL_ATTRIBUTE, PROTOCOL_VERSION, RPC_ACTION, RPC_CONTEXT, RPC_DECLARE } from '../console/actions';
import { t, type Key } from '../i18n';
import { LevelMeter, type Levels } from '../levels';
import { Transcript } from '../transcript';
import { WIDGET_CSS } from './style';

export const WIDGET_VERSION = '1';
export const MAX_ACTIONS = 16;
export const MAX_DECLARATION_BYTES = 12_000;
const NAME = /^[a-z][a-z0-9_]{0,31}$/;
const CONTEXT_DELAY_MS = 80;

/** What a host handler may return: a sentence, an answer object, or nothing ("Done."). */
export type HandlerResult = string | void | undefined | { ok?: boolean; message?: string; error?: 'refused' | 'invalid' };

/** One action the host page supports. `parameters` is a JSON schema of `type: "object"`. */
export interface WidgetAction {
  description: string;
  parameters?: Record<string, unknown>;
  handler: (args: Record<string, unknown>) => HandlerResult | Promise<HandlerResult>;
}

export type ContextFn = () => Record<string, unknown>;

export interface WidgetState {
  connection: 'disconnected' | 'connecting' | 'connected' | 'reconnecting';
  agent: string;
  agentIdentity: string | null;
  tools: string[];
  declaredTo: string | null;
  declaredTools: string[];
  contextSeq: number;
  actionsHandled: number;
  muted: boolean;
  error: string | null;
}

/** Thrown (or returned as `{ok: false, error: "invalid"}`) when the arguments make no sense. */
export class InvalidAction extends Error {}

const TEMPLATE = `
<div class="panel" part="panel">
  <div class="top">
    <div class="orbs" aria-hidden="true"><div class="orb orb-user"></div><div class="orb orb-agent"></div></div>
    <div class="info">
      <div class="state" part="state" role="status" aria-live="polite"></div>
      <div class="tools" part="tools" hidden></div>
    </div>
  </div>
  <div class="controls">
    <button type="button" part="start" class="primary"></button>
    <button type="button" part="stop" hidden></button>
    <button type="button" part="mute" aria-pressed="false" disabled></button>
    <button type="button" part="interrupt" disabled></button>
  </div>
  <div class="confirm-slot"></div>
  <div class="error" part="error" role="alert" hidden></div>
  <div class="transcript" part="transcript" aria-live="polite"><p class="empty"></p></div>
  <div class="audio" hidden></div>
</div>`;

export class KaiwaVoice extends HTMLElement {
  static get observedAttributes(): string[] {
    return ['token-url'];
  }

  /** The live state (also reflected as `data-connection` / `data-agent` on the element). */
  readonly state: WidgetState = {
    connection: 'disconnected',
    agent: 'absent',
    agentIdentity: null,
    tools: [],
    declaredTo: null,
    declaredTools: [],
    contextSeq: 0,
    actionsHandled: 0,
    muted: false,
    error: null,
  };
  /** RMS levels 0..1 of the mic (`user`) and the agent's voice, updated every frame. */
  readonly levels: Levels = { user: 0, agent: 0 };
  room?: Room;

  private _actions: Record<string, WidgetAction> = {};
  private _context: ContextFn | null = null;
  private readonly root: ShadowRoot;
  private readonly el: Record<'state' | 'tools' | 'start' | 'stop' | 'mute' | 'interrupt' | 'error' | 'transcript' | 'audio', HTMLElement>;
  private readonly meter: LevelMeter;
  private readonly transcript: Transcript;
  private contextTimer: number | undefined;
  private lastContext = '';
  private confirmPrompt?: ConfirmPrompt;
  private readonly talkKey: TalkKey;
  private readonly confirmSlot: HTMLElement;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = WIDGET_CSS + PTT_CSS;
    const tpl = document.createElement('template');
    tpl.innerHTML = TEMPLATE;
    this.root.append(style, tpl.content.cloneNode(true));
    const q = (sel: string) => this.root.querySelector<HTMLElement>(sel)!;
    this.el = {
      state: q('[part=state]'),
      tools: q('[part=tools]'),
      start: q('[part=start]'),
      stop: q('[part=stop]'),
      mute: q('[part=mute]'),
      interrupt: q('[part=interrupt]'),
      error: q('[part=error]'),
      transcript: q('[part=transcript]'),
      audio: q('.audio'),
    };
    this.confirmSlot = q('.confirm-slot');
    // push-to-talk when the agent runs this call with the talk key (the credential decides)
    this.talkKey = new TalkKey(
      () => this.state.agentIdentity,
      () => ({ idle: t('pttIdle'), held: t('pttHeld'), hint: t('pttHint') }),
      { className: 'ptt' },
    );
    this.el.interrupt.after(this.talkKey.button);
    this.el.start.textContent = t('start');
    this.el.stop.textContent = t('disconnect');
    this.el.interrupt.textContent = t('interrupt');
    this.el.transcript.querySelector('.empty')!.textContent = t('transcriptEmpty');
    this.meter = new LevelMeter(this.levels, { user: q('.orb-user'), agent: q('.orb-agent') });
    this.transcript = new Transcript(this.el.transcript);
    this.el.start.addEventListener('click', () => void this.start());
    this.el.stop.addEventListener('click', () => void this.stop());
    this.el.mute.addEventListener('click', () => void this.toggleMute());
    this.el.interrupt.addEventListener('click', () => void this.interrupt());
    this.render();
  }

  // ------------------------------------------------------------ host API

  /** The actions the host supports: `{name: {description, parameters, handler}}`. Redeclared when set mid-call. */
  get actions(): Record<string, WidgetAction> {
    return this._actions;
  }

  set actions(value: Record<string, WidgetAction>) {
    this._actions = value ?? {};
    const agent = this.state.declaredTo;
    if (agent) {
      this.state.declaredTo = null;
      void this.declareTo(agent);
    }
  }

  /** A function returning the host's screen context (a JSON object; `v` and `seq` are added). */
  get context(): ContextFn | null {
    return this._context;
  }

  set context(fn: ContextFn | null) {
    this._context = typeof fn === 'function' ? fn : null;
    this.contextChanged();
  }

  /** Tell the agent the screen changed (coalesced over 80 ms; unchanged contexts are not resent). */
  contextChanged(): void {
    window.clearTimeout(this.contextTimer);
    this.contextTimer = window.setTimeout(() => void this.sendContext(), CONTEXT_DELAY_MS);
  }

  /** The declaration sent on kaiwa.ui.declare: `{"v": 1, "actions": [...]}`. Throws on a bad action set. */
  declaration(): { v: 1; actions: { name: string; description: string; parameters: Record<string, unknown> }[] } {
    const actions = Object.entries(this._actions).map(([name, a]) => {
      if (!NAME.test(name)) throw new Error(`kaiwa-voice: action name ${JSON.stringify(name)} must match ${NAME}`);
      if (!a || typeof a.handler !== 'function') throw new Error(`kaiwa-voice: action ${name} has no handler`);
      return { name, description: String(a.description ?? name), parameters: a.parameters ?? { type: 'object', properties: {} } };
    });
    if (actions.length > MAX_ACTIONS) throw new Error(`kaiwa-voice: at most ${MAX_ACTIONS} actions`);
    const body = { v: 1 as const, actions };
    if (bytes(JSON.stringify(body)) > MAX_DECLARATION_BYTES) throw new Error(`kaiwa-voice: the declaration is larger than ${MAX_DECLARATION_BYTES} bytes`);
    return body;
  }

  /** The context as sent: the host's object plus `v` and `seq`, bounded to 4,096 bytes. */
  screenContext(): Record<string, unknown> {
    let host: Record<string, unknown> = {};
    try {
      const got = this._context?.();
      if (got && typeof got === 'object' && !Array.isArray(got)) host = got;
    } catch (err) {
      console.warn('kaiwa-voice: the context function failed', err);
      host = { error: 'the page could not describe its screen' };
    }
    const ctx: Record<string, unknown> = { ...host, v: 1, seq: this.state.contextSeq };
    // too big: halve `visible` (the usual long list) until it fits, else send a stub
    while (bytes(JSON.stringify(ctx)) > MAX_CONTEXT_BYTES && Array.isArray(ctx.visible) && ctx.visible.length > 0) {
      ctx.visible = ctx.visible.slice(0, Math.floor(ctx.visible.length / 2));
    }
    if (bytes(JSON.stringify(ctx)) > MAX_CONTEXT_BYTES) {
      return { v: 1, seq: this.state.contextSeq, view: typeof host.view === 'string' ? host.view.slice(0, 100) : null, truncated: true };
    }
    return ctx;
  }

  async start(): Promise<void> {
    if (this.room) return;
    this.setError(null);
    this.state.connection = 'connecting';
    this.render();
    void this.meter.resume(); // in the click's user gesture
    try {
      const key = this.getAttribute('token-key') ?? '';
      const token = await fetchToken(this.getAttribute('token-url') || '/token', key ? { Authorization: `Bearer ${key}` } : {});
      const r = createRoom();
      this.room = this.talkKey.room = r;
      this.wire(r);
      // Confirm / Decline for the action the agent waits on (its kaiwa.confirmation)
      this.confirmPrompt = mountConfirmPrompt(this.confirmSlot, r);
      await r.connect(token.server_url, token.participant_token);
      this.state.connection = 'connected';
      this.refreshAgent(r);
      void r.startAudio().catch(() => undefined);
      try {
        await r.localParticipant.setMicrophoneEnabled(true, { echoCancellation: true, noiseSuppression: true, autoGainControl: true });
        this.meter.setTrack('user', r.localParticipant.getTrackPublication(Track.Source.Microphone)?.track?.mediaStreamTrack);
      } catch (err) {
        this.setError(`${t('err.micOther', { detail: String((err as Error).message ?? err) })}`);
      }
    } catch (err) {
      await this.stop();
      this.setError(String((err as Error).message ?? err));
    }
    this.render();
  }

  async stop(): Promise<void> {
    const r = this.room;
    this.room = undefined;
    window.clearTimeout(this.contextTimer);
    Object.assign(this.state, { connection: 'disconnected', agent: 'absent', agentIdentity: null, tools: [], declaredTo: null, declaredTools: [], muted: false });
    this.lastContext = '';
    this.confirmPrompt?.destroy();
    this.confirmPrompt = undefined;
    this.talkKey.setEnabled(false);
    this.talkKey.room = undefined;
    this.meter.stop();
    this.el.audio.replaceChildren();
    if (r) {
      r.removeAllListeners();
      await r.disconnect();
    }
    this.render();
  }

  /** Stop the agent's speech now (RPC kaiwa.interrupt). */
  async interrupt(): Promise<void> {
    const r = this.room;
    if (!r || !this.state.agentIdentity) return;
    try {
      await r.localParticipant.performRpc({ destinationIdentity: this.state.agentIdentity, method: RPC_INTERRUPT, payload: '{}' });
    } catch (err) {
      this.setError(t('err.interrupt', { detail: String((err as Error).message ?? err) }));
    }
  }

  async toggleMute(): Promise<void> {
    const r = this.room;
    if (!r) return;
    this.state.muted = !this.state.muted;
    await r.localParticipant.setMicrophoneEnabled(!this.state.muted).catch(() => undefined);
    this.render();
  }

  disconnectedCallback(): void {
    void this.stop();
  }

  attributeChangedCallback(): void {
    /* read on the next start() */
  }

  // ------------------------------------------------------------ room

  private wire(r: Room): void {
    r.registerTextStreamHandler(TOPIC_TRANSCRIPTION, (reader, { identity }) => {
      void this.transcript.consume(reader, identity, identity === r.localParticipant.identity ? 'user' : 'agent');
    });
    r.registerRpcMethod(RPC_ACTION, (data) => this.onAction(data));
    const refresh = () => this.refreshAgent(r);
    r.on(RoomEvent.ParticipantConnected, refresh)
      .on(RoomEvent.ParticipantDisconnected, refresh)
      .on(RoomEvent.ParticipantAttributesChanged, refresh)
      .on(RoomEvent.ConnectionStateChanged, (s: ConnectionState) => {
        if (this.room !== r) return;
        if (s === ConnectionState.Disconnected) void this.stop();
        else if (s === ConnectionState.Reconnecting || s === ConnectionState.SignalReconnecting) this.state.connection = 'reconnecting';
        else if (s === ConnectionState.Connected) this.state.connection = 'connected';
        this.render();
      })
      .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, p: RemoteParticipant) => {
        if (track.kind !== Track.Kind.Audio) return;
        const el = track.attach();
        el.dataset.participant = p.identity;
        this.el.audio.append(el);
        if (p.identity === this.state.agentIdentity || !this.state.agentIdentity) this.meter.setTrack('agent', track.mediaStreamTrack);
      })
      .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
        track.detach().forEach((el) => el.remove());
        this.meter.setTrack('agent', undefined);
      });
  }

  private refreshAgent(r: Room): void {
    if (this.room !== r) return;
    const agent = findAgent(r);
    this.state.agentIdentity = agent?.identity ?? null;
    this.state.agent = agent ? (agent.attributes[ATTR_AGENT_STATE] ?? 'initializing') : 'waiting';
    this.state.tools = parseTools(agent?.attributes[ATTR_TOOLS]);
    this.talkKey.follow(agent?.attributes);
    if (!agent) this.state.declaredTo = null;
    else if (agent.attributes[PROTOCOL_ATTRIBUTE] === PROTOCOL_VERSION && this.state.declaredTo !== agent.identity) void this.declareTo(agent.identity);
    this.render();
  }

  // ------------------------------------------------------------ protocol v1

  private declaring: string | null = null;

  private async declareTo(agentIdentity: string): Promise<void> {
    const r = this.room;
    if (!r || this.declaring === agentIdentity) return;
    let payload: string;
    try {
      payload = JSON.stringify(this.declaration());
    } catch (err) {
      this.setError(String((err as Error).message));
      return;
    }
    this.declaring = agentIdentity;
    try {
      for (let attempt = 0; attempt < 3 && this.room === r; attempt++) {
        try {
          const raw = await r.localParticipant.performRpc({ destinationIdentity: agentIdentity, method: RPC_DECLARE, payload, responseTimeout: 5000 });
          const answer = JSON.parse(raw) as { tools?: unknown };
          this.state.declaredTo = agentIdentity;
          this.state.declaredTools = Array.isArray(answer.tools) ? answer.tools.map(String) : [];
          this.lastContext = '';
          await this.sendContext(true);
          this.dispatchEvent(new CustomEvent('kaiwa-declared', { detail: { tools: this.state.declaredTools } }));
          this.render();
          return;
        } catch (err) {
          console.warn('kaiwa-voice: declaration failed', err);
          await new Promise((res) => setTimeout(res, 500 * (attempt + 1)));
        }
      }
    } finally {
      this.declaring = null;
    }
  }

  private async sendContext(force = false): Promise<void> {
    const r = this.room;
    const agent = this.state.declaredTo;
    if (!r || !agent) return;
    const body = this.screenContext();
    const key = JSON.stringify({ ...body, seq: 0 });
    if (!force && key === this.lastContext) return;
    this.lastContext = key;
    body.seq = ++this.state.contextSeq;
    try {
      await r.localParticipant.performRpc({ destinationIdentity: agent, method: RPC_CONTEXT, payload: JSON.stringify(body), responseTimeout: 5000 });
    } catch (err) {
      this.lastContext = '';
      console.warn('kaiwa-voice: context not sent', err);
    }
  }

  /** RPC kaiwa.ui.action {id, action, args} → the host handler → {ok, message, context} | {ok: false, error, message}. */
  private async onAction(data: RpcInvocationData): Promise<string> {
    let answer: { ok: boolean; message: string; error?: 'refused' | 'invalid' };
    try {
      if (data.callerIdentity !== this.state.agentIdentity) throw new Error('only the agent of this call may act on the page');
      const body = JSON.parse(data.payload) as { action?: unknown; args?: unknown };
      const name = String(body.action);
      const action = Object.prototype.hasOwnProperty.call(this._actions, name) ? this._actions[name] : undefined;
      const args = body.args ?? {};
      if (!action) answer = { ok: false, error: 'invalid', message: `unknown action ${name}` };
      else if (typeof args !== 'object' || args === null || Array.isArray(args)) answer = { ok: false, error: 'invalid', message: 'arguments must be an object' };
      else answer = normalise(await action.handler(args as Record<string, unknown>));
    } catch (err) {
      const message = String((err as Error)?.message ?? err).slice(0, 500);
      answer = { ok: false, error: err instanceof InvalidAction ? 'invalid' : 'refused', message };
    }
    this.state.actionsHandled++;
    // let the host's DOM settle (a render in a microtask or the next frame) before reading its context
    await new Promise((res) => setTimeout(res, 0));
    await this.sendContext();
    this.dispatchEvent(new CustomEvent('kaiwa-action', { detail: { action: safeName(data.payload), answer } }));
    return JSON.stringify({ ...answer, context: this.screenContext() });
  }

  // ------------------------------------------------------------ view

  private setError(text: string | null): void {
    this.state.error = text;
    this.render();
  }

  private render(): void {
    const s = this.state;
    const live = this.room !== undefined;
    this.dataset.connection = s.connection;
    this.dataset.agent = s.agent;
    const key = (s.connection === 'connected' ? `agent.${s.agent}` : `conn.${s.connection}`) as Key;
    this.el.state.textContent = safeT(key, s.agent);
    this.el.state.dataset.state = s.connection === 'connected' ? s.agent : s.connection;
    this.el.tools.hidden = s.tools.length === 0;
    this.el.tools.textContent = s.tools.length ? t('running', { tools: s.tools.join(', ') }) : '';
    this.el.start.hidden = live;
    (this.el.start as HTMLButtonElement).disabled = s.connection === 'connecting';
    this.el.stop.hidden = !live;
    (this.el.mute as HTMLButtonElement).disabled = !live;
    this.el.mute.textContent = s.muted ? t('unmute') : t('mute');
    this.el.mute.setAttribute('aria-pressed', String(s.muted));
    (this.el.interrupt as HTMLButtonElement).disabled = !live || !s.agentIdentity;
    this.el.interrupt.classList.toggle('attention', s.agent === 'speaking');
    this.el.error.hidden = !s.error;
    this.el.error.textContent = s.error ?? '';
    this.el.audio.closest('.panel')!.setAttribute('data-agent', s.agent);
  }
}

function normalise(result: HandlerResult): { ok: boolean; message: string; error?: 'refused' | 'invalid' } {
  if (result === undefined || result === null) return { ok: true, message: 'Done.' };
  if (typeof result === 'string') return { ok: true, message: result.slice(0, 500) };
  const message = String(result.message ?? '').slice(0, 500);
  if (result.ok === false) return { ok: false, error: result.error === 'invalid' ? 'invalid' : 'refused', message };
  return { ok: true, message: message || 'Done.' };
}

function safeName(payload: string): string {
  try {
    return String((JSON.parse(payload) as { action?: unknown }).action ?? '');
  } catch {
    return '';
  }
}

function safeT(key: Key, fallback: string): string {
  try {
    return t(key);
  } catch {
    return fallback;
  }
}

function bytes(s: string): number {
  return new TextEncoder().encode(s).length;
}

if (!customElements.get('kaiwa-voice')) customElements.define('kaiwa-voice', KaiwaVoice);

declare global {
  interface HTMLElementTagNameMap {
    'kaiwa-voice': KaiwaVoice;
  }
}
