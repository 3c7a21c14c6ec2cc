// Builds the dashboard into dist/: one bundle (ECharts included, nothing from a CDN),
// the page and its style sheet. `./dev build` and `./dev test` run it.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import * as esbuild from 'esbuild';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
await esbuild.build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: ['es2020'],
  outfile: 'dist/app.js',
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) cpSync(`src/${file}`, `dist/${file}`);
