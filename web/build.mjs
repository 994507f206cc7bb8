// Bundle web/src into web/dist: index.html, app.js (+ .map), app.css.
// `node build.mjs` builds once (minified); `node build.mjs --watch` rebuilds on change.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const watch = process.argv.includes('--watch');

/** Copy index.html with ?v=<content hash> on the asset URLs so browsers never run a stale bundle. */
const html = {
  name: 'html',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      const stamp = async (file) =>
        createHash('sha256').update(await readFile(join(dist, file))).digest('hex').slice(0, 10);
      let page = await readFile(join(src, 'index.html'), 'utf8');
      for (const file of ['app.js', 'app.css']) {
        page = page.replace(`"${file}"`, `"${file}?v=${await stamp(file)}"`);
      }
      await writeFile(join(dist, 'index.html'), page);
      const sizes = await Promise.all(
        ['app.js', 'app.css', 'index.html'].map(async (f) => `${f} ${((await readFile(join(dist, f))).length / 1024).toFixed(1)} KiB`),
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

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log('watching web/src …');
} else {
  await esbuild.build(options);
}
