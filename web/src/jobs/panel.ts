// Background jobs on the page: the agent streams each job's progress as JSON on the text
// stream topic `kaiwa.jobs` ({"v": 1, "job": JobUpdate}); the panel shows one card per job
// (name, status, percent bar, the last output lines) and a Cancel button that calls the
// agent's RPC `kaiwa.jobs.cancel` ({"job_id"}). Shared by the staff console and the widget.

import type { Room, TextStreamReader } from 'livekit-client';

export const TOPIC_JOBS = 'kaiwa.jobs';
export const RPC_JOBS_CANCEL = 'kaiwa.jobs.cancel';

export interface JobUpdate {
  id: string;
  name: string;
  args: Record<string, unknown>;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'timeout';
  percent: number | null;
  pid: number | null;
  elapsed_s: number;
  exit_code: number | null;
  lines: string[];
  line_count: number;
  actor: string;
}

const JA: Record<string, string> = {
  Jobs: 'ジョブ',
  running: '実行中',
  succeeded: '完了',
  failed: '失敗',
  cancelled: '中止',
  timeout: '時間切れ',
  Cancel: '中止',
};

function tr(key: string): string {
  return navigator.language.toLowerCase().startsWith('ja') ? (JA[key] ?? key) : key;
}

export function parseJobUpdate(text: string): JobUpdate | null {
  try {
    const body = JSON.parse(text) as { v?: unknown; job?: unknown };
    const job = body.job as JobUpdate | undefined;
    if (body.v !== 1 || !job || typeof job.id !== 'string' || typeof job.status !== 'string') return null;
    job.lines = Array.isArray(job.lines) ? job.lines.map(String) : [];
    return job;
  } catch {
    return null;
  }
}

export class JobsPanel {
  readonly jobs = new Map<string, JobUpdate>();
  room: Room | undefined;
  agentIdentity: () => string | null = () => null;

  constructor(readonly root: HTMLElement) {
    root.hidden = true;
  }

  /** Read one kaiwa.jobs stream (register with room.registerTextStreamHandler). */
  async consume(reader: TextStreamReader): Promise<void> {
    const job = parseJobUpdate(await reader.readAll());
    if (job) this.update(job);
  }

  update(job: JobUpdate): void {
    this.jobs.set(job.id, job);
    this.render();
  }

  clear(): void {
    this.jobs.clear();
    this.render();
  }

  async cancel(jobId: string): Promise<void> {
    const agent = this.agentIdentity();
    if (!this.room || !agent) return;
    await this.room.localParticipant.performRpc({
      destinationIdentity: agent,
      method: RPC_JOBS_CANCEL,
      payload: JSON.stringify({ job_id: jobId }),
      responseTimeout: 8000,
    });
  }

  private render(): void {
    const root = this.root;
    root.hidden = this.jobs.size === 0;
    const title = document.createElement('h3');
    title.className = 'jobs-title';
    title.textContent = tr('Jobs');
    const cards = [...this.jobs.values()].reverse().map((job) => this.card(job));
    root.replaceChildren(title, ...cards);
  }

  private card(job: JobUpdate): HTMLElement {
    const el = document.createElement('article');
    el.className = 'job';
    el.dataset.jobId = job.id;
    el.dataset.status = job.status;
    const head = document.createElement('p');
    head.className = 'job-head';
    const args = Object.values(job.args ?? {}).map(String).join(' ');
    head.textContent = `${job.name} ${args} · ${tr(job.status)} · ${Math.round(job.elapsed_s)} s`;
    const bar = document.createElement('progress');
    bar.className = 'job-progress';
    bar.max = 100;
    if (job.percent !== null) bar.value = job.percent;
    else if (job.status !== 'running') bar.value = 100;
    else bar.removeAttribute('value'); // indeterminate
    bar.setAttribute('aria-label', `${job.name} ${job.percent ?? ''}%`);
    const out = document.createElement('pre');
    out.className = 'job-lines';
    out.textContent = job.lines.slice(-6).join('\n');
    el.append(head, bar, out);
    if (job.status === 'running') {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'btn job-cancel';
      btn.textContent = tr('Cancel');
      btn.addEventListener('click', () => {
        btn.disabled = true;
        void this.cancel(job.id).catch(() => (btn.disabled = false));
      });
      el.append(btn);
    }
    return el;
  }
}

export const JOBS_CSS = `
.jobs { display: flex; flex-direction: column; gap: 8px; margin: 8px 0; }
.jobs-title { font-size: 0.85rem; margin: 0; opacity: 0.8; }
.job { border: 1px solid rgba(127,127,127,0.35); border-radius: 8px; padding: 8px 10px; }
.job-head { margin: 0 0 4px; font-size: 0.85rem; font-weight: 600; }
.job-progress { width: 100%; height: 10px; }
.job-lines { margin: 4px 0 0; max-height: 7.5em; overflow: auto; font-size: 0.75rem; white-space: pre-wrap; }
.job[data-status="failed"] .job-head, .job[data-status="timeout"] .job-head { color: #c0392b; }
.job[data-status="succeeded"] .job-head { color: #1e8449; }
.job-cancel { margin-top: 6px; min-height: 32px; }
`;
