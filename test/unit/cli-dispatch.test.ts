// The dispatcher (src/cli/main.ts): finding the command, per-command help, strict options.
import { describe, expect, it } from 'vitest';
import { command as sas } from '../../src/cli/commands/sas.js';
import { cliMain, usage } from '../../src/cli/main.js';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await cliMain(argv, { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {} });
  return { code, out: out.join(''), err: err.join('') };
}

describe('ikegw dispatcher', () => {
  it('--help lists every command in order, synopsis then summary from column 24', async () => {
    const u = await usage();
    expect(u.startsWith('usage: ikegw <command> [options]\n\ncommands:\n')).toBe(true);
    const order = [
      'daemon [-c FILE]',
      'config check [FILE]',
      'sas [--json]          list IKE_SAs',
      'initiate CONN',
      'terminate CONN',
      'reload                re-read the configuration',
      'log-level [SUBSYS] [LEVEL]',
      'stats [--json]        daemon counters',
      'import-swanctl FILE',
      'routes [--node-netns PATH]',
      'operator              keep the frontend',
      'version               print the version',
    ].map((s) => u.indexOf(`\n  ${s}`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(u).toContain('\n                        bytes, packets, times (like swanctl --list-sas)\n');
    expect(u.endsWith('Pre-shared keys are never taken from the command line.\n')).toBe(true);
    expect((await cli('--help')).out).toBe(u);
    expect(await cli()).toEqual({ code: 2, out: u, err: '' });
  });

  it('COMMAND --help and help COMMAND print that command’s help', async () => {
    expect(await cli('sas', '--help')).toEqual({ code: 0, out: sas.help, err: '' });
    expect(await cli('help', 'sas')).toEqual({ code: 0, out: sas.help, err: '' });
    expect(sas.help).toMatch(/^usage: ikegw sas \[--json\]\n\nlist IKE_SAs/);
    expect(sas.help).toContain('--socket PATH, else $IKEGW_SOCKET');
    expect((await cli('config', '-h')).out).toMatch(/^usage: ikegw config check \[FILE\] \[--from-env\]\n/);
  });

  it('options are strict per command: exit 2 with the command’s help', async () => {
    const r = await cli('terminate', 'onprem', '--child', 'net');
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `ikegw terminate: unknown option --child\n\n${(await import('../../src/cli/commands/terminate.js')).command.help}`,
    );
    expect((await cli('sas', '--socket')).err).toMatch(
      /^ikegw sas: --socket needs a value\n\nusage: ikegw sas/,
    );
    expect((await cli('sas', '--json=yes')).err).toMatch(/^ikegw sas: --json takes no value\n/);
    expect((await cli('version', '--json')).code).toBe(2);
  });

  it('finds the command after global options; -V / --version', async () => {
    const sock = '/nonexistent/ikegw-test.sock';
    const r = await cli('--socket', sock, 'sas');
    expect(r.code).toBe(3);
    expect(r.err).toContain(`no control socket at ${sock}`);
    expect((await cli('--version')).out).toMatch(/^ikegw \d+\.\d+\.\d+ \(node v/);
    expect((await cli('-V')).code).toBe(0);
    const bad = await cli('--bogus', 'sas');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^ikegw: unknown option --bogus\n\nusage: ikegw <command>/);
    expect((await cli('frobnicate')).err).toMatch(/^ikegw: unknown command "frobnicate"\n\nusage:/);
  });
});
