// kaiwa staff console: case queue, case detail, counts by status, and a voice agent that
// operates the same screen through page-declared actions (see web/README.md).

import { ConnectionState, RoomEvent, Track, type RemoteParticipant, type RemoteTrack, type Room, type RpcInvocationData } from 'livekit-client';
import { ATTR_AGENT_STATE, ATTR_TOOLS, TOPIC_TRANSCRIPTION, createRoom, findAgent, parseTools } from '../connection';
import { formatDate, formatYen, returnKindName, statusName, t } from '../i18n';
import { Transcript } from '../transcript';
import {
  ACTIONS,
  DEVICES,
  MAX_CONTEXT_BYTES,
  PROTOCOL_ATTRIBUTE,
  PROTOCOL_VERSION,
  RPC_ACTION,
  RPC_CONTEXT,
  RPC_DECLARE,
  SORT_KEYS,
  STATUSES,
  dayProblem,
  declaration,
  done,
  invalid,
  invalidArgs,
  refused,
  type ActionAnswer,
} from './actions';
import { callHeader, callRowEl, caseCallsEl, renderCallDetail, type CallDetail, type CallRow } from './calls';
import { applyConsoleText, ct, deviceName, type CKey } from './i18n';
import { JOBS_CSS, JobsPanel, TOPIC_JOBS } from '../jobs/panel';
import { CASE_OPS_CSS, CaseOps, type OpsCase } from './caseops';
import { mountConfirmPrompt, type ConfirmPrompt } from '../confirm_prompt';
import { PTT_CSS, TalkKey } from '../talk_key';
import { NewCaseForm } from './newcase';

// ---------------------------------------------------------------- types and state

interface Row {
  id: string;
  customer_name: string;
  device_type: string;
  status: string;
  quote_yen: number | null;
  return_date: string | null;
  return_kind: string | null;
  created_at: string;
  updated_at: string;
  changed_by: string | null;
  symptom: string;
}

interface Detail extends Row, OpsCase {
  phone: string | null;
  email: string | null;
  notes: { at: string; author: string; text: string }[];
  history: { at: string; actor: string; action: string; old: string | null; new: string | null }[];
  calls?: CallRow[];
}

type SortKey = (typeof SORT_KEYS)[number];
type Field = 'search' | 'note';

export interface ConsoleState {
  view: 'queue' | 'case' | 'new_case' | 'calls' | 'call';
  /** from/to: the days the cases were received (YYYY-MM-DD, both included; '' = open) */
  filters: { status: string; device: string; q: string; from: string; to: string };
  /** why the queue's filters were refused (a sentence under the filters), or null */
  filterError: string | null;
  /** the business's time zone (the server's KAIWA_TIMEZONE): what the days are in */
  timezone: string | null;
  sort: { by: SortKey; dir: 'asc' | 'desc' };
  rows: Row[];
  total: number;
  cursor: number;
  selected: string | null;
  detail: Detail | null;
  note: string;
  focus: Field | null;
  counts: Record<string, number>;
  calls: CallRow[];
  callCursor: number;
  call: CallDetail | null;
  callFrom: 'calls' | 'case';
  loading: boolean;
  identity: string | null;
  voice: 'off' | 'connecting' | 'on';
  agent: string;
  agentIdentity: string | null;
  tools: string[];
  declaredTo: string | null;
  contextSeq: number;
  error: string | null;
}

const QUEUE_COLUMNS: SortKey[] = ['id', 'customer_name', 'device_type', 'status', 'quote_yen', 'return_date', 'created_at', 'updated_at'];
const KEY_STORAGE = 'kaiwa.console.key';
const MAX_VISIBLE_IN_CONTEXT = 40;

const state: ConsoleState = {
  view: 'queue',
  filters: { status: '', device: '', q: '', from: '', to: '' },
  filterError: null,
  timezone: null,
  sort: { by: 'updated_at', dir: 'desc' },
  rows: [],
  total: 0,
  cursor: 0,
  selected: null,
  detail: null,
  note: '',
  focus: null,
  counts: {},
  calls: [],
  callCursor: 0,
  call: null,
  callFrom: 'calls',
  loading: false,
  identity: null,
  voice: 'off',
  agent: 'absent',
  agentIdentity: null,
  tools: [],
  declaredTo: null,
  contextSeq: 0,
  error: null,
};

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const ui = {
  summary: $('summary-list'),
  queueView: $('queue-view'),
  headers: $('queue-headers'),
  body: $('queue-body'),
  count: $('queue-count'),
  empty: $('queue-empty'),
  queueScroll: $('queue-scroll'),
  status: $<HTMLSelectElement>('filter-status'),
  device: $<HTMLSelectElement>('filter-device'),
  q: $<HTMLInputElement>('filter-q'),
  from: $<HTMLInputElement>('filter-from'),
  to: $<HTMLInputElement>('filter-to'),
  filterError: $('filter-error'),
  filters: $<HTMLFormElement>('filters'),
  newCase: $<HTMLButtonElement>('new-case'),
  newCaseView: $('new-case-view'),
  newCaseTitle: $('new-case-title'),
  newCaseBack: $<HTMLButtonElement>('new-case-back'),
  newCaseCancel: $<HTMLButtonElement>('new-case-cancel'),
  newCaseForm: $<HTMLFormElement>('new-case-form'),
  detail: $('detail'),
  detailTitle: $('detail-title'),
  detailStatus: $('detail-status'),
  detailFields: $('detail-fields'),
  detailNotes: $('detail-notes'),
  detailHistory: $('detail-history'),
  detailScroll: $('detail-scroll'),
  back: $<HTMLButtonElement>('detail-back'),
  prev: $<HTMLButtonElement>('detail-prev'),
  next: $<HTMLButtonElement>('detail-next'),
  noteForm: $<HTMLFormElement>('note-form'),
  noteInput: $<HTMLTextAreaElement>('note-input'),
  noteDirty: $('note-dirty'),
  voiceStart: $<HTMLButtonElement>('voice-start'),
  voiceStop: $<HTMLButtonElement>('voice-stop'),
  agent: $('agent-state'),
  tools: $('tool-indicator'),
  who: $('who'),
  error: $('error'),
  keyForm: $<HTMLFormElement>('key-form'),
  keyInput: $<HTMLInputElement>('key-input'),
  toast: $('toast'),
  audioSink: $('audio-sink'),
  transcript: $('transcript'),
  tabCases: $<HTMLButtonElement>('tab-cases'),
  tabCalls: $<HTMLButtonElement>('tab-calls'),
  detailCalls: $('detail-calls'),
  callsView: $('calls-view'),
  callsHeaders: $('calls-headers'),
  callsBody: $('calls-body'),
  callsCount: $('calls-count'),
  callsEmpty: $('calls-empty'),
  callsScroll: $('calls-scroll'),
  callDetail: $('call-detail'),
  callTitle: $('call-title'),
  callFields: $('call-fields'),
  callTimeline: $('call-timeline'),
  callPurged: $('call-purged'),
  callBack: $<HTMLButtonElement>('call-back'),
  callScroll: $('call-scroll'),
};

