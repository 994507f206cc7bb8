// Confirm / Decline for the action the agent is waiting on (web/README.md "Confirmation prompt").
//
// The agent publishes the newest pending confirmation as its attribute `kaiwa.confirmation`
// (JSON {id, kind, summary, expires_in_s}; "" when none). While one is set, this shows its
// summary with two buttons; a press calls RPC `kaiwa.confirm` {confirmation_id, answer} on
// the agent, and the answer ({ok, error?}) is shown as a sentence. The press only records
// the answer: the agent performs the action itself (and says so), and clears the attribute.
//
// Self-contained for any page (the caller page, the widget's shadow root, the console):
//   const prompt = mountConfirmPrompt(container, room);   // ... prompt.destroy() when the room goes

import { ConnectionState, RoomEvent, type Room } from 'livekit-client';
import { findAgent } from './connection';
import { t } from './i18n';

export const ATTR_CONFIRMATION = 'kaiwa.confirmation';
export const RPC_CONFIRM = 'kaiwa.confirm';
const MAX_SUMMARY = 500;
const RESULT_MS = 15_000; // how long the answer's sentence stays
const RPC_TIMEOUT_MS = 10_000;

export interface PendingConfirmation {
  id: string;
  kind: string;
  summary: string;
  expires_in_s: number;
}

export interface ConfirmStrings {
  title: string;
  confirm: string;
  decline: string;
  sending: string;
  confirmed: string;
  declined: string;
  /** `{detail}` is replaced by the reason. */
  failed: string;
}

export type ConfirmAnswer = 'yes' | 'no';

export interface ConfirmPrompt {
  /** The prompt's root element (inside `container`). */
  readonly element: HTMLElement;
  /** The confirmation shown now, or null. */
  readonly current: PendingConfirmation | null;
  /** What the buttons do. */
  answer(answer: ConfirmAnswer): Promise<void>;
  /** Re-read the agent's attribute (done on every attribute / participant event anyway). */
  refresh(): void;
  /** Remove the prompt and stop listening to the room. */
  destroy(): void;
}

/** The strings in the page's language (src/i18n.ts). */
export function confirmStrings(): ConfirmStrings {
  return {
    title: t('confirm.title'),
    confirm: t('confirm.yes'),
    decline: t('confirm.no'),
    sending: t('confirm.sending'),
    confirmed: t('confirm.confirmed'),
    declined: t('confirm.declined'),
    failed: t('confirm.failed'),
  };
}

/** `kaiwa.confirmation`: anything malformed (or "") counts as none. */
export function parseConfirmation(raw: string | undefined): PendingConfirmation | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<PendingConfirmation> | null;
    if (!v || typeof v.id !== 'string' || !v.id || typeof v.summary !== 'string') return null;
    const ttl = typeof v.expires_in_s === 'number' && v.expires_in_s > 0 ? v.expires_in_s : 120;
    return { id: v.id.slice(0, 64), kind: typeof v.kind === 'string' ? v.kind : '', summary: v.summary.slice(0, MAX_SUMMARY), expires_in_s: ttl };
  } catch {
    return null;
  }
}

let mounted = 0;

