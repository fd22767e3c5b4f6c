// RFC 6902 JSON Patch (with RFC 6901 pointers) and RFC 7386 JSON Merge Patch, as the API server
// applies them (it uses github.com/evanphx/json-patch; error texts below follow that library's).

export class PatchError extends Error {
  constructor(
    message: string,
    /** true: the patch document itself is malformed (400); false: it does not apply (422). */
    readonly malformed = false,
  ) {
    super(message);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObj(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

export function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`JSON pointer must start with "/": ${p}`, true);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(tok: string, len: number, forAdd: boolean, path: string): number {
  if (forAdd && tok === '-') return len;
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) throw new PatchError(`invalid array index ${tok} in ${path}`);
  const i = Number(tok);
  if (i > len || (!forAdd && i === len)) throw new PatchError(`array index out of bounds: ${path}`);
  return i;
}

/** The container holding the last token, and that token. */
function parentOf(doc: Json, tokens: string[], path: string, op: string): { parent: Json; key: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const i = arrayIndex(t, cur.length, false, path);
      cur = cur[i]!;
    } else if (isObj(cur) && Object.hasOwn(cur, t)) {
      cur = cur[t]!;
    } else {
      throw new PatchError(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
    }
  }
  return { parent: cur, key: tokens[tokens.length - 1]! };
}

function getAt(doc: Json, path: string, op: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return doc;
  const { parent, key } = parentOf(doc, tokens, path, op);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent.length, false, path)]!;
  if (isObj(parent) && Object.hasOwn(parent, key)) return parent[key]!;
  throw new PatchError(`${op} operation does not apply: doc is missing key: ${path}: missing value`);
}

function removeAt(doc: Json, path: string, op: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw new PatchError(`${op}: cannot remove the document root`);
  const { parent, key } = parentOf(doc, tokens, path, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(key, parent.length, false, path);
    return parent.splice(i, 1)[0]!;
  }
  if (isObj(parent) && Object.hasOwn(parent, key)) {
    const v = parent[key]!;
    delete parent[key];
    return v;
  }
  throw new PatchError(`${op} operation does not apply: doc is missing key: ${path}: missing value`);
}

/** add: inserts into arrays, sets (or overwrites) object members; the parent must exist. */
function addAt(doc: Json, path: string, value: Json, op: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, path, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true, path), 0, value);
  else if (isObj(parent)) parent[key] = value;
  else throw new PatchError(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  return doc;
}

function replaceAt(doc: Json, path: string, value: Json): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, path, 'replace');
  if (Array.isArray(parent)) parent[arrayIndex(key, parent.length, false, path)] = value;
  else if (isObj(parent) && Object.hasOwn(parent, key)) parent[key] = value;
  else throw new PatchError(`replace operation does not apply: doc is missing key: ${path}: missing value`);
  return doc;
}

/** Applies an RFC 6902 patch to a copy of `doc`; all or nothing. */
export function applyJsonPatch(doc: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch))
    throw new PatchError('json: cannot unmarshal object into Go value of type jsonpatch.Patch', true);
  let out = clone(doc) as Json;
  for (const raw of patch) {
    if (!isObj(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError('invalid JSON patch operation', true);
    }
    const { op, path } = raw;
    const needValue = op === 'add' || op === 'replace' || op === 'test';
    if (needValue && !Object.hasOwn(raw, 'value'))
      throw new PatchError(`${op} operation: missing value`, true);
    const value = raw.value as Json;
    switch (op) {
      case 'add':
        out = addAt(out, path, clone(value), 'add');
        break;
      case 'remove':
        removeAt(out, path, 'remove');
        break;
      case 'replace':
        out = replaceAt(out, path, clone(value));
        break;
      case 'move': {
        if (typeof raw.from !== 'string') throw new PatchError('move operation: missing from', true);
        const v = removeAt(out, raw.from, 'move');
        out = addAt(out, path, v, 'move');
        break;
      }
      case 'copy': {
        if (typeof raw.from !== 'string') throw new PatchError('copy operation: missing from', true);
        out = addAt(out, path, clone(getAt(out, raw.from, 'copy')), 'copy');
        break;
      }
      case 'test': {
        let cur: Json | undefined;
        try {
          cur = getAt(out, path, 'test');
        } catch {
          cur = undefined;
        }
        // RFC 6902 §4.6: a test of a missing member against null fails too (evanphx does the same
        // unless the value is null and the member is absent: then it passes). Follow evanphx.
        const ok = cur === undefined ? value === null : deepEqual(cur, value);
        if (!ok) throw new PatchError(`testing value ${path} failed: test failed`);
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${op}`, true);
    }
  }
  return out;
}

/** RFC 7386: objects merge recursively, null deletes, everything else replaces. */
export function applyMergePatch(doc: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, Json> = isObj(doc) ? (clone(doc) as Record<string, Json>) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v) as Json;
  }
  return out;
}
