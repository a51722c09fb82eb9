// Exercise each dependency's native or downloaded part after `ringfence ci`.
'use strict';
(async () => {
  const argon2 = require('argon2');
  const hash = await argon2.hash('ringfence');
  const esbuild = require('esbuild');
  const out = esbuild.transformSync('let x: number = 1', { loader: 'ts' }).code.trim();
  const bufferutil = require('bufferutil');
  console.log('argon2:', hash.startsWith('$argon2') ? 'ok' : 'FAIL');
  console.log('esbuild:', out === 'let x = 1;' ? 'ok' : `FAIL (${out})`);
  console.log('bufferutil:', typeof bufferutil.mask === 'function' ? 'ok' : 'FAIL');
})().catch((e) => {
  console.error('FAIL', e.message);
  process.exit(1);
});
