// Tiny dictionary: Japanese for ja* browsers, English otherwise.

export type Lang = 'ja' | 'en';

const en = {
  skipToChat: 'Skip to message box',
  stageTitle: 'Voice',
  controls: 'Call controls',
  start: 'Start',
  starting: 'Connecting…',
  reconnect: 'Reconnect',
  mute: 'Mute',
  unmute: 'Unmute',
  micOn: 'Turn on mic',
  camera: 'Camera',
  screen: 'Share screen',
  interrupt: 'Interrupt',
  disconnect: 'Leave',
  hint: 'Press Start, allow the microphone, and talk. Esc interrupts the agent.',
  hintLive: 'Just talk, or type below. Esc interrupts the agent.',
  pttIdle: 'Hold to talk (Space)',
  pttHeld: 'Listening… release to send',
  pttHint: 'Push-to-talk: kaiwa hears you only while this button or the Space key is held.',
  cameraPreview: 'Camera preview',
  screenPreview: 'Screen preview',
  caseKicker: 'Case',
  closeCase: 'Close case',
  notes: 'Notes',
  noNotes: 'No notes yet.',
  history: 'Status history',
  noHistory: 'No changes yet.',
  transcript: 'Conversation',
  transcriptEmpty: 'The conversation will appear here.',
  chatLabel: 'Message',
  chatPlaceholder: 'Type a message',
  send: 'Send',
  you: 'You',
  agent: 'Agent',
  typed: 'typed',
  // connection states
  'conn.disconnected': 'Not connected',
  'conn.connecting': 'Connecting',
  'conn.connected': 'Connected',
  'conn.reconnecting': 'Reconnecting',
  'conn.signalReconnecting': 'Reconnecting',
  'conn.failed': 'Connection lost',
  // agent states
  'agent.absent': 'Agent not here',
  'agent.waiting': 'Waiting for the agent…',
  'agent.initializing': 'Getting ready',
  'agent.idle': 'Idle',
  'agent.listening': 'Listening',
  'agent.thinking': 'Thinking',
  'agent.speaking': 'Speaking',
  running: 'Running: {tools}',
  // case fields
  'field.customer_name': 'Customer',
  'field.phone': 'Phone',
  'field.email': 'Email',
  'field.device_type': 'Device',
  'field.symptom': 'Symptom',
  'field.quote_yen': 'Quote',
  'field.return_date': 'Return',
  'field.created_at': 'Created',
  'field.updated_at': 'Updated',
  notQuoted: 'Not quoted yet',
  statusChangedToast: 'Case {id}: {from} → {to}',
  statusChangedInline: 'Changed: {from} → {to}',
  historyBy: 'by {actor}',
  // errors
  'err.tokenRefused': 'The server refused to start a session: {detail}',
  'err.tokenHttp': 'The token server answered {status}. Is the kaiwa token server running at this address?',
  'err.tokenNetwork': 'Could not reach the token server. Check your network connection and try again.',
  'err.tokenBadResponse': 'The token server sent an unexpected reply.',
  'err.connect': 'Could not connect to the voice server: {detail}',
  'err.micDenied':
    'Microphone access is blocked. Click the microphone (or lock) icon in the address bar, allow the microphone for this site, then press “Turn on mic”. You can still type below.',
  'err.micMissing': 'No microphone was found. Connect one and press “Turn on mic”, or type below.',
  'err.micOther': 'The microphone could not be started: {detail}',
  'err.cameraDenied': 'Camera access is blocked. Allow it in the site settings of your browser (address-bar icon) and try again.',
  'err.camera': 'The camera could not be started: {detail}',
  'err.screen': 'Screen sharing could not be started: {detail}',
  'err.lost': 'The connection was lost.',
  'err.agentTimeout':
    'The agent has not joined after 15 seconds. It may be busy or not running. Press Reconnect to try again.',
  'err.agentLeft': 'The agent left the conversation.',
  'err.ended': 'The conversation has ended.',
  'err.interrupt': 'Could not interrupt the agent: {detail}',
  'err.send': 'The message could not be sent: {detail}',
  'err.audioBlocked': 'The browser blocked audio playback. Press here to hear the agent.',
  reconnectingNotice: 'Connection unstable — reconnecting…',
  enableAudio: 'Enable audio',
  // the agent's pending confirmation (confirm_prompt.ts)
  'confirm.title': 'Please confirm',
  'confirm.yes': 'Confirm',
  'confirm.no': 'Decline',
  'confirm.sending': 'Sending your answer…',
  'confirm.confirmed': 'Confirmed. The agent is carrying it out.',
  'confirm.declined': 'Declined. Nothing was changed.',
  'confirm.failed': 'Your answer was not taken: {detail}',
} as const;

