// Case operations on the case detail: edit contact, assign a technician, set the quote
// (checked by the server, then a review step: the database changes only on Confirm),
// reopen (with a confirmation step), record a payment (with a confirmation step) and
// attach a photo.
// Each posts to a staff-only /api/console/cases/{id}/... endpoint and shows the case it
// answers with; the history (rendered by main.ts) says who did what.

import { formatDate, formatYen, lang } from '../i18n';

export interface OpsCase {
  id: string;
  status: string;
  phone: string | null;
  email: string | null;
  quote_yen: number | null;
  technician?: string | null;
  paid_yen?: number;
  balance_yen?: number | null;
  payments?: { at: string; actor: string; amount_yen: number; method: string }[];
  attachments?: { id: number; at: string; actor: string; name: string; content_type: string; size: number; sha256: string }[];
}

export interface OpsDeps<D extends OpsCase> {
  api: <T>(path: string, init?: RequestInit) => Promise<T>;
  authHeaders: () => Record<string, string>;
  saved: (detail: D, message: string) => void;
  failed: (message: string) => void;
}

const METHODS = ['cash', 'card', 'bank_transfer', 'other'] as const;

const en = {
  title: 'Case operations',
  technician: 'Technician',
  unassigned: 'Not assigned',
  paid: 'Paid',
  balance: 'Left to pay',
  contact: 'Contact',
  phone: 'Phone',
  email: 'Email',
  saveContact: 'Save contact',
  assign: 'Assign',
  payment: 'Record a payment',
  amount: 'Amount (yen)',
  method: 'Method',
  'method.cash': 'Cash',
  'method.card': 'Card',
  'method.bank_transfer': 'Bank transfer',
  'method.other': 'Other',
  record: 'Record payment…',
  reopen: 'Reopen case',
  reason: 'Reason',
  reopenBtn: 'Reopen…',
  confirm: 'Confirm',
  cancel: 'Cancel',
  confirmPayment: 'Record {amount} by {method} on {id}? {left} will be left to pay.',
  confirmReopen: 'Reopen {id} ({status})? Reason: {reason}',
  attachments: 'Photos',
  noAttachments: 'No photos yet.',
  attach: 'Attach photo',
  chooseFile: 'Photo of the device',
  savedContact: 'Contact saved.',
  savedTech: 'Technician assigned.',
  savedPayment: 'Payment recorded.',
  savedReopen: 'Case reopened.',
  savedAttach: 'Photo attached.',
  noFile: 'Choose a photo first.',
  quote: 'Quote',
  quoteAmount: 'Amount (yen)',
  setQuote: 'Set quote…',
  confirmQuote: 'Set the quote for {id} to {amount}?',
  quoteNow: 'It is {amount} now.',
  back: 'Back',
  savedQuote: 'Quote set.',
  needAmount: 'Enter the amount in yen.',
};
type OKey = keyof typeof en;
const ja: Record<OKey, string> = {
  title: '案件の操作',
  technician: '担当技術者',
  unassigned: '未割り当て',
  paid: '入金済み',
  balance: '残額',
  contact: '連絡先',
  phone: '電話',
  email: 'メール',
  saveContact: '連絡先を保存',
  assign: '割り当て',
  payment: '入金を記録',
  amount: '金額（円）',
  method: '方法',
  'method.cash': '現金',
  'method.card': 'カード',
  'method.bank_transfer': '銀行振込',
  'method.other': 'その他',
  record: '入金を記録…',
  reopen: '案件を再開',
  reason: '理由',
  reopenBtn: '再開…',
  confirm: '確定',
  cancel: 'キャンセル',
  confirmPayment: '{id} に {method} で {amount} の入金を記録しますか？ 残額は {left} になります。',
  confirmReopen: '{id}（{status}）を再開しますか？ 理由: {reason}',
  attachments: '写真',
  noAttachments: '写真はまだありません。',
  attach: '写真を添付',
  chooseFile: '機器の写真',
  savedContact: '連絡先を保存しました。',
  savedTech: '担当技術者を割り当てました。',
  savedPayment: '入金を記録しました。',
  savedReopen: '案件を再開しました。',
  savedAttach: '写真を添付しました。',
  noFile: '先に写真を選んでください。',
  quote: '見積',
  quoteAmount: '金額（円）',
  setQuote: '見積を設定…',
  confirmQuote: '{id} の見積を {amount} に設定しますか？',
  quoteNow: '現在は {amount} です。',
  back: '戻る',
  savedQuote: '見積を設定しました。',
  needAmount: '金額（円）を入力してください。',
};