let room: Room | undefined;
const jobsStyle = document.createElement('style');
jobsStyle.textContent = JOBS_CSS;
document.head.append(jobsStyle);
const jobs = new JobsPanel(document.getElementById('jobs') ?? document.createElement('section'));
jobs.agentIdentity = () => state.agentIdentity;
const transcript = new Transcript(ui.transcript);
// push-to-talk (the credential's or the worker's mode): a hold-to-talk button beside "End voice"
const pttStyle = document.createElement('style');
pttStyle.textContent = PTT_CSS;
document.head.append(pttStyle);
const talkKey = new TalkKey(
  () => state.agentIdentity,
  () => ({ idle: ct('pttIdle'), held: ct('pttHeld'), hint: ct('pttHint') }),
  { id: 'ptt' },
);
ui.voiceStop.after(talkKey.button);
// Confirm / Decline for the action the agent waits on (its kaiwa.confirmation), per call
const confirmSlot = document.getElementById('confirm') ?? document.createElement('div');
let confirmPrompt: ConfirmPrompt | undefined;

// ---------------------------------------------------------------- data

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    /** the input the sentence is about (400 {"field"}), when the server names one */
    readonly field?: string,
  ) {
    super(detail);
  }
}

function authHeaders(): Record<string, string> {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, {
    ...init,
    headers: { Accept: 'application/json', ...authHeaders(), ...(init.headers as Record<string, string> | undefined) },
    cache: 'no-store',
    credentials: 'same-origin',
  });
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const obj = (body ?? {}) as { detail?: string; error?: string; field?: string | null };
    throw new HttpError(res.status, obj.detail || obj.error || `${res.status} ${res.statusText}`, obj.field ?? undefined);
  }
  return body as T;
}

function handleLoadError(err: unknown): void {
  if (err instanceof HttpError && err.status === 401) {
    ui.keyForm.hidden = false;
    ui.keyInput.focus();
    return;
  }
  state.error = err instanceof HttpError && err.status === 403 ? ct('forbidden') : ct('failed', { detail: String((err as Error).message ?? err) });
  render();
}

let loadSeq = 0;

/** Reload the queue for the current filters and sort (older answers are dropped). */
async function loadQueue(): Promise<void> {
  const seq = ++loadSeq;
  const params = new URLSearchParams({ sort: state.sort.by, dir: state.sort.dir });
  if (state.filters.status) params.set('status', state.filters.status);
  if (state.filters.device) params.set('device', state.filters.device);
  if (state.filters.q) params.set('q', state.filters.q);
  if (state.filters.from) params.set('from', state.filters.from);
  if (state.filters.to) params.set('to', state.filters.to);
  state.loading = true;
  render();
  try {
    const body = await api<{ cases: Row[]; total: number }>(`api/console/cases?${params}`);
    if (seq !== loadSeq) return;
    const keep = state.rows[state.cursor]?.id;
    state.rows = body.cases;
    state.total = body.total;
    const at = keep ? state.rows.findIndex((r) => r.id === keep) : -1;
    state.cursor = at >= 0 ? at : 0;
    state.error = null;
    state.filterError = null;
  } catch (err) {
    if (seq !== loadSeq) return;
    if (err instanceof HttpError && err.status === 400) {
      // a filter the server refused (a bad date, a range backwards): say why, show nothing
      state.filterError = err.detail;
      state.rows = [];
      state.total = 0;
    } else handleLoadError(err);
  } finally {
    if (seq === loadSeq) {
      state.loading = false;
      render();
    }
  }
}

async function loadSummary(): Promise<void> {
  try {
    const body = await api<{ counts: Record<string, number> }>('api/console/summary');
    state.counts = body.counts;
    render();
  } catch (err) {
    handleLoadError(err);
  }
}

async function loadMe(): Promise<boolean> {
  try {
    const me = await api<{ identity: string; timezone?: string }>('api/console/me');
    state.identity = me.identity;
    state.timezone = me.timezone ?? null;
    ui.keyForm.hidden = true;
    return true;
  } catch (err) {
    handleLoadError(err);
    return false;
  }
}

// ---------------------------------------------------------------- operations (clicks, keys and voice)

async function setFilters(change: Partial<ConsoleState['filters']>): Promise<void> {
  Object.assign(state.filters, change);
  state.cursor = 0;
  const { from, to } = state.filters;
  if (from && to && from > to) {
    // by hand the date pickers give real days, so a backwards range is the one mistake left
    loadSeq++;
    Object.assign(state, { filterError: ct('badRange'), rows: [], total: 0, loading: false });
    render();
    return;
  }
  await loadQueue();
}

