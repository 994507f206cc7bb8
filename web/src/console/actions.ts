// Page-declared UI actions (contract: web/README.md "Page-declared UI actions").
//
// The page declares these to the agent (RPC kaiwa.ui.declare) when an agent that speaks the
// protocol (attribute kaiwa.ui.protocol = "1") joins; the agent offers each as a tool
// `ui_<name>` and calls RPC kaiwa.ui.action {id, action, args} on the page. The handlers act on
// the same state as clicks and keys, and answer {ok, message, context} or
// {ok: false, error: "refused" | "invalid", message}.

export const PROTOCOL_ATTRIBUTE = 'kaiwa.ui.protocol';
export const PROTOCOL_VERSION = '1';
export const RPC_DECLARE = 'kaiwa.ui.declare';
export const RPC_CONTEXT = 'kaiwa.ui.context';
export const RPC_ACTION = 'kaiwa.ui.action';
export const MAX_CONTEXT_BYTES = 4096;

export const STATUSES = ['received', 'diagnosing', 'quoted', 'approved', 'recovering', 'ready', 'returned', 'cancelled'];
export const DEVICES = ['HDD', 'SSD', 'USB stick', 'SD card', 'phone', 'RAID/NAS', 'other'];
export const SORT_KEYS = ['id', 'customer_name', 'device_type', 'status', 'quote_yen', 'return_date', 'updated_at', 'created_at'];
export const FIELDS = ['search', 'note'];

type Schema = {
  type: 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';
  description?: string;
  enum?: (string | number)[];
  properties?: Record<string, Schema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
};

export interface ActionDecl {
  name: string;
  description: string;
  parameters: Schema;
}

const none: Schema = { type: 'object', properties: {} };

export const ACTIONS: ActionDecl[] = [
  {
    name: 'navigate',
    description: 'Go to a view of the console: the case queue (closes an open case), or the list of recorded calls.',
    parameters: { type: 'object', properties: { view: { type: 'string', enum: ['queue', 'calls'] } }, required: ['view'] },
  },
  {
    name: 'filter',
    description:
      'Filter the case queue. Only the given filters change; "all" clears one. Say "quoted" for cases waiting for the customer to answer a quote. from/to: the days the cases were received (both included), e.g. "received last week".',
    parameters: {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['all', ...STATUSES] },
        device: { type: 'string', enum: ['all', ...DEVICES] },
        text: { type: 'string', description: 'Search text (name, case number, symptom); empty clears.', maxLength: 100 },
        from: { type: 'string', description: 'Received on or after this day, YYYY-MM-DD; empty clears.', maxLength: 10 },
        to: { type: 'string', description: 'Received on or before this day, YYYY-MM-DD; empty clears.', maxLength: 10 },
      },
    },
  },
  {
    name: 'sort',
    description: 'Sort the case queue.',
    parameters: {
      type: 'object',
      properties: { by: { type: 'string', enum: SORT_KEYS }, direction: { type: 'string', enum: ['asc', 'desc'] } },
      required: ['by'],
    },
  },
  {
    name: 'open_case',
    description:
      'Open a case in the detail view, by id, or by its 1-based position in the queue as shown (get_screen lists the visible ids in order).',
    parameters: {
      type: 'object',
      properties: {
        case_id: { type: 'string', description: 'e.g. R-1042' },
        position: { type: 'integer', minimum: 1, description: '1 = first case on screen' },
      },
    },
  },
  { name: 'next', description: 'Open the next case in the queue (or move down the queue).', parameters: none },
  { name: 'previous', description: 'Open the previous case in the queue (or move up the queue).', parameters: none },
  {
    name: 'scroll',
    description: 'Scroll the queue or the case detail.',
    parameters: { type: 'object', properties: { to: { type: 'string', enum: ['top', 'bottom', 'up', 'down'] } }, required: ['to'] },
  },
  {
    name: 'focus_field',
    description: 'Put the cursor in a field: the queue search box, or the note box of the open case.',
    parameters: { type: 'object', properties: { field: { type: 'string', enum: FIELDS } }, required: ['field'] },
  },
  {
    name: 'fill_field',
    description: 'Type a value into a field (not saved until submit).',
    parameters: {
      type: 'object',
      properties: { field: { type: 'string', enum: FIELDS }, value: { type: 'string', maxLength: 2000 } },
      required: ['field', 'value'],
    },
  },
  {
    name: 'submit',
    description: 'Submit a form: "note" saves the note typed for the open case; "search" applies the search box.',
    parameters: { type: 'object', properties: { form: { type: 'string', enum: FIELDS } }, required: ['form'] },
  },
  { name: 'close', description: 'Close the open case and go back to the queue.', parameters: none },
];

/** Why `value` is not a day (YYYY-MM-DD, a real date) as a sentence for the model, or null. */
export function dayProblem(name: string, value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : null;
  if (!d || d.toISOString().slice(0, 10) !== value) return `${name} "${value}" is not a date; give it as YYYY-MM-DD, for example 2026-03-01`;
  return null;
}

export function declaration(): string {
  return JSON.stringify({ v: 1, actions: ACTIONS });
}

/** Why `args` don't fit the declared schema (a short sentence), or null. */
export function invalidArgs(decl: ActionDecl, args: unknown): string | null {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return 'arguments must be an object';
  const props = decl.parameters.properties ?? {};
  const given = args as Record<string, unknown>;
  for (const key of Object.keys(given)) if (!(key in props)) return `unknown argument ${key}`;
  for (const key of decl.parameters.required ?? []) if (given[key] === undefined || given[key] === null) return `${key} is required`;
  for (const [key, value] of Object.entries(given)) {
    if (value === null || value === undefined) continue;
    const s = props[key]!;
    const okType =
      s.type === 'string' ? typeof value === 'string'
      : s.type === 'integer' ? Number.isInteger(value)
      : s.type === 'number' ? typeof value === 'number'
      : s.type === 'boolean' ? typeof value === 'boolean'
      : true;
    if (!okType) return `${key} must be a ${s.type}`;
    if (s.enum && !s.enum.includes(value as string | number)) return `${key} must be one of ${s.enum.join(', ')}`;
    if (typeof value === 'number' && s.minimum !== undefined && value < s.minimum) return `${key} must be at least ${s.minimum}`;
    if (typeof value === 'string' && s.maxLength !== undefined && value.length > s.maxLength) return `${key} is too long`;
  }
  return null;
}

export interface ActionAnswer {
  ok: boolean;
  message: string;
  error?: 'refused' | 'invalid';
}

export const done = (message: string): ActionAnswer => ({ ok: true, message });
export const refused = (message: string): ActionAnswer => ({ ok: false, error: 'refused', message });
export const invalid = (message: string): ActionAnswer => ({ ok: false, error: 'invalid', message });
