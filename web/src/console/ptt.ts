// Push-to-talk for the console: a hold-to-talk button and the Space key.
//
// The worker decides the mode (KAIWA_TURN_MODE=push_to_talk, staff calls) and says so on its
// participant as `kaiwa.turn_mode`; the page cannot turn a counter back into an open mic.
// Press → RPC kaiwa.ptt.start (the worker opens Gemini's activity and lets the microphone
// through); release → RPC kaiwa.ptt.end (activity end: Gemini answers; the microphone is cut
// off at the worker again). The RPCs go out in order; the release waits RELEASE_TAIL_MS so
// the last syllable, still in flight, is not clipped.

import type { Room } from 'livekit-client';
import { ct } from './i18n';

export const ATTR_TURN_MODE = 'kaiwa.turn_mode';
export const RPC_PTT_START = 'kaiwa.ptt.start';
export const RPC_PTT_END = 'kaiwa.ptt.end';
export const RELEASE_TAIL_MS = 150;

export const PTT_CSS = `
.ptt { touch-action: none; user-select: none; -webkit-user-select: none; }
.ptt[data-held="true"] { background: var(--danger, #c0392b); border-color: var(--danger, #c0392b); color: #fff; }
.ptt[data-held="true"]::before { content: "● "; }
`;

function typing(target: EventTarget | null): boolean {
  return (
    target instanceof HTMLInputElement ||
    target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement ||
    (target instanceof HTMLElement && target.isContentEditable)
  );
}

export class TalkKey {
  readonly button: HTMLButtonElement;
  room: Room | undefined;
  enabled = false;
  held = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly agentIdentity: () => string | null) {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = 'ptt';
    b.className = 'btn ptt';
    b.hidden = true;
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

  /** Shown only when the agent of this call runs push-to-talk. */
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

  private send(method: string, room: Room | undefined = this.room): void {
    const agent = this.agentIdentity();
    if (!room || !agent) return;
    this.chain = this.chain
      .then(() => room.localParticipant.performRpc({ destinationIdentity: agent, method, payload: '{}', responseTimeout: 5000 }))
      .catch((err) => console.warn(`kaiwa console: ${method} failed`, err));
  }

  private render(): void {
    const b = this.button;
    b.hidden = !this.enabled;
    b.dataset.held = String(this.held);
    b.setAttribute('aria-pressed', String(this.held));
    b.textContent = this.held ? ct('pttHeld') : ct('pttIdle');
    b.title = ct('pttHint');
  }
}
