// Audio level meters (Web Audio AnalyserNode) driving the orbs via requestAnimationFrame.

export interface Levels {
  user: number;
  agent: number;
}

type Side = keyof Levels;

interface Channel {
  track?: MediaStreamTrack;
  source?: MediaStreamAudioSourceNode;
  analyser?: AnalyserNode;
  buffer?: Float32Array<ArrayBuffer>;
  smoothed: number;
}

export class LevelMeter {
  private ctx?: AudioContext;
  private frame = 0;
  private readonly channels: Record<Side, Channel> = { user: { smoothed: 0 }, agent: { smoothed: 0 } };

  /** `levels` is the live object exposed as window.kaiwa.levels (RMS 0..1, updated each frame). */
  constructor(
    readonly levels: Levels,
    private readonly orbs: Record<Side, HTMLElement>,
  ) {}

  /** Create/resume the AudioContext. Call from a user gesture (the Start button). */
  async resume(): Promise<void> {
    this.ctx ??= new AudioContext();
    if (this.ctx.state === 'suspended') await this.ctx.resume().catch(() => undefined);
    if (!this.frame) this.frame = requestAnimationFrame(this.tick);
  }

  /** Point a side at a MediaStreamTrack (or nothing). Re-attaching the same track is a no-op. */
  setTrack(side: Side, track: MediaStreamTrack | undefined): void {
    const ch = this.channels[side];
    if (ch.track === track) return;
    ch.source?.disconnect();
    ch.source = ch.analyser = ch.buffer = undefined;
    ch.track = track;
    if (!track || !this.ctx) return;
    try {
      ch.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      ch.analyser = this.ctx.createAnalyser();
      ch.analyser.fftSize = 1024;
      ch.buffer = new Float32Array(ch.analyser.fftSize);
      ch.source.connect(ch.analyser); // analyser is a sink: nothing is played through Web Audio
    } catch (err) {
      console.warn('kaiwa: level meter unavailable', err);
      ch.source = ch.analyser = ch.buffer = undefined;
    }
  }

  stop(): void {
    this.setTrack('user', undefined);
    this.setTrack('agent', undefined);
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const side of ['user', 'agent'] as const) {
      this.channels[side].smoothed = 0;
      this.levels[side] = 0;
      this.orbs[side].style.setProperty('--level', '0');
    }
  }

  private readonly tick = (): void => {
    for (const side of ['user', 'agent'] as const) {
      const ch = this.channels[side];
      let rms = 0;
      if (ch.analyser && ch.buffer && ch.track?.readyState === 'live' && ch.track.enabled) {
        ch.analyser.getFloatTimeDomainData(ch.buffer);
        let sum = 0;
        for (const v of ch.buffer) sum += v * v;
        rms = Math.min(1, Math.sqrt(sum / ch.buffer.length));
      }
      this.levels[side] = rms;
      // fast attack, slow release, and a perceptual boost so normal speech (~0.05-0.2 RMS) moves the orb
      const target = Math.min(1, Math.sqrt(rms) * 1.6);
      ch.smoothed += (target - ch.smoothed) * (target > ch.smoothed ? 0.5 : 0.12);
      this.orbs[side].style.setProperty('--level', ch.smoothed.toFixed(3));
    }
    this.frame = requestAnimationFrame(this.tick);
  };
}
