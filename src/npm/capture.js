// Preloaded into the `npm install --ignore-scripts` process by ringfence (NODE_OPTIONS=--require).
// At exit it writes npm's own environment (after npm applied its config to it: npm_config_*,
// npm_command, INIT_CWD, NODE, ...) and npm's parsed positional arguments to the file named by
// RINGFENCE_CAPTURE, so that replayed scripts get exactly the environment npm would have given
// them. It reads nothing else and changes nothing in npm's behaviour. Only the npm CLI process
// itself writes (not node processes npm might start).
'use strict';
const out = process.env.RINGFENCE_CAPTURE;
let cli = '';
try {
  cli = require('fs').realpathSync(process.argv[1] || '');
} catch (e) {}
if (out && /npm-cli\.js$/.test(cli)) {
  delete process.env.RINGFENCE_CAPTURE;
  process.on('exit', () => {
    const fs = require('fs');
    const path = require('path');
    let remain = null;
    let error = null;
    try {
      // Parse argv exactly as npm does (nopt with npm's own definitions and shorthands) to learn
      // which arguments are package specs rather than option values.
      const npmDir = path.dirname(path.dirname(fs.realpathSync(cli)));
      const req = (m) => require(require.resolve(m, { paths: [npmDir] }));
      // npm 10 keeps its definitions in @npmcli/config; npm 8 and 9 (Debian's 9.2) in its own
      // lib/utils/config.
      let config;
      try {
        config = req('@npmcli/config/lib/definitions');
      } catch (e) {
        config = require(path.join(npmDir, 'lib/utils/config'));
      }
      const { definitions, shorthands } = config;
      const nopt = req('nopt');
      const types = {};
      for (const [k, d] of Object.entries(definitions)) types[k] = d.type;
      remain = nopt(types, shorthands, process.argv, 2).argv.remain;
    } catch (e) {
      error = String((e && e.message) || e);
    }
    // npm 10 sets npm_config_node_gyp for its scripts in its own environment; older npm's
    // @npmcli/run-script adds it to each script's environment itself, resolved from where
    // run-script is installed (Debian keeps node-gyp in /usr/share/nodejs).
    if (!process.env.npm_config_node_gyp) {
      try {
        const npmDir = path.dirname(path.dirname(fs.realpathSync(cli)));
        const runScript = path.dirname(require.resolve('@npmcli/run-script', { paths: [npmDir] }));
        process.env.npm_config_node_gyp = require.resolve('node-gyp/bin/node-gyp.js', {
          paths: [runScript, npmDir],
        });
      } catch (e) {}
    }
    const data = { env: process.env, remain, error, argv: process.argv.slice(2) };
    fs.writeFileSync(out, JSON.stringify(data));
  });
}
