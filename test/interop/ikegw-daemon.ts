// Runs the ikegw daemon (dist/bin/ikegw.js, the bundle the package and image ship) inside a lab namespace and follows its JSON log.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Lab, LabProcess } from './lab.js';

export const CLI = resolve(import.meta.dirname, '../../dist/bin/ikegw.js');

/**
 * The node flags of the executable's first line (`#!/usr/bin/env -S node FLAGS`), which the image's
 * entrypoint passes too: a daemon started as `node dist/bin/ikegw.js` would run without them (e.g. a
 * larger young generation, so more RSS than as deployed).
 */
export const NODE_FLAGS: string[] = (() => {
  try {
    const first = readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '';
    const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
    return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
  } catch {
    return [];
  }
})();

export interface LogLine {
  level: number;
  msg: string;
  subsys?: string;
  [k: string]: unknown;
}

export class IkegwProcess {
  constructor(
    readonly proc: LabProcess,
    readonly logFile: string,
  ) {}

  lines(): LogLine[] {
    let text = '';
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return [];
    }
    const out: LogLine[] = [];
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  text(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines().find(pred);
      if (hit) return hit;
      if (Date.now() > end)
        throw new Error(
          `ikegw log has no matching line after ${timeoutMs} ms; log:\n${this.text().slice(-6000)}`,
        );
      if (!this.proc.running) throw new Error(`ikegw exited; log:\n${this.text().slice(-6000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export function startIkegw(
  lab: Lab,
  ns: string,
  name: string,
  configYaml: string,
  psk: string,
): IkegwProcess {
  const cfg = join(lab.dir, `${name}.yaml`);
  const pskFile = join(lab.dir, `${name}.psk`);
  writeFileSync(pskFile, psk, { mode: 0o600 });
  writeFileSync(cfg, configYaml.replaceAll('@PSK_FILE@', pskFile));
  const logFile = join(lab.dir, `${name}.log`);
  const proc = lab.spawn(ns, process.execPath, [...NODE_FLAGS, CLI, 'daemon', '-c', cfg], { logFile });
  return new IkegwProcess(proc, logFile);
}
