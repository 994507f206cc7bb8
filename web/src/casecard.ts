// Case card panel, driven by the agent through RPC methods the page registers.

import { RpcError } from 'livekit-client';
import { formatDate, formatYen, returnKindName, statusName, t, type Key } from './i18n';

/**
 * Error code returned to the agent for a malformed payload. Codes 1001-1999 are reserved by
 * LiveKit for built-in errors (1400 means "unsupported method"), so the page uses 2400.
 */
export const INVALID_PAYLOAD = 2400;

export interface CaseNote {
  at: string;
  author: string;
  text: string;
}

export interface CaseHistoryItem {
  at: string;
  actor: string;
  action: string;
  old: string;
  new: string;
}

export interface CaseData {
  id: string;
  customer_name: string;
  phone: string;
  email: string;
  device_type: string;
  symptom: string;
  status: string;
  quote_yen: number | null;
  notes: CaseNote[];
  return_date: string;
  return_kind: string;
  created_at: string;
  updated_at: string;
  history: CaseHistoryItem[];
}

function invalid(message: string): never {
  throw new RpcError(INVALID_PAYLOAD, `invalid payload: ${message}`);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parsePayload(payload: string): Obj {
  let value: unknown;
  try {
    value = JSON.parse(payload || '{}');
  } catch {
    invalid('not JSON');
  }
  if (!isObj(value)) invalid('expected a JSON object');
  return value;
}

/** Optional text field: string/number → string, null/undefined → "", anything else rejected. */
function str(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return invalid(`${where}.${key} must be a string`);
}

function list<T>(o: Obj, key: string, item: (x: Obj, where: string) => T): T[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid(`case.${key} must be an array`);
  return v.map((x, i) => (isObj(x) ? item(x, `case.${key}[${i}]`) : invalid(`case.${key}[${i}] must be an object`)));
}

export function parseCase(payload: string): CaseData {
  const c = parsePayload(payload).case;
  if (!isObj(c)) invalid('"case" object missing');
  const id = str(c, 'id', 'case');
  if (!id) invalid('case.id missing');
  let quote: number | null = null;
  if (c.quote_yen !== undefined && c.quote_yen !== null && c.quote_yen !== '') {
    quote = Number(c.quote_yen);
    if (!Number.isFinite(quote)) invalid('case.quote_yen must be a number');
  }
  return {
    id,
    customer_name: str(c, 'customer_name', 'case'),
    phone: str(c, 'phone', 'case'),
    email: str(c, 'email', 'case'),
    device_type: str(c, 'device_type', 'case'),
    symptom: str(c, 'symptom', 'case'),
    status: str(c, 'status', 'case'),
    quote_yen: quote,
    return_date: str(c, 'return_date', 'case'),
    return_kind: str(c, 'return_kind', 'case'),
    created_at: str(c, 'created_at', 'case'),
    updated_at: str(c, 'updated_at', 'case'),
    notes: list(c, 'notes', (n, w) => ({ at: str(n, 'at', w), author: str(n, 'author', w), text: str(n, 'text', w) })),
    history: list(c, 'history', (h, w) => ({
      at: str(h, 'at', w),
      actor: str(h, 'actor', w),
      action: str(h, 'action', w),
      old: str(h, 'old', w),
      new: str(h, 'new', w),
    })),
  };
}

export function parseStatusChange(payload: string): { caseId: string; from: string; to: string } {
  const p = parsePayload(payload);
  const caseId = str(p, 'case_id', 'payload');
  const to = str(p, 'to', 'payload');
  if (!caseId) invalid('case_id missing');
  if (!to) invalid('"to" missing');
  return { caseId, from: str(p, 'from', 'payload'), to };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e as T;
}

export class CaseCard {
  private readonly card = byId<HTMLElement>('case-card');
  private readonly title = byId<HTMLElement>('case-title');
  private readonly status = byId<HTMLElement>('case-status');
  private readonly change = byId<HTMLElement>('case-change');
  private readonly fields = byId<HTMLElement>('case-fields');
  private readonly notes = byId<HTMLElement>('case-notes');
  private readonly history = byId<HTMLOListElement>('case-history');
  private current?: CaseData;

  constructor(
    private readonly toast: (text: string) => void,
    private readonly onChange: (caseId: string | null) => void,
  ) {
    byId('case-close').addEventListener('click', () => this.hide());
  }

  // --- RPC handlers (payload string in, "ok" out; RpcError on bad input) ---

  showCase = (payload: string): string => {
    this.render(parseCase(payload));
    return 'ok';
  };

  statusChanged = (payload: string): string => {
    const { caseId, from, to } = parseStatusChange(payload);
    const c = this.current;
    if (!c || this.card.hidden || c.id !== caseId) {
      this.toast(t('statusChangedToast', { id: caseId, from: statusName(from || '?'), to: statusName(to) }));
      return 'ok';
    }
    c.history.push({ at: new Date().toISOString(), actor: '', action: 'status', old: from || c.status, new: to });
    c.status = to;
    this.renderStatus(c.status);
    this.renderHistory(c.history);
    this.change.textContent = t('statusChangedInline', { from: statusName(from || '?'), to: statusName(to) });
    this.change.hidden = false;
    for (const e of [this.status, this.change]) {
      e.classList.remove('flash');
      void e.offsetWidth; // restart the animation
      e.classList.add('flash');
    }
    return 'ok';
  };

  clear = (payload: string): string => {
    parsePayload(payload);
    this.hide();
    return 'ok';
  };

  // --- rendering ---

  hide(): void {
    this.card.hidden = true;
    this.card.dataset.caseId = '';
    this.current = undefined;
    this.onChange(null);
  }

  private render(c: CaseData): void {
    this.current = c;
    this.card.dataset.caseId = c.id;
    this.title.textContent = c.id;
    this.change.hidden = true;
    this.renderStatus(c.status);

    const rows: [Key, Node | string][] = [];
    if (c.customer_name) rows.push(['field.customer_name', c.customer_name]);
    if (c.phone) rows.push(['field.phone', link(`tel:${c.phone.replace(/[^\d+]/g, '')}`, c.phone)]);
    if (c.email) rows.push(['field.email', link(`mailto:${c.email}`, c.email)]);
    if (c.device_type) rows.push(['field.device_type', c.device_type]);
    if (c.symptom) rows.push(['field.symptom', c.symptom]);
    rows.push(['field.quote_yen', c.quote_yen === null ? t('notQuoted') : formatYen(c.quote_yen)]);
    if (c.return_date || c.return_kind) {
      const parts = [c.return_date && formatDate(c.return_date), c.return_kind && returnKindName(c.return_kind)];
      rows.push(['field.return_date', parts.filter(Boolean).join(' · ')]);
    }
    if (c.created_at) rows.push(['field.created_at', formatDate(c.created_at)]);
    if (c.updated_at) rows.push(['field.updated_at', formatDate(c.updated_at)]);
    this.fields.replaceChildren(
      ...rows.map(([key, value]) => {
        const row = el('div', `row row-${key.slice(6)}`);
        const dd = el('dd');
        dd.append(value);
        row.append(el('dt', undefined, t(key)), dd);
        return row;
      }),
    );

    this.notes.replaceChildren(
      ...(c.notes.length
        ? [...c.notes].reverse().sort(newestFirst).map((n) => {
            const li = el('li');
            li.append(el('p', 'note-text', n.text), el('p', 'meta', [formatDate(n.at), n.author].filter(Boolean).join(' · ')));
            return li;
          })
        : [el('li', 'none', t('noNotes'))]),
    );
    this.renderHistory(c.history);
    this.card.hidden = false;
    this.onChange(c.id);
  }

  private renderStatus(status: string): void {
    this.status.dataset.status = status;
    this.status.textContent = statusName(status);
  }

  private renderHistory(history: CaseHistoryItem[]): void {
    this.history.replaceChildren(
      ...(history.length
        ? [...history].reverse().sort(newestFirst).map((h) => {
            const li = el('li');
            const what = el('p', 'hist-what');
            if (h.old || h.new) {
              if (h.old) what.append(badge(h.old), el('span', 'arrow', ' → '));
              what.append(badge(h.new));
            } else {
              what.textContent = h.action;
            }
            const meta = [formatDate(h.at), h.actor && t('historyBy', { actor: h.actor })];
            if ((h.old || h.new) && h.action && !/status/i.test(h.action)) meta.push(h.action);
            li.append(what, el('p', 'meta', meta.filter(Boolean).join(' · ')));
            return li;
          })
        : [el('li', 'none', t('noHistory'))]),
    );
  }
}

function link(href: string, text: string): HTMLAnchorElement {
  const a = el('a', undefined, text);
  a.href = href;
  return a;
}

function badge(status: string): HTMLElement {
  const b = el('span', 'status-badge small', status ? statusName(status) : '—');
  b.dataset.status = status;
  return b;
}

function newestFirst(a: { at: string }, b: { at: string }): number {
  return (Date.parse(b.at) || 0) - (Date.parse(a.at) || 0);
}
