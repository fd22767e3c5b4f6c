// A loose model of an IKE message for structure-aware mutation: the 28-byte header and the payload
// chain as segments (type, flags byte, body), parsed without any validation beyond the generic
// headers. Serializing recomputes the Next Payload links and every length (unless told not to), so
// payloads can be removed, duplicated, reordered, retyped and spliced between messages while the
// result still gets past the generic framing into the payload decoders.
import { getUint, havoc, mutateLength, putUint } from './mutate.js';
import type { Rng } from './rng.js';

export const SK = 46;
export const SKF = 53;
export const HEADER_LEN = 28;

export interface Segment {
  type: number;
  /** Byte 1 of the generic header: critical bit (0x80) and reserved bits. */
  flags: number;
  /** SK/SKF: the Next Payload field holds the first inner payload's type. */
  innerType?: number;
  body: Uint8Array;
}

export interface MessageModel {
  header: Uint8Array;
  segments: Segment[];
}

/** Walks a payload chain; stops at the first inconsistency (what was read so far is kept). */
export function parseChain(first: number, b: Uint8Array, start = 0): Segment[] {
  const out: Segment[] = [];
  let type = first;
  let off = start;
  while (type !== 0 && off + 4 <= b.length) {
    const next = b[off]!;
    const flags = b[off + 1]!;
    const len = getUint(b, off + 2, 2);
    if (len < 4 || off + len > b.length) break;
    const seg: Segment = { type, flags, body: b.slice(off + 4, off + len) };
    if (type === SK || type === SKF) {
      seg.innerType = next;
      out.push(seg);
      break;
    }
    out.push(seg);
    type = next;
    off += len;
  }
  return out;
}

export function parseMessage(b: Uint8Array): MessageModel | undefined {
  if (b.length < HEADER_LEN) return undefined;
  return { header: b.slice(0, HEADER_LEN), segments: parseChain(b[16]!, b, HEADER_LEN) };
}

/** Next Payload of segment i's generic header. */
function nextOf(segs: readonly Segment[], i: number): number {
  const s = segs[i]!;
  if (s.innerType !== undefined && (s.type === SK || s.type === SKF)) return s.innerType;
  return segs[i + 1]?.type ?? 0;
}

export function serializeChain(segs: readonly Segment[]): Uint8Array {
  let n = 0;
  for (const s of segs) n += 4 + s.body.length;
  const out = new Uint8Array(n);
  let off = 0;
  segs.forEach((s, i) => {
    out[off] = nextOf(segs, i);
    out[off + 1] = s.flags;
    putUint(out, off + 2, 2, Math.min(0xffff, 4 + s.body.length));
    out.set(s.body, off + 4);
    off += 4 + s.body.length;
  });
  return out;
}

export function serializeMessage(m: MessageModel): Uint8Array {
  const chain = serializeChain(m.segments);
  const out = new Uint8Array(HEADER_LEN + chain.length);
  out.set(m.header.subarray(0, HEADER_LEN));
  out[16] = m.segments[0]?.type ?? 0;
  out.set(chain, HEADER_LEN);
  putUint(out, 24, 4, out.length);
  return out;
}

/** Offsets (in a serialized message) of the header length and each generic payload length. */
export function messageLengthFields(b: Uint8Array): Array<{ at: number; size: 1 | 2 | 4 }> {
  const out: Array<{ at: number; size: 1 | 2 | 4 }> = [{ at: 24, size: 4 }];
  let type = b[16] ?? 0;
  let off = HEADER_LEN;
  while (type !== 0 && off + 4 <= b.length) {
    out.push({ at: off + 2, size: 2 });
    const len = getUint(b, off + 2, 2);
    if (type === SK || type === SKF || len < 4) break;
    type = b[off]!;
    off += len;
  }
  return out;
}

/**
 * Offsets of the length and count fields inside a payload body, per payload type: proposal and
 * transform lengths, SPI sizes and counts, selector lengths, attribute lengths, fragment numbers.
 */
