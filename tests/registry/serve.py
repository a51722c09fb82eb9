#!/usr/bin/env python3
"""A minimal npm registry on loopback, for tests.

Serves every package under a fixtures directory laid out as `<root>/<name>/<version>/` (a scoped
name is `<root>/@scope/<name>/<version>/`): GET /<name> returns the packument, GET
/<name>/-/<base>-<version>.tgz the tarball, packed on the fly (entries under `package/`, sorted,
fixed mtimes so integrity is stable). Binds 127.0.0.1 only. Prints the port on stdout, then serves
until killed.

Usage: serve.py ROOT [PORT]
"""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import urllib.parse

ROOT = os.path.abspath(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
TARBALLS = {}


def pack(pkgdir):
    buf = io.BytesIO()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(pkgdir, followlinks=True):
            dirnames.sort()
            for f in sorted(filenames):
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, pkgdir)
                # Symlinks (to shared fixture files) are packed as the files they point to.
                full = os.path.realpath(full)
                info = tar.gettarinfo(full, "package/" + rel)
                info.mtime = 499162500
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return buf.getvalue()


def packages():
    out = {}
    for top in sorted(os.listdir(ROOT)):
        if top.startswith("."):
            continue
        names = [top]
        if top.startswith("@"):
            names = [top + "/" + n for n in sorted(os.listdir(os.path.join(ROOT, top)))]
        for name in names:
            out[name] = sorted(os.listdir(os.path.join(ROOT, name)))
    return out


def packument(name, host):
    versions = {}
    base = name.split("/")[-1]
    for v in packages().get(name, []):
        d = os.path.join(ROOT, name, v)
        with open(os.path.join(d, "package.json")) as fh:
            manifest = json.load(fh)
        tgz = pack(d)
        TARBALLS[f"{name}/-/{base}-{v}.tgz"] = tgz
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        manifest["_id"] = f"{name}@{v}"
        if os.path.exists(os.path.join(d, "binding.gyp")):
            manifest["gypfile"] = True
            manifest.setdefault("scripts", {})
            if not manifest["scripts"].get("install") and not manifest["scripts"].get("preinstall"):
                manifest["scripts"]["install"] = "node-gyp rebuild"
        if manifest.get("scripts") and any(k in manifest["scripts"] for k in ("preinstall", "install", "postinstall")):
            manifest["hasInstallScript"] = True
        manifest["dist"] = {
            "tarball": f"http://{host}/{name}/-/{base}-{v}.tgz",
            "integrity": integrity,
            "shasum": hashlib.sha1(tgz).hexdigest(),
        }
        versions[v] = manifest
    if not versions:
        return None
    latest = sorted(versions, key=lambda s: [int(x) if x.isdigit() else x for x in s.split(".")])[-1]
    return {"name": name, "dist-tags": {"latest": latest}, "versions": versions}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        if "/-/" in path:
            if path not in TARBALLS:
                packument(path.split("/-/")[0], self.headers.get("host"))
            body = TARBALLS.get(path)
            if body is None:
                return self.send(404, b'{"error":"not found"}')
            return self.send(200, body, "application/octet-stream")
        doc = packument(path, self.headers.get("host"))
        if doc is None:
            return self.send(404, b'{"error":"not found"}')
        self.send(200, json.dumps(doc).encode())


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
