// Call records in the console: the call list, one call's detail (transcript with tool calls and
// recoveries inline, usage, cost, turn latency) and the calls on a case. Data from
// GET /api/console/calls, /api/console/calls/{id} and the case detail's `calls`
// (token_server/console.py, desk/calls.py).

import { formatDate, lang } from '../i18n';
import { ct, type CKey } from './i18n';

export interface CallUsage {
  input_audio: number;
  input_text: number;
  input_image: number;
  input_cached: number;
  output_audio: number;
  output_text: number;
}

export interface CallRow {
  id: number;
  ref: string;
  scope: string;
  room: string;
  jobs: string[];
  started_at: string;
  ended_at: string | null;
  end_reason: string | null;
  role: string | null;
  identity: string | null;
  channel: string | null;
  model: string | null;
  usage: CallUsage;
  cost: number;
  currency: string | null;
  segments: number;
  tool_calls: number;
  recoveries: number;
  turns: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  purged_at: string | null;
  duration_s: number | null;
}

export type TimelineItem =
  | { kind: 'segment'; at: string; speaker: string; text: string; interrupted: boolean }
  | {
      kind: 'tool';
      at: string;
      call_key: string;
      name: string;
      arguments: string;
      outcome: string;
      duration_ms: number;
      error: string | null;
      case_id: string | null;
    }
  | { kind: 'recovery'; at: string; recovery: string; duration_s: number; detail: Record<string, unknown> };

export interface CallDetail {
  call: CallRow;
  timeline: TimelineItem[];
  turns: { at: string; latency_ms: number; tool_ms: number }[];
}

export const CALL_COLUMNS = ['ref', 'started_at', 'role', 'identity', 'duration', 'end_reason', 'cost', 'tools'] as const;

// ---------------------------------------------------------------- formatting