function ot(key: OKey, vars: Record<string, string | number> = {}): string {
  const text = (lang === 'ja' ? ja : en)[key];
  return text.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ''));
}

export const CASE_OPS_CSS = `
.case-ops { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; margin: 0 0 12px; }
.case-ops form { display: flex; flex-direction: column; gap: 6px; }
.case-ops label { font-size: 0.85rem; color: var(--muted); display: flex; flex-direction: column; gap: 2px; }
.case-ops input, .case-ops select { font: inherit; color: var(--text); background: var(--surface); border: 1px solid var(--border); border-radius: 8px; padding: 6px 8px; }
.case-ops .ops-confirm { border: 1px solid var(--accent); border-radius: 8px; padding: 8px; display: flex; flex-direction: column; gap: 6px; }
.case-ops .ops-confirm .row, .case-ops .row { display: flex; gap: 8px; justify-content: flex-end; }
.case-ops .attachments { list-style: none; padding: 0; margin: 0; }
.case-ops .attachments button { background: none; border: none; color: var(--accent); cursor: pointer; padding: 0; font: inherit; text-decoration: underline; }
`;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function labelled(text: string, input: HTMLElement): HTMLLabelElement {
  return el('label', {}, text, input);
}

function button(text: string, primary = false, type: 'button' | 'submit' = 'submit'): HTMLButtonElement {
  return el('button', { type, className: primary ? 'btn btn-primary' : 'btn', textContent: text });
}