async function setSort(by: SortKey, dir?: 'asc' | 'desc'): Promise<void> {
  const same = state.sort.by === by;
  state.sort = { by, dir: dir ?? (same ? (state.sort.dir === 'asc' ? 'desc' : 'asc') : by === 'updated_at' ? 'desc' : 'asc') };
  await loadQueue();
}

async function openCase(id: string): Promise<Detail> {
  return showDetail(await api<Detail>(`api/console/cases/${encodeURIComponent(id)}`));
}

function showDetail(detail: Detail): Detail {
  if (state.selected !== detail.id) state.note = '';
  state.view = 'case';
  state.selected = detail.id;
  state.detail = detail;
  const at = state.rows.findIndex((r) => r.id === detail.id);
  if (at >= 0) state.cursor = at;
  render();
  ui.detailTitle.focus({ preventScroll: true });
  return detail;
}

// ---------------------------------------------------------------- a new case by hand

const newCase = new NewCaseForm<Detail>(ui.newCaseForm, {
  api,
  async created(detail) {
    showToast(ct('caseCreated', { id: detail.id }));
    void loadSummary();
    await loadQueue(); // the queue has it (when the filters let it show) ...
    showDetail(detail); // ... and it is open
  },
  changed: () => publishContext(),
});

function showNewCase(): void {
  Object.assign(state, { view: 'new_case', detail: null, selected: null, note: '', call: null });
  render();
  newCase.open();
}

function closeNewCase(): void {
  state.view = 'queue';
  render();
  ui.body.focus({ preventScroll: true });
}

function closeCase(): void {
  state.view = 'queue';
  state.detail = null;
  state.selected = null;
  state.note = '';
  render();
  ui.body.focus({ preventScroll: true });
}

// ---------------------------------------------------------------- calls (desk call records)

async function loadCalls(): Promise<void> {
  const body = await api<{ calls: CallRow[] }>('api/console/calls?limit=100');
  const keep = state.calls[state.callCursor]?.ref;
  state.calls = body.calls;
  const at = keep ? state.calls.findIndex((c) => c.ref === keep) : -1;
  state.callCursor = at >= 0 ? at : 0;
  state.error = null;
}

/** The call list (reloaded each time it is shown: calls end and new ones start). */
async function showCalls(): Promise<void> {
  state.view = 'calls';
  state.call = null;
  render();
  ui.callsBody.focus({ preventScroll: true });
  try {
    await loadCalls();
  } catch (err) {
    handleLoadError(err);
  }
  render();
}

function showCases(): void {
  Object.assign(state, { view: 'queue', detail: null, selected: null, note: '', call: null });
  render();
  ui.body.focus({ preventScroll: true });
}

async function openCall(ref: string, from: 'calls' | 'case'): Promise<CallDetail> {
  const detail = await api<CallDetail>(`api/console/calls/${encodeURIComponent(ref)}`);
  state.call = detail;
  state.callFrom = from;
  state.view = 'call';
  const at = state.calls.findIndex((c) => c.ref === detail.call.ref);
  if (at >= 0) state.callCursor = at;
  render();
  ui.callScroll.scrollTo({ top: 0 });
  ui.callTitle.focus({ preventScroll: true });
  return detail;
}

function closeCall(): void {
  if (state.callFrom === 'case' && state.detail) {
    state.view = 'case';
    state.call = null;
    render();
    ui.detailTitle.focus({ preventScroll: true });
    return;
  }
  state.view = 'calls';
  state.call = null;
  render();
  ui.callsBody.focus({ preventScroll: true });
}

/** Move through the queue: in the detail view this opens the neighbouring case. */
async function step(delta: 1 | -1): Promise<Row | null> {
  if (state.rows.length === 0) return null;
  const from = state.view === 'case' && state.selected ? state.rows.findIndex((r) => r.id === state.selected) : state.cursor;
  const to = from + delta;
  if (to < 0 || to >= state.rows.length) return null;
  state.cursor = to;
  const target = state.rows[to]!;
  if (state.view === 'case') await openCase(target.id);
  else render();
  return target;
}