export function formatDuration(seconds: number | null): string {
  if (seconds === null) return ct('ongoing');
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** The estimated cost in the call's currency (yen without decimals, others to 4 places). */
export function formatCost(cost: number, currency: string | null): string {
  const code = (currency || 'JPY').toUpperCase();
  try {
    return new Intl.NumberFormat(lang === 'ja' ? 'ja-JP' : 'en-US', {
      style: 'currency',
      currency: code,
      minimumFractionDigits: code === 'JPY' ? 2 : 4,
      maximumFractionDigits: 4,
    }).format(cost);
  } catch {
    return `${cost.toFixed(4)} ${code}`;
  }
}

/** Time into the call, "+1:05". */
function offset(at: string, start: string): string {
  const ms = Date.parse(at) - Date.parse(start);
  return Number.isNaN(ms) ? '' : `+${formatDuration(ms / 1000)}`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---------------------------------------------------------------- the list

export function callHeader(): HTMLElement[] {
  return CALL_COLUMNS.map((key) => {
    const th = el('th');
    th.scope = 'col';
    th.dataset.col = key;
    th.textContent = ct(`ccol.${key}` as CKey);
    return th;
  });
}

export function callRowEl(c: CallRow, i: number, cursor: number, onOpen: (ref: string, i: number) => void): HTMLElement {
  const tr = el('tr');
  tr.id = `call-row-${c.id}`;
  tr.dataset.callId = c.ref;
  tr.dataset.index = String(i);
  tr.classList.toggle('cursor', i === cursor);
  const cells: [string, string][] = [
    ['ref', c.ref],
    ['started_at', formatDate(c.started_at)],
    ['role', c.role ?? '—'],
    ['identity', c.identity ?? '—'],
    ['duration', formatDuration(c.duration_s)],
    ['end_reason', c.end_reason ?? (c.ended_at ? '—' : ct('ongoing'))],
    ['cost', formatCost(c.cost, c.currency)],
    ['tools', String(c.tool_calls)],
  ];
  for (const [key, text] of cells) {
    const td = el('td', undefined, text);
    td.dataset.col = key;
    tr.append(td);
  }
  tr.addEventListener('click', () => onOpen(c.ref, i));
  return tr;
}

// ---------------------------------------------------------------- the calls on a case

export function caseCallsEl(calls: CallRow[], onOpen: (ref: string) => void): HTMLElement[] {
  if (calls.length === 0) return [el('li', 'muted', ct('noCaseCalls'))];
  return calls.map((c) => {
    const li = el('li');
    li.dataset.callId = c.ref;
    const b = el('button', 'link-button');
    b.type = 'button';
    b.textContent = `${c.ref} · ${formatDate(c.started_at)} · ${c.identity ?? c.role ?? '—'}`;
    b.addEventListener('click', () => onOpen(c.ref));
    const meta = el('p', 'meta', `${formatDuration(c.duration_s)} · ${c.end_reason ?? ct('ongoing')} · ${formatCost(c.cost, c.currency)}`);
    li.append(b, meta);
    return li;
  });
}

// ---------------------------------------------------------------- one call

export interface CallDetailEls {
  title: HTMLElement;
  fields: HTMLElement;
  timeline: HTMLElement;
  purged: HTMLElement;
}

export function renderCallDetail(ui: CallDetailEls, d: CallDetail, onOpenCase: (id: string) => void): void {
  const c = d.call;
  ui.title.textContent = `${c.ref} · ${c.identity ?? c.role ?? c.room}`;
  const u = c.usage;
  const fields: [string, string, string][] = [
    ['started', ct('ccol.started_at'), formatDate(c.started_at)],
    ['duration', ct('ccol.duration'), formatDuration(c.duration_s)],
    ['end-reason', ct('ccol.end_reason'), c.end_reason ?? ct('ongoing')],
    ['who', ct('ccol.identity'), [c.role, c.identity].filter(Boolean).join(' · ') || '—'],
    ['channel', ct('channel'), c.channel ?? '—'],
    ['room', ct('room'), c.room],
    ['jobs', ct('jobs'), c.jobs.join(', ') || '—'],
    ['model', ct('model'), c.model ?? '—'],
    [
      'usage',
      ct('usage'),
      `${ct('usageIn', { total: u.input_audio + u.input_text + u.input_image, audio: u.input_audio, text: u.input_text, image: u.input_image, cached: u.input_cached })}; ${ct('usageOut', { total: u.output_audio + u.output_text, audio: u.output_audio, text: u.output_text })}`,
    ],
    ['cost', ct('cost'), formatCost(c.cost, c.currency)],
    [
      'latency',
      ct('latency'),
      c.latency_p50_ms === null ? ct('noLatency') : ct('latencyValue', { p50: c.latency_p50_ms, p95: c.latency_p95_ms ?? '—', n: c.turns }),
    ],
    ['recoveries', ct('recoveries'), recoverySummary(d)],
  ];
  ui.fields.replaceChildren(
    ...fields.flatMap(([id, k, v]) => {
      const dt = el('dt', undefined, k);
      const dd = el('dd', undefined, v);
      dd.id = `call-${id}`;
      return [dt, dd];
    }),
  );
  ui.purged.hidden = !c.purged_at;
  ui.purged.textContent = c.purged_at ? ct('purged', { at: formatDate(c.purged_at) }) : '';
  const items = d.timeline.map((item, i) => timelineEl(item, i, c.started_at, onOpenCase));
  ui.timeline.replaceChildren(...(items.length ? items : [el('li', 'muted', ct('emptyTimeline'))]));
}

function recoverySummary(d: CallDetail): string {
  const kinds = d.timeline.filter((i) => i.kind === 'recovery').map((i) => (i.kind === 'recovery' ? `${i.recovery} (${i.duration_s.toFixed(1)} s)` : ''));
  if (kinds.length) return kinds.join(', ');
  return d.call.recoveries ? String(d.call.recoveries) : ct('noRecoveries');
}

function timelineEl(item: TimelineItem, i: number, start: string, onOpenCase: (id: string) => void): HTMLElement {
  const li = el('li', `tl tl-${item.kind}`);
  li.dataset.kind = item.kind;
  li.dataset.index = String(i);
  const when = el('span', 'when', offset(item.at, start));
  when.title = formatDate(item.at);
  if (item.kind === 'segment') {
    li.dataset.speaker = item.speaker;
    li.dataset.interrupted = String(item.interrupted);
    const head = el('p', 'meta');
    head.append(when, ' · ', el('span', 'speaker', item.speaker === 'caller' ? ct('caller') : ct('agentSpeaker')));
    if (item.interrupted) head.append(' ', el('span', 'flag interrupted', ct('interrupted')));
    li.append(head, el('p', 'text', item.text));
    return li;
  }
  if (item.kind === 'tool') {
    li.dataset.outcome = item.outcome;
    li.dataset.tool = item.name;
    const head = el('p', 'meta');
    const outcome = el('span', 'flag outcome', ct(`outcome.${item.outcome}` as CKey) || item.outcome);
    outcome.dataset.outcome = item.outcome;
    head.append(when, ' · ', `${ct('tool')} `, el('code', 'tool-name', item.name), ' ', outcome, ` · ${item.duration_ms} ms`);
    li.append(head);
    if (item.arguments) {
      const args = el('p', 'args');
      args.append(el('code', undefined, item.arguments));
      li.append(args);
    }
    if (item.error) li.append(el('p', 'text error-text', item.error));
    if (item.case_id) {
      const b = el('button', 'link-button case-link', ct('openCase', { id: item.case_id }));
      b.type = 'button';
      b.dataset.caseId = item.case_id;
      b.addEventListener('click', () => onOpenCase(item.case_id!));
      li.append(b);
    }
    return li;
  }
  li.dataset.recovery = item.recovery;
  const head = el('p', 'meta');
  head.append(when, ' · ', `${ct('recovery')} `, el('code', 'recovery-kind', item.recovery), ` · ${item.duration_s.toFixed(1)} s`);
  li.append(head);
  const detail = Object.entries(item.detail ?? {});
  if (detail.length) li.append(el('p', 'args', detail.map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' · ')));
  return li;
}
