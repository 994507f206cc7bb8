// Token fetch + Room construction + agent lookup (LiveKit conventions, see web/README.md).

import { ParticipantKind, Room, type Participant, type RemoteParticipant } from 'livekit-client';

export const ATTR_AGENT_STATE = 'lk.agent.state';
export const ATTR_TOOLS = 'kaiwa.tools';
export const ATTR_NOTICE = 'kaiwa.notice';
export const TOPIC_TRANSCRIPTION = 'lk.transcription';
export const TOPIC_CHAT = 'lk.chat';
export const RPC_INTERRUPT = 'kaiwa.interrupt';

export interface TokenResponse {
  server_url: string;
  participant_token: string;
  room_name?: string;
  participant_name?: string;
  participant_identity?: string;
}

/** `refused`: the server answered with its JSON error (detail is shown); `http`: some other non-2xx. */
export class TokenError extends Error {
  constructor(
    readonly kind: 'refused' | 'http' | 'network' | 'bad-response',
    readonly detail: string,
    readonly status?: number,
  ) {
    super(`token request failed (${kind}): ${detail}`);
  }
}

/**
 * POST {} to the token endpoint (relative by default, so a path prefix behind a proxy works).
 * `headers` adds e.g. `Authorization: Bearer <key>` (the widget's `token-key`).
 */
export async function fetchToken(url = 'token', headers: Record<string, string> = {}): Promise<TokenResponse> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (err) {
    throw new TokenError('network', String(err));
  }
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: e.g. an HTML error page from something that is not the token server */
  }
  const obj = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!res.ok) {
    const detail = obj.detail ?? obj.error;
    if (typeof detail === 'string' && detail) throw new TokenError('refused', detail, res.status);
    throw new TokenError('http', `${res.status} ${res.statusText}`.trim(), res.status);
  }
  if (typeof obj.server_url !== 'string' || typeof obj.participant_token !== 'string') {
    throw new TokenError('bad-response', 'server_url/participant_token missing', res.status);
  }
  return obj as unknown as TokenResponse;
}

export function createRoom(): Room {
  return new Room({
    adaptiveStream: true,
    dynacast: true,
    audioCaptureDefaults: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
}

export function isAgent(p: Participant): boolean {
  return p.kind === ParticipantKind.AGENT || p.attributes[ATTR_AGENT_STATE] !== undefined;
}

export function findAgent(room: Room): RemoteParticipant | undefined {
  for (const p of room.remoteParticipants.values()) if (isAgent(p)) return p;
  return undefined;
}

/** `kaiwa.tools`: JSON array of running tool names; anything malformed counts as none. */
export function parseTools(raw: string | undefined): string[] {
  if (!raw) return [];
  try {
    const v: unknown = JSON.parse(raw);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];
  } catch {
    return [];
  }
}

export type NoticeLevel = 'info' | 'warning' | 'error';
export interface Notice {
  level: NoticeLevel;
  text: string;
}

/** `kaiwa.notice`: JSON {level, text}; empty string = none. A bare string is shown as info. */
export function parseNotice(raw: string | undefined): Notice | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<Notice> | null;
    if (!v || typeof v.text !== 'string' || !v.text) return null;
    const level: NoticeLevel = v.level === 'warning' || v.level === 'error' ? v.level : 'info';
    return { level, text: v.text };
  } catch {
    return { level: 'info', text: raw };
  }
}