async function saveNote(): Promise<Detail> {
  const text = state.note.trim();
  if (!state.selected) throw new Error('no case is open');
  if (!text) throw new Error('the note is empty');
  const detail = await api<Detail>(`api/console/cases/${encodeURIComponent(state.selected)}/notes`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  state.detail = detail;
  state.note = '';
  render();
  showToast(ct('saved'));
  void loadQueue();
  return detail;
}

// edit contact, assign, reopen, payment, photos (caseops.ts): below the case's fields
const caseOpsStyle = document.createElement('style');
caseOpsStyle.textContent = CASE_OPS_CSS;
document.head.append(caseOpsStyle);
const caseOps = new CaseOps<Detail>({
  api,
  authHeaders,
  saved(detail, message) {
    if (state.selected !== detail.id) return;
    state.detail = detail;
    render();
    showToast(message);
    void loadQueue();
    void loadSummary();
  },
  failed: (message) => showToast(message),
});
ui.detailFields.after(caseOps.root);

function scroll(to: 'top' | 'bottom' | 'up' | 'down'): void {
  const el = state.view === 'case' ? ui.detailScroll : ui.queueScroll;
  const page = el.clientHeight * 0.8;
  const top = to === 'top' ? 0 : to === 'bottom' ? el.scrollHeight : el.scrollTop + (to === 'down' ? page : -page);
  el.scrollTo({ top, behavior: 'auto' });
  window.scrollTo({ top: to === 'top' ? 0 : to === 'bottom' ? document.body.scrollHeight : window.scrollY + (to === 'down' ? page : -page) });
}

function focusField(field: Field): void {
  state.focus = field;
  (field === 'search' ? ui.q : ui.noteInput).focus();
  publishContext();
}

// ---------------------------------------------------------------- rendering

function render(): void {
  ui.error.hidden = !state.error;
  ui.error.textContent = state.error ?? '';
  ui.who.textContent = state.identity ?? '';

  // summary
  const total = Object.values(state.counts).reduce((a, b) => a + b, 0);
  ui.summary.replaceChildren(
    summaryItem('', ct('total'), total),
    ...STATUSES.map((s) => summaryItem(s, statusName(s), state.counts[s] ?? 0)),
  );

  // queue
  ui.status.value = state.filters.status;
  ui.device.value = state.filters.device;
  if (document.activeElement !== ui.q) ui.q.value = state.filters.q;
  // a date being typed stays as it is; voice changes land once it is left
  if (document.activeElement !== ui.from && ui.from.value !== state.filters.from) ui.from.value = state.filters.from;
  if (document.activeElement !== ui.to && ui.to.value !== state.filters.to) ui.to.value = state.filters.to;
  ui.filterError.hidden = !state.filterError;
  ui.filterError.textContent = state.filterError ?? '';
  ui.from.setAttribute('aria-invalid', String(Boolean(state.filterError)));
  ui.to.setAttribute('aria-invalid', String(Boolean(state.filterError)));
  ui.newCaseView.hidden = state.view !== 'new_case';
  ui.headers.replaceChildren(...QUEUE_COLUMNS.map(header));
  ui.body.replaceChildren(...state.rows.map(rowEl));
  ui.body.setAttribute('aria-activedescendant', state.rows[state.cursor] ? `row-${state.rows[state.cursor]!.id}` : '');
  ui.empty.hidden = state.loading || state.rows.length > 0;
  ui.count.textContent = state.loading && state.rows.length === 0 ? ct('loading') : ct('shown', { n: state.rows.length, total: state.total });
  ui.queueView.dataset.loading = String(state.loading);
  ui.queueView.hidden = state.view !== 'queue';
  document.body.dataset.view = state.view;
  const onCalls = state.view === 'calls' || state.view === 'call';
  ui.tabCases.setAttribute('aria-current', onCalls ? 'false' : 'page');
  ui.tabCalls.setAttribute('aria-current', onCalls ? 'page' : 'false');

  // calls
  ui.callsView.hidden = state.view !== 'calls';
  ui.callsHeaders.replaceChildren(...callHeader());
  ui.callsBody.replaceChildren(...state.calls.map((c, i) => callRowEl(c, i, state.callCursor, (ref, at) => {
    state.callCursor = at;
    void openCall(ref, 'calls').catch(handleLoadError);
  })));
  ui.callsBody.setAttribute('aria-activedescendant', state.calls[state.callCursor] ? `call-row-${state.calls[state.callCursor]!.id}` : '');
  ui.callsEmpty.hidden = state.calls.length > 0;
  ui.callsCount.textContent = ct('callsShown', { n: state.calls.length });
  ui.callDetail.hidden = state.view !== 'call' || !state.call;
  ui.callDetail.dataset.callId = state.call?.call.ref ?? '';
  if (state.call) renderCallDetail({ title: ui.callTitle, fields: ui.callFields, timeline: ui.callTimeline, purged: ui.callPurged }, state.call, (id) => void openCase(id).catch(handleLoadError));

  // detail
  ui.detail.hidden = state.view !== 'case' || !state.detail;
  ui.detail.dataset.caseId = state.detail?.id ?? '';
  if (state.detail) renderDetail(state.detail);
  if (ui.noteInput.value !== state.note) ui.noteInput.value = state.note;
  ui.noteDirty.hidden = !state.note.trim();

  // voice
  ui.voiceStart.hidden = state.voice !== 'off';
  ui.voiceStop.hidden = state.voice === 'off';
  ui.agent.dataset.state = state.voice === 'off' ? 'absent' : state.agent;
  ui.agent.querySelector('.label')!.textContent =
    state.voice === 'off' ? ct('voiceOff') : state.voice === 'connecting' ? ct('voiceConnecting') : ct(`agent.${state.agent}` as CKey);
  ui.tools.hidden = state.tools.length === 0;
  ui.tools.textContent = ct('running', { tools: state.tools.join(', ') });

  publishContext();
}

function summaryItem(status: string, label: string, n: number): HTMLElement {
  const li = document.createElement('li');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'summary-item';
  b.dataset.status = status;
  b.setAttribute('aria-pressed', String(state.filters.status === status));
  b.innerHTML = '<span class="count"></span><span class="name"></span>';
  b.querySelector('.count')!.textContent = String(n);
  b.querySelector('.name')!.textContent = label;
  b.addEventListener('click', () => void setFilters({ status }).then(closeIfOpen));
  li.append(b);
  return li;
}

function closeIfOpen(): void {
  if (state.view === 'case') closeCase();
  else if (state.view !== 'queue') showCases();
}

function header(key: SortKey): HTMLElement {
  const th = document.createElement('th');
  th.scope = 'col';
  const active = state.sort.by === key;
  th.setAttribute('aria-sort', active ? (state.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none');
  const b = document.createElement('button');
  b.type = 'button';
  b.dataset.sort = key;
  b.textContent = ct(`col.${key}` as CKey) + (active ? (state.sort.dir === 'asc' ? ' ▲' : ' ▼') : '');
  b.addEventListener('click', () => void setSort(key));
  th.append(b);
  return th;
}

function rowEl(r: Row, i: number): HTMLElement {
  const tr = document.createElement('tr');
  tr.id = `row-${r.id}`;
  tr.dataset.caseId = r.id;
  tr.dataset.index = String(i);
  tr.classList.toggle('cursor', i === state.cursor);
  tr.classList.toggle('selected', r.id === state.selected);
  tr.setAttribute('aria-selected', String(r.id === state.selected));
  const cells: [string, string][] = [
    ['id', r.id],
    ['customer_name', r.customer_name],
    ['device_type', deviceName(r.device_type)],
    ['status', statusName(r.status)],
    ['quote_yen', r.quote_yen === null ? '—' : formatYen(r.quote_yen)],
    ['return_date', r.return_date ? formatDate(r.return_date) : '—'],
    ['created_at', formatDay(r.created_at)],
    ['updated_at', formatDay(r.updated_at)], // the day; the time is in the title and the history
  ];
  for (const [key, text] of cells) {
    const td = document.createElement('td');
    td.dataset.col = key;
    if (key === 'status') {
      const badge = document.createElement('span');
      badge.className = 'status-badge';
      badge.dataset.status = r.status;
      badge.textContent = text;
      td.append(badge);
    } else td.textContent = text;
    if (key === 'updated_at') td.title = formatDate(r.updated_at);
    tr.append(td);
  }
  tr.addEventListener('click', () => {
    state.cursor = i;
    void openCase(r.id).catch(handleLoadError);
  });
  return tr;
}

function renderDetail(d: Detail): void {
  ui.detailTitle.textContent = `${d.id} · ${d.customer_name}`;
  ui.detailStatus.dataset.status = d.status;
  ui.detailStatus.textContent = statusName(d.status);
  const at = state.rows.findIndex((r) => r.id === d.id);
  ui.prev.disabled = at <= 0;
  ui.next.disabled = at < 0 || at >= state.rows.length - 1;
  const fields: [string, string][] = [
    [ct('device'), deviceName(d.device_type)],
    [ct('symptom'), d.symptom],
    [ct('phone'), d.phone ?? '—'],
    [ct('email'), d.email ?? '—'],
    [ct('quote'), d.quote_yen === null ? ct('noQuote') : formatYen(d.quote_yen)],
    [ct('returnDate'), d.return_date ? `${formatDate(d.return_date)}${d.return_kind ? ` (${returnKindName(d.return_kind)})` : ''}` : ct('noReturn')],
  ];
  ui.detailFields.replaceChildren(
    ...fields.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
  const notes = [...d.notes].reverse().map((n) => {
    const li = document.createElement('li');
    li.innerHTML = '<p class="text"></p><p class="meta"></p>';
    li.querySelector('.text')!.textContent = n.text;
    li.querySelector('.meta')!.textContent = `${formatDate(n.at)} · ${n.author}`;
    return li;
  });
  if (notes.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = ct('noNotes');
    notes.push(li);
  }
  ui.detailNotes.replaceChildren(...notes);
  ui.detailHistory.replaceChildren(
    ...[...d.history].reverse().map((h) => {
      const li = document.createElement('li');
      li.dataset.action = h.action;
      li.innerHTML = '<p class="text"></p><p class="meta"><span class="when"></span> · <span class="changed-by"></span></p>';
      li.querySelector('.text')!.textContent = historyText(h);
      li.querySelector('.when')!.textContent = formatDate(h.at);
      li.querySelector('.changed-by')!.textContent = ct('changedBy', { who: h.actor });
      return li;
    }),
  );
  ui.detailCalls.replaceChildren(...caseCallsEl(d.calls ?? [], (ref) => void openCall(ref, 'case').catch(handleLoadError)));
  caseOps.show(d);
}

function historyText(h: Detail['history'][number]): string {
  if (h.action === 'created') return `${ct('created')}: ${statusName(h.new ?? '')}`;
  if (h.action === 'status') return `${statusName(h.old ?? '')} → ${statusName(h.new ?? '')}`;
  if (h.action === 'quote_yen') return `${ct('quote')}: ${h.new ? formatYen(Number(h.new)) : '—'}`;
  if (h.action === 'return_date') return `${ct('returnDate')}: ${h.new ? formatDate(h.new) : '—'}`;
  if (h.action === 'note') return ct('noteAdded');
  if (h.action === 'return_kind') return `${ct('returnDate')}: ${h.new ? returnKindName(h.new) : '—'}`;
  return `${h.action}: ${h.old ?? '—'} → ${h.new ?? '—'}`;
}

let dayFormat: Intl.DateTimeFormat | undefined;

/** The calendar day of an instant in the business's time zone: the day the date filter means. */
function formatDay(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  if (!dayFormat || dayFormat.resolvedOptions().timeZone !== (state.timezone ?? dayFormat.resolvedOptions().timeZone)) {
    const options: Intl.DateTimeFormatOptions = { dateStyle: 'medium' };
    try {
      dayFormat = new Intl.DateTimeFormat(document.documentElement.lang === 'ja' ? 'ja-JP' : 'en-GB', state.timezone ? { ...options, timeZone: state.timezone } : options);
    } catch {
      dayFormat = new Intl.DateTimeFormat(document.documentElement.lang === 'ja' ? 'ja-JP' : 'en-GB', options);
    }
  }
  return dayFormat.format(new Date(ms));
}

let toastTimer: number | undefined;
function showToast(text: string): void {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (ui.toast.hidden = true), 4000);
}

// ---------------------------------------------------------------- screen context

/** What the agent may know about the screen (bounded: MAX_CONTEXT_BYTES). */
export function screenContext(): Record<string, unknown> {
  const ctx: Record<string, unknown> = {
    v: 1,
    seq: state.contextSeq,
    view: state.view,
    filters: { status: state.filters.status || 'all', device: state.filters.device || 'all', text: state.filters.q, from: state.filters.from, to: state.filters.to },
    sort: { by: state.sort.by, direction: state.sort.dir },
    visible: state.rows.slice(0, MAX_VISIBLE_IN_CONTEXT).map((r) => r.id),
    total: state.total,
    cursor: state.rows[state.cursor]?.id ?? null,
    selected: state.selected,
    form:
      state.view === 'case' && state.selected
        ? { name: 'note', case_id: state.selected, fields: { note: state.note.slice(0, 500) }, dirty: state.note.trim() ? ['note'] : [] }
        : state.view === 'new_case'
          ? { name: 'new_case', dirty: newCase.dirty() } // which fields hold something, not what
          : null,
    focus: state.focus,
  };
  if (state.filterError) ctx.filter_error = state.filterError;
  if (state.view === 'call' && state.call) ctx.call = { id: state.call.call.ref, identity: state.call.call.identity, started_at: state.call.call.started_at };
  const selected = state.detail;
  if (selected) ctx.selected_summary = { id: selected.id, customer: selected.customer_name, status: selected.status, device: selected.device_type };
  // keep it under the limit: fewer visible ids first
  while (new TextEncoder().encode(JSON.stringify(ctx)).length > MAX_CONTEXT_BYTES && (ctx.visible as string[]).length > 0) {
    ctx.visible = (ctx.visible as string[]).slice(0, Math.floor((ctx.visible as string[]).length / 2));
  }
  return ctx;
}

let lastContext = '';
let contextTimer: number | undefined;

/** Send the context to the agent when it changed (coalesced over 80 ms). */
function publishContext(): void {
  window.clearTimeout(contextTimer);
  contextTimer = window.setTimeout(() => void sendContext(), 80);
}

async function sendContext(force = false): Promise<void> {
  const body = screenContext();
  const key = JSON.stringify({ ...body, seq: 0 });
  if (!force && key === lastContext) return;
  const r = room;
  const agent = state.declaredTo;
  if (!r || !agent) return;
  lastContext = key;
  body.seq = ++state.contextSeq;
  try {
    await r.localParticipant.performRpc({ destinationIdentity: agent, method: RPC_CONTEXT, payload: JSON.stringify(body), responseTimeout: 5000 });
  } catch (err) {
    lastContext = '';
    console.warn('kaiwa console: context not sent', err);
  }
}

// ---------------------------------------------------------------- page-declared actions

type Handler = (args: Record<string, unknown>) => Promise<ActionAnswer>;

const handlers: Record<string, Handler> = {
  async navigate(args) {
    if (args.view === 'calls') {
      await showCalls();
      return done(`Showing the ${state.calls.length} most recent calls.`);
    }
    closeIfOpen();
    return done('Showing the case queue.');
  },
  async filter(args) {
    const change: Partial<ConsoleState['filters']> = {};
    if (typeof args.status === 'string') change.status = args.status === 'all' ? '' : args.status;
    if (typeof args.device === 'string') change.device = args.device === 'all' ? '' : args.device;
    if (typeof args.text === 'string') change.q = args.text.trim();
    for (const end of ['from', 'to'] as const) {
      const value = args[end];
      if (typeof value !== 'string') continue;
      const day = value.trim();
      const problem = day ? dayProblem(end, day) : null;
      if (problem) return invalid(`${problem}; nothing changed`);
      change[end] = day;
    }
    if (Object.keys(change).length === 0) return invalid('give status, device, text, from or to');
    const from = change.from ?? state.filters.from;
    const to = change.to ?? state.filters.to;
    if (from && to && from > to) return invalid(`from (${from}) is after to (${to}); swap them or widen the range; nothing changed`);
    closeIfOpen();
    await setFilters(change);
    if (state.filterError) return refused(state.filterError);
    return done(`The queue now shows ${state.rows.length} case${state.rows.length === 1 ? '' : 's'}${describeFilters()}.`);
  },
  async sort(args) {
    await setSort(args.by as SortKey, (args.direction as 'asc' | 'desc' | undefined) ?? undefined);
    return done(`Sorted by ${state.sort.by}, ${state.sort.dir === 'asc' ? 'ascending' : 'descending'}.`);
  },
  async open_case(args) {
    let id = typeof args.case_id === 'string' ? args.case_id.trim().toUpperCase() : '';
    if (!id && typeof args.position === 'number') {
      const r = state.rows[args.position - 1];
      if (!r) return invalid(`there are only ${state.rows.length} cases on screen`);
      id = r.id;
    }
    if (!id) return invalid('give case_id or position');
    if (/^\d+$/.test(id)) id = `R-${id}`;
    try {
      const d = await openCase(id);
      return done(`Opened ${d.id} (${d.customer_name}, ${d.device_type}, ${d.status}).`);
    } catch (err) {
      return err instanceof HttpError && err.status === 404 ? invalid(err.detail) : refused(String((err as Error).message));
    }
  },
  async next() {
    const r = await step(1);
    return r ? done(state.view === 'case' ? `Opened the next case, ${r.id} (${r.customer_name}).` : `Moved to ${r.id}.`) : refused('this is the last case in the queue');
  },
  async previous() {
    const r = await step(-1);
    return r ? done(state.view === 'case' ? `Opened the previous case, ${r.id} (${r.customer_name}).` : `Moved to ${r.id}.`) : refused('this is the first case in the queue');
  },
  async scroll(args) {
    scroll(args.to as 'top' | 'bottom' | 'up' | 'down');
    return done(`Scrolled ${args.to}.`);
  },
  async focus_field(args) {
    if (args.field === 'note' && state.view !== 'case') return refused('open a case first: the note box is in the case view');
    focusField(args.field as Field);
    return done(`The cursor is in the ${args.field} field.`);
  },
  async fill_field(args) {
    const value = String(args.value);
    if (args.field === 'note') {
      if (state.view !== 'case') return refused('open a case first: the note box is in the case view');
      state.note = value;
      state.focus = 'note';
      render();
      return done(`Typed the note for ${state.selected}; it is not saved until submitted.`);
    }
    ui.q.value = value;
    state.focus = 'search';
    return done('Typed into the search box; submit it to search.');
  },
  async submit(args) {
    if (args.form === 'search') {
      closeIfOpen();
      await setFilters({ q: ui.q.value.trim() });
      return done(`Searched: ${state.rows.length} cases.`);
    }
    if (state.view !== 'case' || !state.selected) return refused('no case is open');
    if (!state.note.trim()) return invalid('the note is empty; fill it first');
    try {
      const d = await saveNote();
      return done(`Saved the note on ${d.id}.`);
    } catch (err) {
      return refused(String((err as Error).message));
    }
  },
  async close() {
    if (state.view !== 'case') return refused('no case is open');
    closeCase();
    return done('Closed the case; the queue is showing.');
  },
};

function describeFilters(): string {
  const parts = [];
  if (state.filters.status) parts.push(`status ${state.filters.status}`);
  if (state.filters.device) parts.push(`device ${state.filters.device}`);
  if (state.filters.q) parts.push(`matching "${state.filters.q}"`);
  const { from, to } = state.filters;
  if (from && to) parts.push(from === to ? `received on ${from}` : `received ${from} to ${to}`);
  else if (from) parts.push(`received on or after ${from}`);
  else if (to) parts.push(`received on or before ${to}`);
  return parts.length ? ` (${parts.join(', ')})` : ' (no filters)';
}

/** RPC kaiwa.ui.action: {id, action, args} → {ok, message, context} | {ok: false, error, message}. */
async function onAction(data: RpcInvocationData): Promise<string> {
  let answer: ActionAnswer;
  try {
    if (data.callerIdentity !== state.agentIdentity) throw new Error('only the agent of this call may act on the page');
    const body = JSON.parse(data.payload) as { action?: unknown; args?: unknown };
    const decl = ACTIONS.find((a) => a.name === body.action);
    const args = (body.args ?? {}) as Record<string, unknown>;
    const bad = decl ? invalidArgs(decl, args) : `unknown action ${String(body.action)}`;
    answer = bad || !decl ? invalid(bad ?? 'unknown action') : await handlers[decl.name]!(args);
  } catch (err) {
    answer = refused(String((err as Error).message ?? err));
  }
  await sendContext(); // the agent's view is current before the answer arrives
  return JSON.stringify({ ...answer, context: screenContext() });
}

async function declareTo(agentIdentity: string): Promise<void> {
  if (!room || state.declaredTo === agentIdentity) return;
  const r = room;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await r.localParticipant.performRpc({ destinationIdentity: agentIdentity, method: RPC_DECLARE, payload: declaration(), responseTimeout: 5000 });
      state.declaredTo = agentIdentity;
      lastContext = '';
      await sendContext(true);
      return;
    } catch (err) {
      console.warn('kaiwa console: declaration failed', err);
      await new Promise((res) => setTimeout(res, 500 * (attempt + 1)));
    }
  }
}

// ---------------------------------------------------------------- voice

async function startVoice(): Promise<void> {
  if (room) return;
  state.voice = 'connecting';
  render();
  try {
    const token = await api<{ server_url: string; participant_token: string }>('token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    const r = createRoom();
    room = r;
    window.kaiwaConsole.room = r;
    wire(r);
    talkKey.room = r;
    confirmPrompt = mountConfirmPrompt(confirmSlot, r);
    await r.connect(token.server_url, token.participant_token);
    state.voice = 'on';
    refreshAgent(r);
    void r.startAudio().catch(() => undefined);
    await r.localParticipant.setMicrophoneEnabled(true, { echoCancellation: true, noiseSuppression: true, autoGainControl: true }).catch((err) => {
      console.warn('kaiwa console: microphone unavailable', err);
    });
  } catch (err) {
    await stopVoice();
    state.error = ct('failed', { detail: String((err as Error).message ?? err) });
  }
  render();
}

async function stopVoice(): Promise<void> {
  const r = room;
  room = undefined;
  window.kaiwaConsole.room = undefined;
  talkKey.setEnabled(false);
  talkKey.room = undefined;
  confirmPrompt?.destroy();
  confirmPrompt = undefined;
  Object.assign(state, { voice: 'off', agent: 'absent', agentIdentity: null, tools: [], declaredTo: null });
  ui.audioSink.replaceChildren();
  if (r) {
    r.removeAllListeners();
    await r.disconnect();
  }
  render();
}

function wire(r: Room): void {
  r.registerTextStreamHandler(TOPIC_TRANSCRIPTION, (reader, { identity }) => {
    void transcript.consume(reader, identity, identity === r.localParticipant.identity ? 'user' : 'agent');
  });
  r.registerRpcMethod(RPC_ACTION, onAction);
  // background jobs started by voice: progress cards in the voice panel (jobs/panel.ts)
  jobs.room = r;
  r.registerTextStreamHandler(TOPIC_JOBS, (reader) => void jobs.consume(reader));
  r.on(RoomEvent.ParticipantConnected, () => refreshAgent(r))
    .on(RoomEvent.ParticipantDisconnected, () => refreshAgent(r))
    .on(RoomEvent.ParticipantAttributesChanged, () => refreshAgent(r))
    .on(RoomEvent.ConnectionStateChanged, (s: ConnectionState) => {
      if (s === ConnectionState.Disconnected && room === r) void stopVoice();
    })
    .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, p: RemoteParticipant) => {
      if (track.kind !== Track.Kind.Audio) return;
      const el = track.attach();
      el.dataset.participant = p.identity;
      ui.audioSink.append(el);
    })
    .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => track.detach().forEach((el) => el.remove()));
}

