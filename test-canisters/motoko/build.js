// Compiles every src/<name>.mo to <out>/<name>.wasm and <out>/<name>.did with
// the npm build of moc (package `motoko`, pinned in package-lock.json), with
// the bundled `core` library as `mo:core`.
// Usage: node build.js <out-dir> [name ...]
'use strict';
const fs = require('fs');
const path = require('path');

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node build.js <out-dir> [name ...]');
  process.exit(2);
}
const srcDir = path.join(__dirname, 'src');
const names = process.argv.length > 3
  ? process.argv.slice(3)
  : fs.readdirSync(srcDir).filter((f) => f.endsWith('.mo')).map((f) => f.slice(0, -3)).sort();

const mo = require('motoko');
const mocVersion = `motoko@${require('motoko/package.json').version}`;
mo.loadPackage(require('motoko/packages/latest/core.json'));
fs.mkdirSync(outDir, { recursive: true });

for (const name of names) {
  const started = Date.now();
  const file = `${name}.mo`;
  mo.write(file, fs.readFileSync(path.join(srcDir, file), 'utf8'));
  // The raw compiler entry point (what `mo.wasm` wraps) keeps the diagnostics'
  // positions; `mo.wasm` would only throw their joined messages.
  const { code, diagnostics } = mo.compiler.compileWasm('ic', file);
  for (const d of diagnostics || []) {
    const { line, character } = d.range.start;
    console.error(`${d.source}:${line + 1}:${character + 1}: ${d.category} ${d.code}: ${d.message}`);
  }
  if (!code) {
    console.error(`${mocVersion}: failed to compile ${file}`);
    process.exit(1);
  }
  const wasm = Buffer.from(code.wasm);
  fs.writeFileSync(path.join(outDir, `${name}.wasm`), wasm);
  fs.writeFileSync(path.join(outDir, `${name}.did`), code.candid);
  console.log(`${mocVersion}: ${file} -> ${name}.wasm (${wasm.length} bytes, ${Date.now() - started} ms)`);
}