export type Key = keyof typeof en;

const ja: Record<Key, string> = {
  skipToChat: 'メッセージ入力へ移動',
  stageTitle: '音声',
  controls: '通話の操作',
  start: '開始',
  starting: '接続中…',
  reconnect: '再接続',
  mute: 'ミュート',
  unmute: 'ミュート解除',
  micOn: 'マイクをオン',
  camera: 'カメラ',
  screen: '画面共有',
  interrupt: '割り込む',
  disconnect: '終了',
  hint: '「開始」を押してマイクを許可し、話しかけてください。Esc キーで応答を止められます。',
  hintLive: 'そのまま話しかけるか、下の欄に入力してください。Esc キーで応答を止められます。',
  pttIdle: '押して話す（スペース）',
  pttHeld: '聞いています…離すと送信',
  pttHint: 'プッシュトゥトーク: このボタンかスペースキーを押している間だけ kaiwa に聞こえます。',
  cameraPreview: 'カメラのプレビュー',
  screenPreview: '画面共有のプレビュー',
  caseKicker: '案件',
  closeCase: '案件を閉じる',
  notes: 'メモ',
  noNotes: 'メモはまだありません。',
  history: 'ステータス履歴',
  noHistory: '変更はまだありません。',
  transcript: '会話',
  transcriptEmpty: 'ここに会話が表示されます。',
  chatLabel: 'メッセージ',
  chatPlaceholder: 'メッセージを入力',
  send: '送信',
  you: 'あなた',
  agent: 'エージェント',
  typed: '入力',
  'conn.disconnected': '未接続',
  'conn.connecting': '接続中',
  'conn.connected': '接続済み',
  'conn.reconnecting': '再接続中',
  'conn.signalReconnecting': '再接続中',
  'conn.failed': '接続が切れました',
  'agent.absent': 'エージェント不在',
  'agent.waiting': 'エージェントを待っています…',
  'agent.initializing': '準備中',
  'agent.idle': '待機中',
  'agent.listening': '聞いています',
  'agent.thinking': '考えています',
  'agent.speaking': '話しています',
  running: '実行中: {tools}',
  'field.customer_name': 'お客様',
  'field.phone': '電話',
  'field.email': 'メール',
  'field.device_type': '機器',
  'field.symptom': '症状',
  'field.quote_yen': '見積額',
  'field.return_date': '返却',
  'field.created_at': '受付日時',
  'field.updated_at': '更新日時',
  notQuoted: '未見積',
  statusChangedToast: '案件 {id}: {from} → {to}',
  statusChangedInline: '変更: {from} → {to}',
  historyBy: '{actor}',
  'err.tokenRefused': 'サーバーがセッションの開始を拒否しました: {detail}',
  'err.tokenHttp': 'トークンサーバーが {status} を返しました。このアドレスで kaiwa のトークンサーバーが動いているか確認してください。',
  'err.tokenNetwork': 'トークンサーバーに接続できません。ネットワーク接続を確認して、もう一度お試しください。',
  'err.tokenBadResponse': 'トークンサーバーから想定外の応答がありました。',
  'err.connect': '音声サーバーに接続できませんでした: {detail}',
  'err.micDenied':
    'マイクへのアクセスがブロックされています。アドレスバーのマイク（または鍵）アイコンから、このサイトのマイクを「許可」にして、「マイクをオン」を押してください。下の欄から文字で入力することもできます。',
  'err.micMissing': 'マイクが見つかりません。マイクを接続して「マイクをオン」を押すか、下の欄から文字で入力してください。',
  'err.micOther': 'マイクを開始できませんでした: {detail}',
  'err.cameraDenied': 'カメラへのアクセスがブロックされています。ブラウザのサイト設定（アドレスバーのアイコン）で許可してから、もう一度お試しください。',
  'err.camera': 'カメラを開始できませんでした: {detail}',
  'err.screen': '画面共有を開始できませんでした: {detail}',
  'err.lost': '接続が切れました。',
  'err.agentTimeout':
    '15 秒待ってもエージェントが参加しません。混み合っているか、起動していない可能性があります。「再接続」を押してもう一度お試しください。',
  'err.agentLeft': 'エージェントが会話から退出しました。',
  'err.ended': '会話は終了しました。',
  'err.interrupt': '応答を止められませんでした: {detail}',
  'err.send': 'メッセージを送信できませんでした: {detail}',
  'err.audioBlocked': 'ブラウザが音声の再生をブロックしました。ここを押すとエージェントの声が聞こえます。',
  reconnectingNotice: '接続が不安定です — 再接続しています…',
  enableAudio: '音声を有効にする',
  'confirm.title': 'ご確認ください',
  'confirm.yes': '確定する',
  'confirm.no': 'やめる',
  'confirm.sending': '回答を送っています…',
  'confirm.confirmed': '確定しました。エージェントが実行します。',
  'confirm.declined': '取りやめました。何も変更していません。',
  'confirm.failed': '回答を受け付けられませんでした: {detail}',
};

