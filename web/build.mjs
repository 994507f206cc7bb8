// Bundle web/src into web/dist: index.html, app.js (+ .map), app.css (the caller page) and
// console.html, console.js, console.css (the staff console at /console), and widget.js (the
// <kaiwa-voice> drop-in custom element, an ES module) with the demo pages from examples/.
// `node build.mjs` builds once (minified); `node build.mjs --watch` rebuilds on change.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const examples = join(root, 'examples');
const dist = join(root, 'dist');
const watch = process.argv.includes('--watch');

/** Copy examples/*.html to dist/examples/ with ../widget.js?v=<content hash>. */
const examplePages = {
  name: 'examples',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      const stamp = createHash('sha256').update(await readFile(join(dist, 'widget.js'))).digest('hex').slice(0, 10);
      await mkdir(join(dist, 'examples'), { recursive: true });
      const pages = (await readdir(examples)).filter((f) => f.endsWith('.html'));
      for (const file of pages) {
        const page = (await readFile(join(examples, file), 'utf8')).replaceAll("'../widget.js'", `'../widget.js?v=${stamp}'`);
        await writeFile(join(dist, 'examples', file), page);
      }
      const kib = ((await readFile(join(dist, 'widget.js'))).length / 1024).toFixed(1);
      console.log(`built web/dist: widget.js ${kib} KiB, examples/${pages.join(', examples/')}`);
    });
  },
};

/** Copy index.html with ?v=<content hash> on the asset URLs so browsers never run a stale bundle. */
const html = {
  name: 'html',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      const stamp = async (file) =>
        createHash('sha256').update(await readFile(join(dist, file))).digest('hex').slice(0, 10);
      // the caller page and the staff console, each with its own bundle
      for (const [htmlFile, assets] of [
        ['index.html', ['app.js', 'app.css']],
        ['console.html', ['console.js', 'console.css']],
      ]) {
        let page = await readFile(join(src, htmlFile), 'utf8');
        for (const file of assets) {
          page = page.replace(`"${file}"`, `"${file}?v=${await stamp(file)}"`);
        }
        await writeFile(join(dist, htmlFile), page);
      }
      const sizes = await Promise.all(
        ['app.js', 'app.css', 'index.html', 'console.js', 'console.css', 'console.html'].map(async (f) => `${f} ${((await readFile(join(dist, f))).length / 1024).toFixed(1)} KiB`),
      );
      console.log(`built web/dist: ${sizes.join(', ')}`);
    });
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const options = {
  entryPoints: [
    { in: join(src, 'main.ts'), out: 'app' },
    { in: join(src, 'app.css'), out: 'app' },
    { in: join(src, 'console', 'main.ts'), out: 'console' },
    { in: join(src, 'console.css'), out: 'console' },
  ],
  outdir: dist,
  entryNames: '[name]',
  bundle: true,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: !watch,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [html],
};

// the widget: an ES module (import it, or <script type="module">), built from the same sources
const widgetOptions = {
  ...options,
  entryPoints: [{ in: join(src, 'widget', 'widget.ts'), out: 'widget' }],
  format: 'esm',
  plugins: [examplePages],
};

if (watch) {
  const ctx = await esbuild.context(options);
  const widgetCtx = await esbuild.context(widgetOptions);
  await Promise.all([ctx.watch(), widgetCtx.watch()]);
  console.log('watching web/src …');
} else {
  await esbuild.build(widgetOptions);
  await esbuild.build(options);
}
