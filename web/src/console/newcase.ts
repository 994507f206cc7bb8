// The new-case form (#new-case-form in console.html): a case opened by hand at the counter.
//
// POST /api/console/cases {customer_name, phone, email, device_type, symptom}. Required
// fields are checked here (with ja/en sentences); everything else is the desk's to judge,
// and its refusal is a sentence shown next to the field it names (400 {detail, field}).
// One Idempotency-Key per form instance: a double submit, or a retry after a lost answer,
// gets the first case back instead of opening a second one. A new key is made once a case
// was opened (the next customer is a new form).

import { DEVICES } from './actions';
import { ct, deviceName, type CKey } from './i18n';

export interface NewCaseDeps<D extends { id: string }> {
  api: <T>(path: string, init?: RequestInit) => Promise<T>;
  created: (detail: D) => Promise<void>;
  changed: () => void;
}

export const NEW_CASE_FIELDS = ['customer_name', 'phone', 'email', 'device_type', 'symptom'] as const;
type FieldName = (typeof NEW_CASE_FIELDS)[number];
const REQUIRED: Partial<Record<FieldName, CKey>> = { customer_name: 'needName', device_type: 'needDevice', symptom: 'needSymptom' };

function newKey(): string {
  return typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

export class NewCaseForm<D extends { id: string }> {
  readonly inputs: Record<FieldName, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>;
  private key = newKey();
  private busy = false;
  private readonly submitButton: HTMLButtonElement;
  private readonly formError: HTMLElement;

  constructor(
    readonly form: HTMLFormElement,
    private readonly deps: NewCaseDeps<D>,
  ) {
    const field = (name: FieldName) => form.querySelector<HTMLInputElement>(`[data-field="${name}"]`)!;
    this.inputs = Object.fromEntries(NEW_CASE_FIELDS.map((n) => [n, field(n)])) as NewCaseForm<D>['inputs'];
    this.submitButton = form.querySelector<HTMLButtonElement>('button[type=submit]')!;
    this.formError = form.querySelector<HTMLElement>('[data-error-for=""]')!;
    const device = this.inputs.device_type as HTMLSelectElement;
    device.append(new Option(ct('chooseDevice'), ''), ...DEVICES.map((d) => new Option(deviceName(d), d)));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    for (const name of NEW_CASE_FIELDS) {
      this.inputs[name].addEventListener('input', () => {
        this.showError(name, null);
        this.deps.changed();
      });
    }
  }

  /** Names of the fields that hold something (for the screen context; no values). */
  dirty(): string[] {
    return NEW_CASE_FIELDS.filter((n) => this.inputs[n].value.trim() !== '');
  }

  /** Clear the errors (the values stay: leaving the form and coming back keeps them). */
  open(): void {
    for (const n of NEW_CASE_FIELDS) this.showError(n, null);
    this.showError('', null);
    this.inputs.customer_name.focus();
  }

  /** Empty the form for the next customer, with a new idempotency key. */
  reset(): void {
    this.form.reset();
    this.key = newKey();
    for (const n of NEW_CASE_FIELDS) this.showError(n, null);
    this.showError('', null);
  }

  private showError(field: FieldName | '', message: string | null): void {
    const box = field ? this.form.querySelector<HTMLElement>(`[data-error-for="${field}"]`)! : this.formError;
    box.textContent = message ?? '';
    box.hidden = !message;
    if (field) this.inputs[field].setAttribute('aria-invalid', String(Boolean(message)));
  }

  async submit(): Promise<void> {
    if (this.busy) return; // the key would make a second request harmless; this spares it
    for (const n of NEW_CASE_FIELDS) this.showError(n, null);
    this.showError('', null);
    const body = Object.fromEntries(NEW_CASE_FIELDS.map((n) => [n, this.inputs[n].value.trim()])) as Record<FieldName, string>;
    const missing = NEW_CASE_FIELDS.filter((n) => REQUIRED[n] && !body[n]);
    if (missing.length) {
      for (const n of missing) this.showError(n, ct(REQUIRED[n]!));
      this.inputs[missing[0]!].focus();
      return;
    }
    this.busy = true;
    this.submitButton.disabled = true;
    try {
      const detail = await this.deps.api<D>('api/console/cases', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': this.key },
        body: JSON.stringify({ ...body, phone: body.phone || null, email: body.email || null }),
      });
      this.reset();
      await this.deps.created(detail);
    } catch (err) {
      const field = (err as { field?: string }).field;
      const message = String((err as Error).message ?? err);
      if (field && (NEW_CASE_FIELDS as readonly string[]).includes(field)) {
        this.showError(field as FieldName, message);
        this.inputs[field as FieldName].focus();
      } else this.showError('', message);
    } finally {
      this.busy = false;
      this.submitButton.disabled = false;
    }
  }
}