const statusNames: Record<Lang, Record<string, string>> = {
  en: {
    received: 'Received',
    diagnosing: 'Diagnosing',
    quoted: 'Quoted',
    approved: 'Approved',
    recovering: 'Recovering',
    ready: 'Ready for return',
    returned: 'Returned',
    cancelled: 'Cancelled',
  },
  ja: {
    received: '受付',
    diagnosing: '診断中',
    quoted: '見積済',
    approved: '承認済',
    recovering: '復旧作業中',
    ready: '返却準備完了',
    returned: '返却済',
    cancelled: 'キャンセル',
  },
};

const returnKinds: Record<Lang, Record<string, string>> = {
  en: { pickup: 'pick-up', in_store: 'pick-up at store', shipping: 'shipping', delivery: 'delivery', courier: 'courier' },
  ja: { pickup: '来店受取', in_store: '店頭受取', shipping: '配送', delivery: '配送', courier: '宅配便' },
};

export function detectLang(languages: readonly string[] = navigator.languages ?? [navigator.language]): Lang {
  const first = (languages[0] ?? navigator.language ?? 'en').toLowerCase();
  return first.startsWith('ja') ? 'ja' : 'en';
}

export const lang: Lang = detectLang();
const dict: Record<Key, string> = lang === 'ja' ? ja : en;

export function t(key: Key, vars: Record<string, string | number> = {}): string {
  return dict[key].replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? ''));
}

export function statusName(status: string): string {
  return statusNames[lang][status] ?? status;
}

export function returnKindName(kind: string): string {
  return returnKinds[lang][kind] ?? kind;
}

/** Fill `data-i18n`, `data-i18n-aria` and `data-i18n-placeholder` elements. */
export function applyStaticText(root: ParentNode = document): void {
  document.documentElement.lang = lang;
  root.querySelectorAll<HTMLElement>('[data-i18n]').forEach((el) => {
    el.textContent = t(el.dataset.i18n as Key);
  });
  root.querySelectorAll<HTMLElement>('[data-i18n-aria]').forEach((el) => {
    el.setAttribute('aria-label', t(el.dataset.i18nAria as Key));
  });
  root.querySelectorAll<HTMLInputElement>('[data-i18n-placeholder]').forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder as Key);
  });
}

const yen = new Intl.NumberFormat(lang === 'ja' ? 'ja-JP' : 'en-US', { style: 'currency', currency: 'JPY' });
const dateTime = new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', { dateStyle: 'medium' });

export function formatYen(value: number): string {
  return yen.format(value);
}

/** Localise an ISO date or date-time; unknown formats are shown as given. */
export function formatDate(value: string): string {
  const dateOnlyMatch = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (dateOnlyMatch) {
    const [, y, m, d] = dateOnlyMatch;
    return dateOnly.format(new Date(Number(y), Number(m) - 1, Number(d)));
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? value : dateTime.format(new Date(ms));
}