export function bodyFields(type: number, b: Uint8Array): Array<{ at: number; size: 1 | 2 | 4 }> {
  const f: Array<{ at: number; size: 1 | 2 | 4 }> = [];
  switch (type) {
    case 33: {
      // SA: proposals, transforms, attributes
      let p = 0;
      while (p + 8 <= b.length) {
        const plen = getUint(b, p + 2, 2);
        f.push({ at: p, size: 1 }, { at: p + 2, size: 2 }, { at: p + 6, size: 1 }, { at: p + 7, size: 1 });
        const spiSize = b[p + 6]!;
        let t = p + 8 + spiSize;
        const end = Math.min(b.length, p + plen);
        while (t + 8 <= end) {
          const tlen = getUint(b, t + 2, 2);
          f.push({ at: t, size: 1 }, { at: t + 2, size: 2 }, { at: t + 4, size: 1 }, { at: t + 6, size: 2 });
          let a = t + 8;
          const tend = Math.min(end, t + tlen);
          while (a + 4 <= tend) {
            f.push({ at: a, size: 2 });
            const tv = (b[a]! & 0x80) !== 0;
            if (!tv) f.push({ at: a + 2, size: 2 });
            a += tv ? 4 : 4 + getUint(b, a + 2, 2);
          }
          if (tlen < 8) break;
          t += tlen;
        }
        if (plen < 8) break;
        p += plen;
      }
      break;
    }
    case 44:
    case 45: {
      // TS: number of selectors, selector lengths
      f.push({ at: 0, size: 1 });
      let s = 4;
      while (s + 4 <= b.length) {
        f.push({ at: s, size: 1 }, { at: s + 1, size: 1 }, { at: s + 2, size: 2 });
        const len = getUint(b, s + 2, 2);
        if (len < 4) break;
        s += len;
      }
      break;
    }
    case 41: // Notify: protocol, SPI size, type
      f.push({ at: 0, size: 1 }, { at: 1, size: 1 }, { at: 2, size: 2 });
      break;
    case 42: // Delete: protocol, SPI size, number of SPIs
      f.push({ at: 0, size: 1 }, { at: 1, size: 1 }, { at: 2, size: 2 });
      break;
    case 34: // KE: group
      f.push({ at: 0, size: 2 });
      break;
    case 35:
    case 36: // ID type
    case 39: // AUTH method
    case 37:
    case 38: // CERT encoding
      f.push({ at: 0, size: 1 });
      break;
    case 47: {
      // CP: type, attribute lengths
      f.push({ at: 0, size: 1 });
      let a = 4;
      while (a + 4 <= b.length) {
        f.push({ at: a, size: 2 }, { at: a + 2, size: 2 });
        a += 4 + getUint(b, a + 2, 2);
      }
      break;
    }
    case 48: // EAP: code, identifier, length
      f.push({ at: 0, size: 1 }, { at: 2, size: 2 });
      break;
    case SKF: // fragment number, total
      f.push({ at: 0, size: 2 }, { at: 2, size: 2 });
      break;
  }
  return f.filter((x) => x.at + x.size <= b.length);
}

export const PAYLOAD_TYPES = [
  0, 1, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 53, 54, 128, 200, 255,
];

/**
 * One structure-aware mutation of a segment list (in place, returns it): remove, duplicate,
 * reorder, insert from `pool`, retype, flip the critical bit, edit a body (with its internal
 * length fields), swap in another body of the same type.
 */
export function mutateSegments(rng: Rng, segs: Segment[], pool: readonly Segment[]): Segment[] {
  const n = segs.length;
  const i = rng.int(Math.max(n, 1));
  switch (rng.int(11)) {
    case 0: // remove
      if (n > 0) segs.splice(i, 1);
      break;
    case 1: // duplicate
      if (n > 0) segs.splice(rng.int(n + 1), 0, cloneSeg(segs[i]!));
      break;
    case 2: {
      // move one
      if (n < 2) break;
      const [s] = segs.splice(i, 1);
      segs.splice(rng.int(n), 0, s!);
      break;
    }
    case 3: // shuffle
      rng.shuffle(segs);
      break;
    case 4: // insert from the pool
      if (pool.length) segs.splice(rng.int(n + 1), 0, cloneSeg(rng.pick(pool)));
      break;
    case 5: // retype: the body of one payload read as another
      if (n > 0) segs[i]!.type = rng.pick(PAYLOAD_TYPES);
      break;
    case 6: // critical / reserved bits
      if (n > 0) segs[i]!.flags ^= rng.chance(0.7) ? 0x80 : 1 << rng.int(7);
      break;
    case 7: {
      // same-type body from the pool
      if (n === 0) break;
      const same = pool.filter((p) => p.type === segs[i]!.type);
      if (same.length) segs[i]!.body = new Uint8Array(rng.pick(same).body);
      break;
    }
    case 8: // SK/SKF inner type
      if (n > 0 && segs[i]!.innerType !== undefined) segs[i]!.innerType = rng.pick(PAYLOAD_TYPES);
      break;
    default: {
      // edit a body, preferring its length and count fields
      if (n === 0) break;
      const s = segs[i]!;
      const fields = bodyFields(s.type, s.body);
      if (fields.length && rng.chance(0.5)) {
        const f = rng.pick(fields);
        s.body = new Uint8Array(s.body);
        putUint(s.body, f.at, f.size, mutateLength(rng, getUint(s.body, f.at, f.size), f.size));
      } else s.body = havoc(rng, s.body, [], 3, fields);
    }
  }
  return segs;
}

export function cloneSeg(s: Segment): Segment {
  return { ...s, body: new Uint8Array(s.body) };
}
