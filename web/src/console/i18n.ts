// Console strings, ja/en (the language follows the browser, like the caller page).

import { lang } from '../i18n';

const en = {
  title: 'Case console',
  dashboard: 'By status',
  all: 'All',
  total: 'All cases',
  queue: 'Queue',
  status: 'Status',
  device: 'Device',
  search: 'Search',
  searchPlaceholder: 'Name, case number, symptom…',
  'col.id': 'Case',
  'col.customer_name': 'Customer',
  'col.device_type': 'Device',
  'col.status': 'Status',
  'col.quote_yen': 'Quote',
  'col.return_date': 'Return',
  'col.updated_at': 'Updated',
  'col.created_at': 'Created',
  empty: 'No cases match.',
  loading: 'Loading…',
  shown: '{n} of {total} cases',
  keys: '↑↓ move · Enter open · / search · Esc back · [ ] previous/next case',
  back: 'Back to queue',
  previous: 'Previous',
  next: 'Next',
  symptom: 'Symptom',
  phone: 'Phone',
  email: 'Email',
  quote: 'Quote',
  returnDate: 'Return',
  noQuote: 'not quoted yet',
  noReturn: 'not scheduled',
  notes: 'Notes',
  noNotes: 'No notes yet.',
  history: 'History',
  changedBy: 'by {who}',
  addNote: 'Add a note',
  notePlaceholder: 'What happened, what was agreed…',
  save: 'Save note',
  saved: 'Note saved.',
  unsaved: 'Unsaved',
  voice: 'Voice',
  voiceStart: 'Talk to kaiwa',
  voiceStop: 'End voice',
  voiceOff: 'Voice is off',
  voiceConnecting: 'Connecting…',
  running: 'Running: {tools}',
  keyPrompt: 'This console is for staff. Enter your staff key:',
  keySave: 'Sign in',
  forbidden: 'This console is for staff only.',
  failed: 'Could not load: {detail}',
  created: 'created',
  noteAdded: 'Note added',
  'agent.absent': 'Agent not here',
  'agent.waiting': 'Waiting for the agent…',
  'agent.initializing': 'Getting ready',
  'agent.idle': 'Idle',
  'agent.listening': 'Listening',
  'agent.thinking': 'Thinking',
  'agent.speaking': 'Speaking',
};

type Dict = Record<keyof typeof en, string>;

const ja: Dict = {
  title: '案件コンソール',
  dashboard: 'ステータス別',
  all: 'すべて',
  total: '全案件',
  queue: '案件一覧',
  status: 'ステータス',
  device: '機器',
  search: '検索',
  searchPlaceholder: '氏名・案件番号・症状…',
  'col.id': '案件',
  'col.customer_name': 'お客様',
  'col.device_type': '機器',
  'col.status': 'ステータス',
  'col.quote_yen': '見積',
  'col.return_date': '返却',
  'col.updated_at': '更新',
  'col.created_at': '受付',
  empty: '該当する案件はありません。',
  loading: '読み込み中…',
  shown: '{total}件中{n}件',
  keys: '↑↓ 移動・Enter 開く・/ 検索・Esc 戻る・[ ] 前/次の案件',
  back: '一覧に戻る',
  previous: '前へ',
  next: '次へ',
  symptom: '症状',
  phone: '電話',
  email: 'メール',
  quote: '見積',
  returnDate: '返却',
  noQuote: '未見積',
  noReturn: '未定',
  notes: 'メモ',
  noNotes: 'メモはまだありません。',
  history: '履歴',
  changedBy: '{who}',
  addNote: 'メモを追加',
  notePlaceholder: '経緯・合意内容など…',
  save: 'メモを保存',
  saved: 'メモを保存しました。',
  unsaved: '未保存',
  voice: '音声',
  voiceStart: 'kaiwaと話す',
  voiceStop: '音声を終了',
  voiceOff: '音声はオフです',
  voiceConnecting: '接続中…',
  running: '実行中: {tools}',
  keyPrompt: 'スタッフ専用です。スタッフキーを入力してください:',
  keySave: 'サインイン',
  forbidden: 'このコンソールはスタッフ専用です。',
  failed: '読み込めませんでした: {detail}',
  created: '受付',
  noteAdded: 'メモ追加',
  'agent.absent': 'エージェント不在',
  'agent.waiting': 'エージェントを待っています…',
  'agent.initializing': '準備中',
  'agent.idle': '待機中',
  'agent.listening': '聞いています',
  'agent.thinking': '考えています',
  'agent.speaking': '話しています',
};

export type CKey = keyof typeof en;
const dict: Dict = lang === 'ja' ? ja : en;

export function ct(key: CKey, vars: Record<string, string | number> = {}): string {
  return dict[key].replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? ''));
}

const devices: Record<string, string> = {
  HDD: 'HDD',
  SSD: 'SSD',
  'USB stick': 'USBメモリ',
  'SD card': 'SDカード',
  phone: 'スマートフォン',
  'RAID/NAS': 'RAID/NAS',
  other: 'その他',
};

export function deviceName(device: string): string {
  return lang === 'ja' ? (devices[device] ?? device) : device;
}

/** Fill `data-ci18n` / `data-ci18n-placeholder` / `data-ci18n-aria` elements. */
export function applyConsoleText(root: ParentNode = document): void {
  document.documentElement.lang = lang;
  root.querySelectorAll<HTMLElement>('[data-ci18n]').forEach((el) => (el.textContent = ct(el.dataset.ci18n as CKey)));
  root
    .querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('[data-ci18n-placeholder]')
    .forEach((el) => (el.placeholder = ct(el.dataset.ci18nPlaceholder as CKey)));
  root
    .querySelectorAll<HTMLElement>('[data-ci18n-aria]')
    .forEach((el) => el.setAttribute('aria-label', ct(el.dataset.ci18nAria as CKey)));
}