function refreshAgent(r: Room): void {
  if (room !== r) return;
  const agent = findAgent(r);
  state.agentIdentity = agent?.identity ?? null;
  state.agent = agent ? (agent.attributes[ATTR_AGENT_STATE] ?? 'initializing') : 'waiting';
  state.tools = parseTools(agent?.attributes[ATTR_TOOLS]);
  talkKey.follow(agent?.attributes);
  if (!agent) state.declaredTo = null;
  else if (agent.attributes[PROTOCOL_ATTRIBUTE] === PROTOCOL_VERSION && state.declaredTo !== agent.identity) void declareTo(agent.identity);
  render();
}

// ---------------------------------------------------------------- controls and keys

function option(value: string, label: string): HTMLOptionElement {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}

ui.status.append(option('', ct('all')), ...STATUSES.map((s) => option(s, statusName(s))));
ui.device.append(option('', ct('all')), ...DEVICES.map((d) => option(d, deviceName(d))));
ui.status.addEventListener('change', () => void setFilters({ status: ui.status.value }));
ui.device.addEventListener('change', () => void setFilters({ device: ui.device.value }));
let searchTimer: number | undefined;
ui.q.addEventListener('input', () => {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => void setFilters({ q: ui.q.value.trim() }), 250);
});
ui.q.addEventListener('focus', () => ((state.focus = 'search'), publishContext()));
ui.filters.addEventListener('submit', (e) => {
  e.preventDefault();
  void setFilters({ q: ui.q.value.trim() });
});
// a date picker's value is '' or a real day; 'change' fires once a whole day is entered
ui.from.addEventListener('change', () => void setFilters({ from: ui.from.value }));
ui.to.addEventListener('change', () => void setFilters({ to: ui.to.value }));
ui.newCase.addEventListener('click', showNewCase);
ui.newCaseBack.addEventListener('click', closeNewCase);
ui.newCaseCancel.addEventListener('click', () => {
  newCase.reset();
  closeNewCase();
});
ui.back.addEventListener('click', closeCase);
ui.prev.addEventListener('click', () => void step(-1));
ui.next.addEventListener('click', () => void step(1));
ui.noteInput.addEventListener('input', () => {
  state.note = ui.noteInput.value;
  ui.noteDirty.hidden = !state.note.trim();
  publishContext();
});
ui.noteInput.addEventListener('focus', () => ((state.focus = 'note'), publishContext()));
ui.noteForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void saveNote().catch((err) => showToast(String((err as Error).message)));
});
ui.voiceStart.addEventListener('click', () => void startVoice());
ui.voiceStop.addEventListener('click', () => void stopVoice());
ui.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, ui.keyInput.value.trim());
  ui.keyInput.value = '';
  void boot();
});

