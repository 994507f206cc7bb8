// Push-to-talk: a hold-to-talk button and the Space key, for the caller page, the console
// and the <kaiwa-voice> widget.
//
// The mode is never the page's: the worker runs a call push-to-talk when its credential says
// so (the token server signs kaiwa.turn_mode into a counter's tokens) or when the worker is
// configured so for staff, and announces it on its participant as `kaiwa.turn_mode`. A page
// cannot turn a counter back into an open mic.
// Press → RPC kaiwa.ptt.start (the worker opens Gemini's activity and lets the microphone
// through); release → RPC kaiwa.ptt.end (activity end: Gemini answers; the microphone is cut
// off at the worker again). The RPCs go out in order; the release waits RELEASE_TAIL_MS so
// the last syllable, still in flight, is not clipped.

import type { Room } from 'livekit-client';

export const ATTR_TURN_MODE = 'kaiwa.turn_mode';
export const PUSH_TO_TALK = 'push_to_talk';
export const RPC_PTT_START = 'kaiwa.ptt.start';
export const RPC_PTT_END = 'kaiwa.ptt.end';
export const RELEASE_TAIL_MS = 150;

export interface TalkKeyLabels {
  idle: string;
  held: string;
  hint: string;
}

export const PTT_CSS = `
.ptt { touch-action: none; user-select: none; -webkit-user-select: none; }
.ptt[data-held="true"] { background: var(--danger, #c0392b); border-color: var(--danger, #c0392b); color: #fff; }
.ptt[data-held="true"]::before { content: "● "; }
`;

function typing(target: EventTarget | null): boolean {
  // inside a shadow root the event's target is the host; look at what really has focus
  let el: Element | null = target instanceof Element ? target : null;
  while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
  return (
    el instanceof HTMLInputElement ||
    el instanceof HTMLTextAreaElement ||
    el instanceof HTMLSelectElement ||
    (el instanceof HTMLElement && el.isContentEditable)
  );
}

export class TalkKey {
  readonly button: HTMLButtonElement;
  room: Room | undefined;
  enabled = false;
  held = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly agentIdentity: () => string | null,
    private readonly labels: () => TalkKeyLabels,
    opts: { id?: string; className?: string } = {},
  ) {
    const b = document.createElement('button');
    b.type = 'button';
    if (opts.id) b.id = opts.id;
    b.className = opts.className ?? 'btn ptt';
    b.hidden = true;
    b.setAttribute('part', 'talk');
    this.button = b;
    b.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      b.setPointerCapture(e.pointerId);
      this.press();
    });
    for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture'] as const) {
      b.addEventListener(ev, () => this.release());
    }
    b.addEventListener('contextmenu', (e) => e.preventDefault()); // long press on tablets
    document.addEventListener('keydown', (e) => {
      if (!this.enabled || e.code !== 'Space' || typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      e.preventDefault(); // no page scroll, no click on a focused button
      if (!e.repeat) this.press();
    });
    document.addEventListener('keyup', (e) => {
      if (e.code !== 'Space' || !this.held) return;
      e.preventDefault();
      this.release();
    });
    window.addEventListener('blur', () => this.release()); // a key released elsewhere
    this.render();
  }

  /** Follow the agent's announced turn mode (shown only when the call is push-to-talk). */
  follow(agentAttributes: Record<string, string> | undefined): void {
    this.setEnabled(agentAttributes?.[ATTR_TURN_MODE] === PUSH_TO_TALK);
  }

  setEnabled(on: boolean): void {
    if (!on) this.release();
    this.enabled = on;
    this.render();
  }

  press(): void {
    if (!this.enabled || this.held) return;
    this.held = true;
    this.render();
    this.send(RPC_PTT_START);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.render();
    const r = this.room;
    window.setTimeout(() => this.send(RPC_PTT_END, r), RELEASE_TAIL_MS);
  }

  /** Re-read the labels (after a language change). */
  render(): void {
    const b = this.button;
    const l = this.labels();
    b.hidden = !this.enabled;
    b.dataset.held = String(this.held);
    b.setAttribute('aria-pressed', String(this.held));
    b.textContent = this.held ? l.held : l.idle;
    b.title = l.hint;
  }

  private send(method: string, room: Room | undefined = this.room): void {
    const agent = this.agentIdentity();
    if (!room || !agent) return;
    this.chain = this.chain
      .then(() => room.localParticipant.performRpc({ destinationIdentity: agent, method, payload: '{}', responseTimeout: 5000 }))
      .catch((err) => console.warn(`kaiwa: ${method} failed`, err));
  }
}