/** Show the agent's pending confirmation in `container` for as long as `room` lives. */
export function mountConfirmPrompt(container: HTMLElement, room: Room, strings: ConfirmStrings = confirmStrings()): ConfirmPrompt {
  const n = ++mounted;
  const root = container.getRootNode() as Document | ShadowRoot;
  addStyle(root);
  const el = document.createElement('div');
  el.className = 'kaiwa-confirm';
  el.setAttribute('part', 'confirm');
  el.setAttribute('aria-live', 'polite');
  el.innerHTML = `
    <section class="kaiwa-confirm-box" role="group" tabindex="-1" aria-labelledby="kaiwa-confirm-title-${n}" aria-describedby="kaiwa-confirm-summary-${n}" hidden>
      <p class="kaiwa-confirm-title" id="kaiwa-confirm-title-${n}"></p>
      <p class="kaiwa-confirm-summary" id="kaiwa-confirm-summary-${n}" part="confirm-summary"></p>
      <div class="kaiwa-confirm-buttons">
        <button type="button" class="kaiwa-confirm-yes" data-answer="yes" part="confirm-yes"></button>
        <button type="button" class="kaiwa-confirm-no" data-answer="no" part="confirm-no"></button>
      </div>
    </section>
    <p class="kaiwa-confirm-result" part="confirm-result" hidden></p>`;
  const box = el.querySelector<HTMLElement>('.kaiwa-confirm-box')!;
  const summary = el.querySelector<HTMLElement>('.kaiwa-confirm-summary')!;
  const yes = el.querySelector<HTMLButtonElement>('.kaiwa-confirm-yes')!;
  const no = el.querySelector<HTMLButtonElement>('.kaiwa-confirm-no')!;
  const result = el.querySelector<HTMLElement>('.kaiwa-confirm-result')!;
  el.querySelector('.kaiwa-confirm-title')!.textContent = strings.title;
  yes.textContent = strings.confirm;
  no.textContent = strings.decline;
  container.append(el);

  let current: PendingConfirmation | null = null;
  let busy = false;
  let returnFocus: Element | null = null;
  let expiryTimer: number | undefined;
  let resultTimer: number | undefined;

  // Empty: out of the layout (no gap in a flex/grid parent) but still a live region, so a
  // prompt or an answer appearing later is announced.
  const sync = (): void => void el.classList.toggle('kaiwa-confirm-empty', box.hidden && result.hidden);

  const say = (text: string, level: 'info' | 'ok' | 'error'): void => {
    window.clearTimeout(resultTimer);
    result.textContent = text;
    result.dataset.level = level;
    result.hidden = !text;
    sync();
    if (text && level !== 'info') resultTimer = window.setTimeout(() => say('', 'info'), RESULT_MS);
  };

  const setBusy = (value: boolean): void => {
    busy = value;
    yes.disabled = no.disabled = value;
    box.setAttribute('aria-busy', String(value));
  };

  const show = (c: PendingConfirmation): void => {
    current = c;
    box.dataset.confirmationId = c.id;
    box.dataset.kind = c.kind;
    summary.textContent = c.summary;
    setBusy(false);
    say('', 'info');
    const wasHidden = box.hidden;
    box.hidden = false;
    sync();
    window.clearTimeout(expiryTimer); // a fallback: the agent clears the attribute itself
    expiryTimer = window.setTimeout(() => current?.id === c.id && hide(), c.expires_in_s * 1000);
    // Bring a keyboard or screen-reader user to the question (its title and summary are
    // read), but never take focus from someone typing, and never onto Confirm itself: an
    // Enter meant for something else must not confirm a consequential action.
    const active = root.activeElement;
    if (wasHidden && !isTyping(active)) {
      returnFocus = active;
      box.focus({ preventScroll: false });
    }
  };

  const hide = (): void => {
    current = null;
    window.clearTimeout(expiryTimer);
    const hadFocus = box.contains(root.activeElement);
    box.hidden = true;
    sync();
    delete box.dataset.confirmationId;
    delete box.dataset.kind;
    setBusy(false);
    if (hadFocus && returnFocus instanceof HTMLElement && returnFocus.isConnected) returnFocus.focus();
    returnFocus = null;
  };

  const refresh = (): void => {
    const agent = room.state === ConnectionState.Disconnected ? undefined : findAgent(room);
    const next = parseConfirmation(agent?.attributes[ATTR_CONFIRMATION]);
    if (next?.id === current?.id) return;
    if (next) show(next);
    else hide();
  };

  const answer = async (a: ConfirmAnswer): Promise<void> => {
    const c = current;
    const agent = findAgent(room);
    if (!c || busy || !agent) return;
    setBusy(true);
    say(strings.sending, 'info');
    let reply: { ok?: unknown; error?: unknown } = {};
    try {
      const raw = await room.localParticipant.performRpc({
        destinationIdentity: agent.identity,
        method: RPC_CONFIRM,
        payload: JSON.stringify({ confirmation_id: c.id, answer: a }),
        responseTimeout: RPC_TIMEOUT_MS,
      });
      reply = JSON.parse(raw) as typeof reply;
    } catch (err) {
      reply = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    if (reply.ok === true) {
      say(a === 'yes' ? strings.confirmed : strings.declined, 'ok');
      if (current?.id === c.id) hide(); // answered; the agent clears the attribute too
    } else {
      say(strings.failed.replace('{detail}', String(reply.error ?? 'no answer')), 'error');
      if (current?.id === c.id) setBusy(false);
    }
  };

  sync();
  yes.addEventListener('click', () => void answer('yes'));
  no.addEventListener('click', () => void answer('no'));
  const events = [RoomEvent.ParticipantAttributesChanged, RoomEvent.ParticipantConnected, RoomEvent.ParticipantDisconnected, RoomEvent.Disconnected] as const;
  for (const ev of events) room.on(ev, refresh);
  refresh();

  return {
    element: el,
    get current() {
      return current;
    },
    answer,
    refresh,
    destroy() {
      for (const ev of events) room.off(ev, refresh);
      window.clearTimeout(expiryTimer);
      window.clearTimeout(resultTimer);
      if (box.contains(root.activeElement) && returnFocus instanceof HTMLElement && returnFocus.isConnected) returnFocus.focus();
      el.remove();
    },
  };
}

function isTyping(el: Element | null): boolean {
  if (!(el instanceof HTMLElement)) return false;
  return el.isContentEditable || el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement;
}

/** The prompt's styles, once per document or shadow root. Colours follow the page's palette
 * (`--accent`, `--danger`, ...) or the widget's (`--kaiwa-accent`, ...), with fallbacks. */
function addStyle(root: Document | ShadowRoot): void {
  const parent = root instanceof ShadowRoot ? root : root.head;
  if (parent.querySelector('style[data-kaiwa-confirm]')) return;
  const style = document.createElement('style');
  style.dataset.kaiwaConfirm = '';
  style.textContent = CONFIRM_PROMPT_CSS;
  parent.append(style);
}

export const CONFIRM_PROMPT_CSS = `
.kaiwa-confirm {
  --kc-accent: var(--kaiwa-accent, var(--accent, #2f6f8f));
  --kc-accent-text: var(--accent-text, #ffffff);
  --kc-danger: var(--kaiwa-danger, var(--danger, #b4413b));
  --kc-bg: var(--kaiwa-bg, var(--surface, #ffffff));
  --kc-fg: var(--kaiwa-fg, var(--text, #1c1e23));
  --kc-muted: var(--kaiwa-muted, var(--muted, #5b606b));
  --kc-border: var(--kaiwa-border, var(--border, #dedbd2));
  --kc-focus: var(--kaiwa-accent, var(--focus, #1f6fd1));
  display: grid; gap: 8px; width: 100%; text-align: start;
}
.kaiwa-confirm-box {
  display: grid; gap: 8px; padding: 12px 14px; border-radius: 12px;
  border: 2px solid var(--kc-accent); background: var(--kc-bg); color: var(--kc-fg);
}
.kaiwa-confirm-box:focus { outline: none; }
.kaiwa-confirm-box:focus-visible { outline: 3px solid var(--kc-focus); outline-offset: 2px; }
.kaiwa-confirm-title { margin: 0; font-size: 0.85em; font-weight: 650; color: var(--kc-accent); }
.kaiwa-confirm-summary { margin: 0; overflow-wrap: anywhere; }
.kaiwa-confirm-buttons { display: flex; flex-wrap: wrap; gap: 8px; }
.kaiwa-confirm-buttons button {
  font: inherit; font-weight: 600; min-height: 44px; min-width: 44px; padding: 8px 18px;
  border-radius: 10px; border: 1px solid var(--kc-border); background: transparent; color: var(--kc-fg); cursor: pointer;
}
.kaiwa-confirm-buttons .kaiwa-confirm-yes { background: var(--kc-accent); border-color: var(--kc-accent); color: var(--kc-accent-text); }
.kaiwa-confirm-buttons .kaiwa-confirm-no { color: var(--kc-danger); border-color: color-mix(in srgb, var(--kc-danger) 45%, var(--kc-border)); }
.kaiwa-confirm-buttons button:disabled { opacity: 0.5; cursor: default; }
.kaiwa-confirm-buttons button:focus-visible { outline: 3px solid var(--kc-focus); outline-offset: 2px; }
.kaiwa-confirm-result { margin: 0; font-size: 0.9em; color: var(--kc-muted); }
.kaiwa-confirm-result[data-level="error"] { color: var(--kc-danger); }
.kaiwa-confirm [hidden] { display: none !important; }
.kaiwa-confirm.kaiwa-confirm-empty {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap;
}
`;