ui.tabCases.addEventListener('click', showCases);
ui.tabCalls.addEventListener('click', () => void showCalls());
ui.callBack.addEventListener('click', closeCall);

ui.callsBody.addEventListener('keydown', (e) => {
  const move = e.key === 'ArrowDown' || e.key === 'j' ? 1 : e.key === 'ArrowUp' || e.key === 'k' ? -1 : 0;
  if (move) {
    e.preventDefault();
    state.callCursor = Math.max(0, Math.min(state.calls.length - 1, state.callCursor + move));
    render();
    document.getElementById(`call-row-${state.calls[state.callCursor]?.id}`)?.scrollIntoView({ block: 'nearest' });
  } else if (e.key === 'Enter' && state.calls[state.callCursor]) {
    e.preventDefault();
    void openCall(state.calls[state.callCursor]!.ref, 'calls').catch(handleLoadError);
  }
});

ui.body.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown' || e.key === 'j') {
    e.preventDefault();
    state.cursor = Math.min(state.rows.length - 1, state.cursor + 1);
    render();
    document.getElementById(`row-${state.rows[state.cursor]?.id}`)?.scrollIntoView({ block: 'nearest' });
  } else if (e.key === 'ArrowUp' || e.key === 'k') {
    e.preventDefault();
    state.cursor = Math.max(0, state.cursor - 1);
    render();
    document.getElementById(`row-${state.rows[state.cursor]?.id}`)?.scrollIntoView({ block: 'nearest' });
  } else if (e.key === 'Enter' && state.rows[state.cursor]) {
    e.preventDefault();
    void openCase(state.rows[state.cursor]!.id).catch(handleLoadError);
  }
});

