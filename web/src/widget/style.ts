// The widget's own styles (shadow DOM: nothing leaks into or out of the host page).
// Hosts can size and place the element itself, set the custom properties below, or style
// the parts (::part(panel|start|stop|mute|interrupt|talk|state|tools|error|transcript), and the
// confirmation prompt's confirm|confirm-summary|confirm-yes|confirm-no|confirm-result, whose
// own styles come from src/confirm_prompt.ts).

export const WIDGET_CSS = `
:host {
  --kaiwa-bg: #ffffff;
  --kaiwa-fg: #1d2433;
  --kaiwa-muted: #5b6475;
  --kaiwa-border: #d8dde6;
  --kaiwa-accent: #2f6fed;
  --kaiwa-user: #2f6fed;
  --kaiwa-idle: #8a93a5;
  --kaiwa-listening: #1f9d68;
  --kaiwa-thinking: #c88a12;
  --kaiwa-speaking: #7a4de8;
  --kaiwa-danger: #c9372c;
  display: block;
  width: 320px;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", sans-serif;
  color: var(--kaiwa-fg);
}
:host([hidden]) { display: none; }
:host([floating]) { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; }
@media (prefers-color-scheme: dark) {
  :host {
    --kaiwa-bg: #181c24; --kaiwa-fg: #e7eaf0; --kaiwa-muted: #9aa3b5; --kaiwa-border: #2c3342;
  }
}
.panel {
  background: var(--kaiwa-bg);
  border: 1px solid var(--kaiwa-border);
  border-radius: 14px;
  box-shadow: 0 6px 24px rgb(0 0 0 / 0.12);
  padding: 12px;
  display: grid;
  gap: 10px;
}
.top { display: flex; align-items: center; gap: 12px; }
.orbs { position: relative; width: 56px; height: 56px; flex: none; display: grid; place-items: center; }
.orb { --level: 0; position: absolute; border-radius: 50%; }
.orb-user {
  width: 54px; height: 54px; border: 2px solid var(--kaiwa-user);
  opacity: calc(0.18 + var(--level) * 0.8);
  transform: scale(calc(0.82 + var(--level) * 0.2));
}
.orb-agent {
  --c: var(--kaiwa-idle);
  width: 34px; height: 34px;
  background: radial-gradient(circle at 38% 34%, color-mix(in srgb, var(--c) 55%, white), var(--c) 70%);
  box-shadow: 0 0 calc(4px + var(--level) * 24px) calc(var(--level) * 6px) color-mix(in srgb, var(--c) 55%, transparent);
  transform: scale(calc(1 + var(--level) * 0.28));
  transition: background 0.4s ease;
}
.panel[data-agent="listening"] .orb-agent { --c: var(--kaiwa-listening); }
.panel[data-agent="thinking"] .orb-agent { --c: var(--kaiwa-thinking); animation: breathe 1.1s ease-in-out infinite; }
.panel[data-agent="speaking"] .orb-agent { --c: var(--kaiwa-speaking); }
.panel[data-agent="initializing"] .orb-agent,
.panel[data-agent="waiting"] .orb-agent { animation: breathe 2.4s ease-in-out infinite; }
@keyframes breathe { 50% { opacity: 0.55; } }
@media (prefers-reduced-motion: reduce) { .orb { transition: none; animation: none !important; } }
.info { display: grid; gap: 4px; min-width: 0; }
.state { font-weight: 600; }
.tools { color: var(--kaiwa-thinking); font-size: 0.85em; overflow-wrap: anywhere; }
.controls { display: flex; flex-wrap: wrap; gap: 6px; }
button {
  font: inherit; min-height: 36px; padding: 4px 12px; border-radius: 8px;
  border: 1px solid var(--kaiwa-border); background: transparent; color: inherit; cursor: pointer;
}
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible { outline: 2px solid var(--kaiwa-accent); outline-offset: 2px; }
button.primary { background: var(--kaiwa-accent); border-color: var(--kaiwa-accent); color: #fff; }
button.attention { border-color: var(--kaiwa-speaking); color: var(--kaiwa-speaking); }
[hidden] { display: none !important; }
.error { color: var(--kaiwa-danger); font-size: 0.9em; }
.confirm-slot { display: contents; }
.transcript {
  max-height: 220px; overflow-y: auto; display: grid; gap: 6px; align-content: start;
  border-top: 1px solid var(--kaiwa-border); padding-top: 8px;
}
.empty { color: var(--kaiwa-muted); margin: 0; font-size: 0.9em; }
.msg { display: grid; gap: 1px; }
.msg .who { font-size: 0.75em; color: var(--kaiwa-muted); }
.msg .text { margin: 0; overflow-wrap: anywhere; }
.msg-user .text { color: var(--kaiwa-user); }
.msg[data-final="false"] .text { opacity: 0.75; }
.audio { display: none; }
`;