function newKey(): string {
  return typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

/** The operations block of the case detail; built once, refreshed with each case. */
export class CaseOps<D extends OpsCase> {
  readonly root: HTMLElement;
  private detail: D | null = null;
  private readonly info: HTMLElement;
  private readonly phone = el('input', { id: 'ops-phone', type: 'tel', autocomplete: 'off', maxLength: 40 });
  private readonly email = el('input', { id: 'ops-email', type: 'email', autocomplete: 'off', maxLength: 200 });
  private readonly tech = el('input', { id: 'ops-technician', type: 'text', maxLength: 100 });
  private readonly amount = el('input', { id: 'ops-amount', type: 'number', min: '1', step: '1', inputMode: 'numeric' });
  private readonly method = el('select', { id: 'ops-method' });
  private readonly reason = el('input', { id: 'ops-reason', type: 'text', maxLength: 500 });
  private readonly file = el('input', { id: 'ops-file', type: 'file', accept: 'image/jpeg,image/png,image/gif,image/webp,image/heic' });
  private readonly quoteAmount = el('input', { id: 'ops-quote-amount', type: 'text', inputMode: 'numeric', autocomplete: 'off', maxLength: 20, placeholder: '55000' });
  private readonly quoteError = el('p', { id: 'ops-quote-error', className: 'field-error', role: 'alert', hidden: true });
  private quoteBusy = false;
  private readonly reopenForm: HTMLFormElement;
  private readonly paymentForm: HTMLFormElement;
  private readonly quoteForm: HTMLFormElement;
  private readonly attachmentList = el('ul', { className: 'attachments', id: 'ops-attachments' });

  constructor(private readonly deps: OpsDeps<D>) {
    this.method.append(...METHODS.map((m) => el('option', { value: m, textContent: ot(`method.${m}` as OKey) })));
    this.info = el('dl', { className: 'fields', id: 'ops-info' });

    const contact = el('form', { id: 'ops-contact' }, el('h3', { textContent: ot('contact') }), labelled(ot('phone'), this.phone), labelled(ot('email'), this.email), el('div', { className: 'row' }, button(ot('saveContact'), true)));
    contact.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.post('contact', { phone: this.phone.value.trim(), email: this.email.value.trim() }, ot('savedContact'));
    });

    const assign = el('form', { id: 'ops-assign' }, el('h3', { textContent: ot('technician') }), labelled(ot('technician'), this.tech), el('div', { className: 'row' }, button(ot('assign'), true)));
    assign.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.post('technician', { technician: this.tech.value.trim() }, ot('savedTech'));
    });

    this.quoteAmount.setAttribute('aria-describedby', 'ops-quote-error');
    this.quoteForm = el('form', { id: 'ops-quote' }, el('h3', { textContent: ot('quote') }), labelled(ot('quoteAmount'), this.quoteAmount), this.quoteError, el('div', { className: 'row' }, button(ot('setQuote'), true)));
    this.quoteForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.proposeQuote();
    });
    this.quoteAmount.addEventListener('input', () => this.quoteProblem(null));

    this.paymentForm = el('form', { id: 'ops-payment' }, el('h3', { textContent: ot('payment') }), labelled(ot('amount'), this.amount), labelled(ot('method'), this.method), el('div', { className: 'row' }, button(ot('record'), true)));
    this.paymentForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const d = this.detail;
      if (!d) return;
      const amount = Math.round(Number(this.amount.value));
      const left = (d.balance_yen ?? 0) - amount;
      const body = { amount_yen: amount, method: this.method.value };
      const summary = ot('confirmPayment', { id: d.id, amount: formatYen(amount), method: ot(`method.${this.method.value}` as OKey), left: formatYen(Math.max(0, left)) });
      this.ask(this.paymentForm, summary, () => this.post('payments', body, ot('savedPayment'), () => (this.amount.value = '')));
    });

    this.reopenForm = el('form', { id: 'ops-reopen' }, el('h3', { textContent: ot('reopen') }), labelled(ot('reason'), this.reason), el('div', { className: 'row' }, button(ot('reopenBtn'), true)));
    this.reopenForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const d = this.detail;
      if (!d) return;
      const reason = this.reason.value.trim();
      this.ask(this.reopenForm, ot('confirmReopen', { id: d.id, status: d.status, reason }), () => this.post('reopen', { reason }, ot('savedReopen'), () => (this.reason.value = '')));
    });

    const attach = el('form', { id: 'ops-attach' }, el('h3', { textContent: ot('attachments') }), this.attachmentList, labelled(ot('chooseFile'), this.file), el('div', { className: 'row' }, button(ot('attach'), true)));
    attach.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.upload();
    });

    this.root = el('section', { id: 'case-ops', className: 'case-ops', ariaLabel: ot('title') }, this.info, contact, assign, this.quoteForm, this.paymentForm, this.reopenForm, attach);
  }

  /** Show `d`: info always; form values when another case is shown or after a save. */
  show(d: D): void {
    if (d === this.detail) return;
    const other = d.id !== this.detail?.id;
    this.detail = d;
    const rows: [string, string][] = [
      [ot('technician'), d.technician ?? ot('unassigned')],
      [ot('paid'), formatYen(d.paid_yen ?? 0)],
      [ot('balance'), d.balance_yen === null || d.balance_yen === undefined ? '—' : formatYen(d.balance_yen)],
    ];
    this.info.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v, className: `ops-${k}` })]));
    this.info.dataset.technician = d.technician ?? '';
    this.info.dataset.balance = String(d.balance_yen ?? '');
    const closed = d.status === 'returned' || d.status === 'cancelled';
    this.reopenForm.hidden = !closed;
    this.quoteForm.hidden = d.status !== 'diagnosing' && d.status !== 'quoted';
    this.paymentForm.hidden = d.quote_yen === null || d.status === 'cancelled' || (d.balance_yen ?? 0) <= 0;
    const atts = d.attachments ?? [];
    this.attachmentList.replaceChildren(
      ...(atts.length === 0
        ? [el('li', { className: 'muted', textContent: ot('noAttachments') })]
        : atts.map((a) => {
            const open = el('button', { type: 'button', textContent: a.name });
            open.addEventListener('click', () => void this.view(a.id));
            return el('li', { className: 'attachment' }, open, ` · ${Math.ceil(a.size / 1024)} KB · ${formatDate(a.at)} · ${a.actor}`);
          })),
    );
    if (other) {
      this.phone.value = d.phone ?? '';
      this.email.value = d.email ?? '';
      this.tech.value = d.technician ?? '';
      this.amount.value = '';
      this.reason.value = '';
      this.file.value = '';
      this.quoteAmount.value = '';
      this.quoteProblem(null);
      this.root.querySelectorAll('.ops-confirm').forEach((n) => n.remove());
    }
  }

  /** An inline confirmation step: nothing is sent until Confirm is pressed. Back (or Esc)
   * leaves it and puts the cursor back in the form. */
  private ask(form: HTMLFormElement, summary: string, go: () => Promise<void>, noLabel = ot('cancel')): void {
    form.querySelector('.ops-confirm')?.remove();
    const yes = button(ot('confirm'), true, 'button');
    yes.dataset.confirm = 'yes';
    const no = button(noLabel, false, 'button');
    no.dataset.confirm = 'no';
    const text = el('p', { textContent: summary, className: 'summary', id: `${form.id}-review` });
    const box = el('div', { className: 'ops-confirm', role: 'alertdialog' }, text, el('div', { className: 'row' }, no, yes));
    box.setAttribute('aria-labelledby', text.id);
    const back = () => {
      box.remove();
      form.querySelector<HTMLInputElement>('input, select')?.focus();
    };
    no.addEventListener('click', back);
    box.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      e.stopPropagation(); // Esc leaves the review, not the case
      back();
    });
    yes.addEventListener('click', () => {
      yes.disabled = true;
      no.disabled = true;
      void go().finally(() => box.remove());
    });
    form.append(box);
    yes.focus();
  }

  private async post(
    op: string,
    body: Record<string, unknown>,
    message: string,
    after?: () => void,
    key = newKey(),
    failed: (message: string) => void = this.deps.failed,
  ): Promise<void> {
    const d = this.detail;
    if (!d) return;
    try {
      const detail = await this.deps.api<D>(`api/console/cases/${encodeURIComponent(d.id)}/${op}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
        body: JSON.stringify(body),
      });
      after?.();
      this.fill(detail);
      this.deps.saved(detail, message);
    } catch (err) {
      failed(String((err as Error).message ?? err));
    }
  }

  private quoteProblem(message: string | null): void {
    this.quoteError.textContent = message ?? '';
    this.quoteError.hidden = !message;
    this.quoteAmount.setAttribute('aria-invalid', String(Boolean(message)));
  }

  /** Step 1: the server checks the amount and the case and writes nothing; its answer is
   * the review. Step 2 (Confirm) sends {amount_yen, confirm: true}: only that writes. */
  private async proposeQuote(): Promise<void> {
    const d = this.detail;
    if (!d || this.quoteBusy) return;
    this.quoteProblem(null);
    this.quoteForm.querySelector('.ops-confirm')?.remove();
    const amount = this.quoteAmount.value.trim();
    if (!amount) {
      this.quoteProblem(ot('needAmount'));
      this.quoteAmount.focus();
      return;
    }
    this.quoteBusy = true;
    try {
      const answer = await this.deps.api<{ applied: false; proposal: { case_id: string; amount_yen: number; current_quote_yen: number | null } }>(
        `api/console/cases/${encodeURIComponent(d.id)}/quote`,
        { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ amount_yen: amount }) },
      );
      const p = answer.proposal;
      if (this.detail?.id !== p.case_id) return; // another case was opened meanwhile
      let summary = ot('confirmQuote', { id: p.case_id, amount: formatYen(p.amount_yen) });
      if (p.current_quote_yen !== null) summary += ` ${ot('quoteNow', { amount: formatYen(p.current_quote_yen) })}`;
      const key = newKey(); // one per review: a double click on Confirm is one change
      const body = { amount_yen: p.amount_yen, confirm: true };
      this.ask(this.quoteForm, summary, () => this.post('quote', body, ot('savedQuote'), () => (this.quoteAmount.value = ''), key, (m) => this.quoteProblem(m)), ot('back'));
    } catch (err) {
      this.quoteProblem(String((err as Error).message ?? err));
      this.quoteAmount.focus();
    } finally {
      this.quoteBusy = false;
    }
  }

  private fill(detail: D): void {
    this.phone.value = detail.phone ?? '';
    this.email.value = detail.email ?? '';
    this.tech.value = detail.technician ?? '';
  }

  private async upload(): Promise<void> {
    const d = this.detail;
    const f = this.file.files?.[0];
    if (!d) return;
    if (!f) {
      this.deps.failed(ot('noFile'));
      return;
    }
    try {
      const detail = await this.deps.api<D>(`api/console/cases/${encodeURIComponent(d.id)}/attachments?name=${encodeURIComponent(f.name)}`, {
        method: 'POST',
        headers: { 'Content-Type': f.type || 'application/octet-stream', 'Idempotency-Key': newKey() },
        body: f,
      });
      this.file.value = '';
      this.deps.saved(detail, ot('savedAttach'));
    } catch (err) {
      this.deps.failed(String((err as Error).message ?? err));
    }
  }

  private async view(id: number): Promise<void> {
    const d = this.detail;
    if (!d) return;
    const res = await fetch(`api/console/cases/${encodeURIComponent(d.id)}/attachments/${id}`, { headers: this.deps.authHeaders(), cache: 'no-store', credentials: 'same-origin' });
    if (!res.ok) {
      this.deps.failed(`${res.status} ${res.statusText}`);
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    window.open(url, '_blank', 'noopener');
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