document.addEventListener('keydown', (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement;
  if (e.key === 'Escape') {
    if (typing) (e.target as HTMLElement).blur();
    else if (state.view === 'call') closeCall();
    else if (state.view === 'case') closeCase();
    else if (state.view === 'new_case') closeNewCase();
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === '1' || e.key === '2') {
    e.preventDefault();
    if (e.key === '1') showCases();
    else void showCalls();
    return;
  }
  if (state.view !== 'queue' && state.view !== 'case') return;
  if (e.key === 'n' && state.view === 'queue') {
    e.preventDefault();
    showNewCase();
  } else if (e.key === '/') {
    e.preventDefault();
    focusField('search');
  } else if (e.key === ']' || e.key === '[') {
    e.preventDefault();
    void step(e.key === ']' ? 1 : -1);
  }
});
window.addEventListener('pagehide', () => void room?.disconnect());

// ---------------------------------------------------------------- boot

declare global {
  interface Window {
    kaiwaConsole: {
      state: ConsoleState;
      room?: Room;
      context: () => Record<string, unknown>;
      actions: Record<string, Handler>;
      ready: boolean;
    };
  }
}

window.kaiwaConsole = { state, room: undefined, context: screenContext, actions: handlers, ready: false };

async function boot(): Promise<void> {
  if (!(await loadMe())) return;
  await Promise.all([loadQueue(), loadSummary()]);
  window.kaiwaConsole.ready = true;
  render();
}

applyConsoleText();
ui.transcript.querySelector('.empty')!.textContent = t('transcriptEmpty');
render();
void boot();
