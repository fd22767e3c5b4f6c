// What every `ikegw` command is (src/cli/commands/*.ts, one file each, as swanctl's
// src/swanctl/commands/*.c): a name, its options as node:util parseArgs declares them, its help
// text and run(args, io) -> exit code. The dispatcher (main.ts) loads a command's module only when
// that command runs (or when the overview of all commands is printed), so these modules import
// nothing heavy at the top: what a command needs beyond this (the daemon, the Kubernetes client,
// the config loader) it loads with import() inside run().
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { DEFAULT_CONTROL_SOCKET } from '../common/control-protocol.js';
import type { RunOptions } from '../daemon/main.js';

export type Env = Record<string, string | undefined>;

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Env;
  /** Passed to runDaemon and the agents (tests). */
  stop?: Promise<unknown>;
  logDestination?: { write(s: string): unknown };
  onReady?: RunOptions['onReady'];
}

/** The parsed values of a command's options: strings for `type: 'string'`, else booleans. */
export type OptionValues<O extends ParseArgsOptionsConfig> = {
  [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean;
};

export interface CommandArgs<O extends ParseArgsOptionsConfig> {
  values: OptionValues<O>;
  /** The words after the command's name (`ikegw initiate CONN` -> ['CONN']). */
  positionals: string[];
}

export interface CliCommand<O extends ParseArgsOptionsConfig = ParseArgsOptionsConfig> {
  /** As typed: `sas`, `config check`. */
  name: string;
  /** Its line in `ikegw --help`: `sas [--json]`. */
  synopsis: string;
  /** What it does, as `ikegw --help` shows it below or beside the synopsis (lines of <= 64 columns). */
  summary: string;
  /** `ikegw <command> --help`. */
  help: string;
  /** For parseArgs (strict); -h/--help is added by the dispatcher. */
  options: O;
  run(args: CommandArgs<O>, io: CliIo): Promise<number> | number;
}

/** A command with its help text: usage line, summary and the notes that apply to it. */
export function defineCommand<O extends ParseArgsOptionsConfig>(
  c: Omit<CliCommand<O>, 'help'> & { notes?: string[] },
): CliCommand<O> {
  const { notes = [], ...rest } = c;
  const help = [`usage: ikegw ${c.synopsis}\n`, `${c.summary}\n`, ...notes].join('\n');
  return { ...rest, help };
}

/** One command in `ikegw --help`: the synopsis, and the summary from column 24. */
export function overviewEntry(c: Pick<CliCommand, 'synopsis' | 'summary'>): string {
  const indent = ' '.repeat(24);
  const [first = '', ...more] = c.summary.split('\n');
  const head = `  ${c.synopsis}`;
  const top =
    head.length < indent.length ? `${head.padEnd(indent.length)}${first}` : `${head}\n${indent}${first}`;
  return `${[top, ...more.map((l) => `${indent}${l}`)].join('\n')}\n`;
}

// ---- notes shared by several commands' help --------------------------------------------------------

/** sas, initiate, terminate, reload, log-level, stats. */
export const CONTROL_NOTE = `sas, initiate, terminate, reload, log-level and stats talk to the daemon over its control
socket: --socket PATH, else $IKEGW_SOCKET, else control.socket of -c FILE, else
${DEFAULT_CONTROL_SOCKET}. Exit codes: 0 ok, 1 failed (or reload left changes pending),
2 usage or invalid configuration, 3 daemon not reachable.
`;

/** daemon --log-level. */
export const LOG_LEVEL_NOTE = `--log-level takes a level (trace debug info warn error fatal silent) and/or
subsystem=level pairs, comma separated: --log-level info,ike=debug,net=trace
`;

export const PSK_NOTE = 'Pre-shared keys are never taken from the command line.\n';

// ---- parsing ----------------------------------------------------------------------------------------------

/** parseArgs, strict: every option must be one the command declares, values where they belong. */
export function parseCommandLine<O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
): CommandArgs<O> | { error: string } {
  try {
    const r = parseArgs({ args, options, strict: true, allowPositionals: true });
    return { values: r.values as OptionValues<O>, positionals: r.positionals };
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) throw e;
    return { error: describeParseError(args, options) ?? (e as Error).message };
  }
}

/** The first thing strict parsing refused, in the CLI's words ("unknown option --psk"). */
function describeParseError(args: string[], options: ParseArgsOptionsConfig): string | undefined {
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (!spec) return `unknown option ${t.rawName}`;
    if (spec.type === 'string' && t.value === undefined) return `${t.rawName} needs a value`;
    if (spec.type === 'string' && !t.inlineValue && t.value?.startsWith('-'))
      return `${t.rawName} needs a value (one that starts with "-" is written ${t.rawName}=${t.value})`;
    if (spec.type === 'boolean' && t.inlineValue) return `${t.rawName} takes no value`;
  }
  return undefined;
}
