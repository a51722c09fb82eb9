// ringfence env-probe recorder, loaded into every node process of a sandboxed run through
// NODE_OPTIONS=--require (it sits next to the run's log directory, `log/`). It wraps process.env in a Proxy that forwards every operation unchanged
// and notes which variable NAMES were looked up (get / `in`), and whether the whole environment
// was listed. Values are never recorded. One JSON line per new (op, name) goes to a per-process
// file in the run's log directory, written when the current tick ends and at exit, so a process
// killed later (a time-gated payload) has already left its probes behind. It also notes which
// files under HOME node code opens, reads or checks (the decoy secrets live there), other
// processes' environments (/proc/*/environ), dotenv and .npmrc files anywhere and system secret
// paths, so that such reads are seen and attributed to the process that made them.
'use strict';
(() => {
  let fs;
  let dir;
  try {
    fs = require('fs');
    dir = require('path').join(__dirname, 'log');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    return;
  }
  const real = process.env;
  const seen = new Set();
  let pending = [JSON.stringify({ op: 'start', argv: [process.argv[0], ...process.execArgv, ...process.argv.slice(1)].slice(0, 16).map((a) => String(a).slice(0, 200)), t: Date.now() }) + '\n'];
  let scheduled = false;
  let busy = false;
  let fd = -1;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    busy = true;
    try {
      if (fd < 0) fd = fs.openSync(`${dir}/${process.pid}-${Date.now()}.jsonl`, 'a', 0o600);
      fs.writeSync(fd, text);
    } catch {
      // Recording must never disturb the script.
    } finally {
      busy = false;
    }
  };
  // Property names the runtime itself asks any object for: not environment probes.
  const internal = new Set(['toJSON', 'then', 'constructor', 'valueOf', 'toString', 'inspect', 'length']);
  // Names just listed by ownKeys: copying or serialising the environment (spread, JSON,
  // Object.entries, child_process's copy) then reads every one of them, in the listed order; that
  // is one listing, not a probe of each name. The first read out of that order ends the copy —
  // a synchronous spawn copies the environment and returns in the same run, and what the script
  // reads next is a probe again.
  let listed = null;
  const copying = (op, name) => {
    if (listed === null || op !== 'get') return false;
    if (listed.keys[listed.at] === name) {
      listed.at += 1;
      if (listed.at >= listed.keys.length) listed = null;
      return true;
    }
    listed = null;
    return false;
  };
  const note = (op, name) => {
    if (busy || typeof name !== 'string' || internal.has(name)) return;
    if (copying(op, name)) return;
    const key = `${op}\0${name}`;
    if (seen.has(key) || seen.size > 4000) return;
    seen.add(key);
    pending.push(JSON.stringify({ op, name, t: Date.now() }) + '\n');
    if (!scheduled) {
      scheduled = true;
      process.nextTick(flush);
    }
  };
  const proxy = new Proxy(real, {
    get(target, key) {
      note('get', key);
      return Reflect.get(target, key);
    },
    // Assign on the real object itself: the default trap would define a partial descriptor
    // through the proxy, which process.env rejects.
    set(target, key, value) {
      return Reflect.set(target, key, value);
    },
    has(target, key) {
      note('has', key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      note('list', '*');
      const keys = Reflect.ownKeys(target);
      if (listed === null) queueMicrotask(() => (listed = null));
      listed = { keys, at: 0 };
      return keys;
    },
  });
  try {
    Object.defineProperty(process, 'env', { value: proxy, writable: true, enumerable: true, configurable: true });
  } catch {
    return;
  }
  // File access under HOME through the fs module: wrappers that note the path and call the
  // original with the same receiver and arguments.
  let home = null;
  let resolve = null;
  try {
    home = require('os').homedir();
    resolve = require('path').resolve;
  } catch {
    // No attribution of file reads then.
  }
  // System places secrets live in (other processes' environments are matched above).
  const sensitive = ['/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/etc/sudoers.d', '/var/run/secrets', '/run/secrets', '/root'];
  // Host paths bound below HOME (the project, npm's cache): not the decoy home. Filled in by
  // ringfence when it plants this file.
  const binds = /*RINGFENCE_BINDS*/[];
  // The caller's real home, when the sandbox's HOME is another directory (the landlock tier):
  // its files are still tried by absolute path. Filled in by ringfence.
  const homes = /*RINGFENCE_HOMES*/[];
  const touched = (p) => {
    if (!home || busy) return;
    try {
      let s = p;
      if (s instanceof URL) s = s.pathname;
      else if (Buffer.isBuffer(s)) s = s.toString();
      if (typeof s !== 'string') return;
      const abs = resolve(s);
      const bound = binds.some((b) => abs === b || abs.startsWith(`${b}/`));
      if (
        ((abs === home || abs.startsWith(`${home}/`)) && !bound) ||
        (homes.some((h) => abs === h || abs.startsWith(`${h}/`)) && !bound) ||
        /^\/proc\/[^/]+\/environ$/.test(abs) ||
        /\/(\.env(\.[^/]*)?|\.npmrc)$/.test(abs) ||
        sensitive.some((p) => abs === p || abs.startsWith(`${p}/`))
      ) {
        note('open', abs);
      }
    } catch {
      // Never disturb the call.
    }
  };
  const wrap = (obj, name) => {
    const orig = obj && obj[name];
    if (typeof orig !== 'function') return;
    const wrapped = function (p, ...rest) {
      touched(p);
      return orig.call(this, p, ...rest);
    };
    try {
      Object.defineProperty(wrapped, 'length', { value: orig.length });
      Object.defineProperty(wrapped, 'name', { value: orig.name });
      for (const k of Reflect.ownKeys(orig)) {
        if (!(k in wrapped)) wrapped[k] = orig[k];
      }
      obj[name] = wrapped;
    } catch {
      // Leave it unwrapped.
    }
  };
  for (const name of ['readFileSync', 'readFile', 'openSync', 'open', 'createReadStream', 'existsSync', 'statSync', 'accessSync', 'readdirSync', 'copyFileSync']) {
    wrap(fs, name);
  }
  try {
    for (const name of ['readFile', 'open', 'access', 'stat', 'readdir', 'copyFile']) wrap(fs.promises, name);
  } catch {
    // fs.promises unavailable.
  }
  // Network attempts through node's own modules: where there is no sinkhole (the landlock tier)
  // nothing answers, so the destination named here is all there is to record. One line per new
  // destination: the host and port, the URL path for HTTP, the first bytes of a datagram (these
  // stay in this run's log and are only searched for canaries; reports carry destinations).
  // Bytes of what this process sends kept for the canary search (the log has its own budget).
  let dataBudget = 3 << 20;
  const netNote = (kind, host, port, path, data, method) => {
    if (busy) return;
    try {
      const h = String(host == null ? '' : host).slice(0, 512);
      const dest = `${h}:${Number(port) || 0}`;
      const m = method ? String(method).slice(0, 16).toUpperCase() : '';
      const key = `net\0${kind}\0${dest}\0${path || ''}\0${m}`;
      if (seen.has(key) || seen.size > 4000) return;
      seen.add(key);
      const line = { op: 'net', name: dest, kind, t: Date.now() };
      if (path) line.path = String(path).slice(0, 4096);
      if (m) line.method = m;
      if (data && dataBudget > 0) {
        const kept = Buffer.from(data).subarray(0, Math.min(262144, dataBudget));
        dataBudget -= kept.length;
        line.data = kept.toString('hex');
      }
      pending.push(JSON.stringify(line) + '\n');
      if (!scheduled) {
        scheduled = true;
        process.nextTick(flush);
      }
    } catch {
      // Never disturb the call.
    }
  };
  const hook = (obj, name, seeArgs) => {
    const orig = obj && obj[name];
    if (typeof orig !== 'function') return;
    const wrapped = function (...args) {
      try {
        seeArgs.apply(this, args);
      } catch {
        // Never disturb the call.
      }
      return orig.apply(this, args);
    };
    try {
      Object.defineProperty(wrapped, 'length', { value: orig.length });
      Object.defineProperty(wrapped, 'name', { value: orig.name });
      obj[name] = wrapped;
    } catch {
      // Leave it unwrapped.
    }
  };
  const fromUrl = (kind, u, method) => {
    const url = u instanceof URL ? u : new URL(String(u));
    const port = url.port || (url.protocol === 'https:' ? 443 : url.protocol === 'http:' ? 80 : 0);
    netNote(kind, url.hostname, port, url.pathname + url.search, null, method);
  };
  try {
    const net = require('net');
    // What a raw stream carries: searched for canaries by ringfence, never reported.
    let writes = 0;
    hook(net.Socket.prototype, 'write', function (chunk) {
      if (writes > 256 || chunk == null || typeof chunk === 'function') return;
      writes += 1;
      const dest = this._netDest;
      if (dest) netNote(`tcp-data:${writes}`, dest[0], dest[1], null, Buffer.from(chunk));
    });
    hook(net.Socket.prototype, 'connect', function (a, b) {
      const o0 = Array.isArray(a) ? a[0] : a;
      if (o0 && typeof o0 === 'object' && !o0.path) this._netDest = [o0.host || 'localhost', o0.port];
      else if (typeof o0 === 'number' || /^\d+$/.test(String(o0))) this._netDest = [typeof b === 'string' ? b : 'localhost', o0];
    });
    hook(net.Socket.prototype, 'connect', (a, b) => {
      const o = Array.isArray(a) ? a[0] : a;
      if (o && typeof o === 'object') {
        if (o.path) netNote('unix', o.path, 0);
        else netNote('tcp', o.host || 'localhost', o.port);
      } else if (typeof o === 'string' && !/^\d+$/.test(o)) netNote('unix', o, 0);
      else netNote('tcp', typeof b === 'string' ? b : 'localhost', o);
    });
  } catch {
    // net unavailable.
  }
  try {
    const dns = require('dns');
    for (const name of ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveTxt']) {
      hook(dns, name, (host) => netNote('dns', host, 0));
      if (dns.promises) hook(dns.promises, name, (host) => netNote('dns', host, 0));
    }
  } catch {
    // dns unavailable.
  }
  for (const [mod, port] of [['http', 80], ['https', 443]]) {
    try {
      const m = require(mod);
      const see = (a, b) => {
        const opts = b && typeof b === 'object' ? b : {};
        if (typeof a === 'string' || a instanceof URL) return fromUrl(mod, a, opts.method);
        const o = a && typeof a === 'object' ? a : opts;
        netNote(mod, o.hostname || o.host || 'localhost', o.port || port, o.path || '/', null, o.method);
      };
      hook(m, 'request', see);
      hook(m, 'get', see);
    } catch {
      // Module unavailable.
    }
  }
  // What an HTTP request carries (headers, body chunks): searched for canaries by ringfence,
  // never copied into a report.
  try {
    const proto = require('http').ClientRequest.prototype;
    let chunks = 0;
    const carried = function (chunk) {
      if (chunks > 256) return;
      chunks += 1;
      const port = (this.agent && this.agent.defaultPort) || (this.protocol === 'https:' ? 443 : 80);
      let headers = '';
      try {
        headers = JSON.stringify(this.getHeaders());
      } catch {
        // No headers then.
      }
      const body = chunk == null || typeof chunk === 'function' ? '' : chunk;
      const data = Buffer.concat([Buffer.from(headers), Buffer.from(' '), Buffer.from(body)]);
      netNote(`${this.protocol === 'https:' ? 'https' : 'http'}-body:${chunks}`, this.host, port, this.path, data, this.method);
    };
    hook(proto, 'write', function (chunk) { carried.call(this, chunk); });
    hook(proto, 'end', function (chunk) { carried.call(this, chunk); });
  } catch {
    // http unavailable.
  }
  if (typeof globalThis.fetch === 'function') {
    // What a fetch carries (headers, a body given as text, bytes, form or search parameters):
    // searched for canaries by ringfence, never copied into a report.
    const fetched = (init) => {
      const parts = [];
      const h = init && init.headers;
      if (h) {
        const pairs = typeof h.forEach === 'function' && !Array.isArray(h) ? [] : null;
        if (pairs) h.forEach((v, k) => pairs.push([k, v]));
        parts.push(JSON.stringify(pairs || (Array.isArray(h) ? h : Object.entries(h))));
      }
      const b = init && init.body;
      if (typeof b === 'string') parts.push(b);
      else if (b instanceof URLSearchParams) parts.push(b.toString());
      else if (b instanceof ArrayBuffer) parts.push(Buffer.from(b));
      else if (ArrayBuffer.isView(b)) parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
      else if (typeof FormData === 'function' && b instanceof FormData) {
        for (const [k, v] of b) parts.push(`${k}=${typeof v === 'string' ? v : ''}`);
      }
      return parts.length ? Buffer.concat(parts.map((x) => Buffer.from(x))) : null;
    };
    let fetches = 0;
    hook(globalThis, 'fetch', (input, init) => {
      const method = (init && init.method) || (input && input.method);
      const u = typeof input === 'string' || input instanceof URL ? input : input && input.url;
      if (!u) return;
      fromUrl('fetch', u, method);
      const data = fetched(init);
      if (data && fetches < 256) {
        fetches += 1;
        const url = u instanceof URL ? u : new URL(String(u));
        const port = url.port || (url.protocol === 'https:' ? 443 : url.protocol === 'http:' ? 80 : 0);
        netNote(`fetch-body:${fetches}`, url.hostname, port, url.pathname + url.search, data, method);
      }
    });
  }
  try {
    const dgram = require('dgram');
    hook(dgram.Socket.prototype, 'send', (msg, a, b, c, d) => {
      // send(msg, port, address) or send(msg, offset, length, port, address)
      const five = typeof c === 'number';
      const port = five ? c : a;
      const address = five ? d : b;
      let data = null;
      if (typeof msg === 'string' || Buffer.isBuffer(msg) || msg instanceof Uint8Array) data = msg;
      else if (Array.isArray(msg) && msg.length) data = msg[0];
      netNote('udp', typeof address === 'string' ? address : 'localhost', port, null, data);
    });
  } catch {
    // dgram unavailable.
  }
  process.on('exit', flush);
  flush();
})();
