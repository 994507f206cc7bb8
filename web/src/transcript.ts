// Live transcript built from `lk.transcription` text streams plus echoed `lk.chat` messages.

import type { TextStreamReader } from 'livekit-client';
import { t } from './i18n';

export type Speaker = 'user' | 'agent';

interface Entry {
  el: HTMLElement;
  textEl: HTMLElement;
  generation: number;
  final: boolean;
}

const SEGMENT_ID = 'lk.segment_id';
const FINAL = 'lk.transcription_final';

export class Transcript {
  private readonly entries = new Map<string, Entry>();
  private localCount = 0;
  /** Follow new messages unless the person scrolled up to read older ones. */
  private stuck = true;

  constructor(private readonly root: HTMLElement) {
    root.addEventListener('scroll', () => (this.stuck = this.nearBottom()), { passive: true });
    // The panel shrinks when the case card opens (and on window resizes): keep the newest
    // message in view instead of losing the bottom.
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(() => {
        if (this.stuck) this.scrollToEnd();
      }).observe(root);
    }
  }

  clear(): void {
    this.entries.clear();
    this.root.querySelectorAll('.msg').forEach((el) => el.remove());
    this.syncEmpty();
  }

  /**
   * Consume one `lk.transcription` stream. Agent speech arrives as one stream of deltas per
   * segment (final=true arrives in the trailer); user speech arrives as one whole-text stream per
   * interim result, the last one with final=true. Either way: the newest stream of a segment
   * replaces the text shown for it.
   */
  async consume(reader: TextStreamReader, senderIdentity: string, speaker: Speaker): Promise<void> {
    const attrs = reader.info.attributes ?? {};
    const key = `${senderIdentity}\u0000${attrs[SEGMENT_ID] ?? reader.info.id}`;
    const entry = this.entries.get(key) ?? this.create(key, speaker, senderIdentity);
    const generation = ++entry.generation;
    const openedFinal = attrs[FINAL] === 'true';
    // a final stream always wins; an interim one only while it is the newest and nothing is final
    const owns = () => openedFinal || (generation === entry.generation && !entry.final);
    let text = '';
    try {
      for await (const chunk of reader) {
        text += chunk;
        if (owns()) this.setText(entry, text, openedFinal);
      }
    } catch (err) {
      console.warn('kaiwa: transcription stream ended early', err);
    }
    // the trailer's attributes are merged into reader.info.attributes when the stream closes
    const isFinal = reader.info.attributes?.[FINAL] === 'true';
    if (isFinal || owns()) this.setText(entry, text, isFinal);
    if (!entry.textEl.textContent && generation === entry.generation) {
      entry.el.remove(); // e.g. an agent turn interrupted before any words
      this.entries.delete(key);
      this.syncEmpty();
    }
  }

  /** Echo a message the user typed (sent on `lk.chat`). */
  addTyped(text: string): void {
    const entry = this.create(`local-${++this.localCount}`, 'user', '');
    entry.el.dataset.source = 'chat';
    this.setText(entry, text, true);
  }

  private create(key: string, speaker: Speaker, identity: string): Entry {
    const el = document.createElement('div');
    el.className = `msg msg-${speaker}`;
    el.dataset.speaker = speaker;
    el.dataset.final = 'false';
    if (identity) el.dataset.identity = identity;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = speaker === 'user' ? t('you') : t('agent');
    const textEl = document.createElement('p');
    textEl.className = 'text';
    el.append(who, textEl);
    const entry: Entry = { el, textEl, generation: 0, final: false };
    this.entries.set(key, entry);
    const stick = this.stuck || this.nearBottom();
    this.root.append(el);
    this.syncEmpty();
    if (stick) this.scrollToEnd();
    return entry;
  }

  private setText(entry: Entry, text: string, final: boolean): void {
    const stick = this.stuck || this.nearBottom();
    entry.textEl.textContent = text;
    entry.final = entry.final || final;
    entry.el.dataset.final = String(entry.final);
    if (stick) this.scrollToEnd();
  }

  private nearBottom(): boolean {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  private scrollToEnd(): void {
    this.root.scrollTop = this.root.scrollHeight;
    this.stuck = true;
  }

  private syncEmpty(): void {
    const empty = this.root.querySelector<HTMLElement>('.empty');
    if (empty) empty.hidden = this.root.querySelector('.msg') !== null;
  }
}
