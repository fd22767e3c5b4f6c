// The `ikegw` command line: finds the command, loads its module (src/cli/commands/, one file per
// command) and runs it with its options parsed strictly by node:util parseArgs.
//
// A command's module is imported when that command runs, never before: `ikegw version` or
// `ikegw sas` load neither the daemon nor the Kubernetes client (test/unit/cli-imports.test.ts).
// `ikegw --help` loads every command module for its line in the overview; those modules are small
// by rule (see command.ts).
import { parseArgs } from 'node:util';
import {
  type CliCommand,
  type CliIo,
  CONTROL_NOTE,
  LOG_LEVEL_NOTE,
  overviewEntry,
  PSK_NOTE,
  parseCommandLine,
} from './command.js';

export type { CliIo } from './command.js';

type Loader = () => Promise<{ command: CliCommand }>;

/** Every command, in the order `ikegw --help` lists them. */
const COMMANDS: Readonly<Record<string, Loader>> = {
  daemon: () => import('./commands/daemon.js'),
  config: () => import('./commands/config-check.js'),
  sas: () => import('./commands/sas.js'),
  initiate: () => import('./commands/initiate.js'),
  terminate: () => import('./commands/terminate.js'),
  reload: () => import('./commands/reload.js'),
  'log-level': () => import('./commands/log-level.js'),
  stats: () => import('./commands/stats.js'),
  'import-swanctl': () => import('./commands/import-swanctl.js'),
  routes: () => import('./commands/routes.js'),
  operator: () => import('./commands/operator.js'),
  version: () => import('./commands/version.js'),
};

function loader(name: string | undefined): Loader | undefined {
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

async function allCommands(): Promise<CliCommand[]> {
  return (await Promise.all(Object.values(COMMANDS).map((load) => load()))).map((m) => m.command);
}

/** `ikegw --help`: every command's synopsis and summary, then the notes. */
export async function usage(): Promise<string> {
  const entries = (await allCommands()).map(overviewEntry).join('');
  return `usage: ikegw <command> [options]\n\ncommands:\n${entries}\n${CONTROL_NOTE}\n${LOG_LEVEL_NOTE}${PSK_NOTE}`;
}

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Where the command is in argv. Usually first; options may come before it (`ikegw -c FILE sas`),
 * and then which of them take a value is known only from every command's options.
 */
async function locate(argv: string[]): Promise<{ at: number } | { error: string } | undefined> {
  const first = argv[0];
  if (first === undefined) return undefined;
  if (!first.startsWith('-')) return { at: 0 };
  const options = { ...HELP, version: { type: 'boolean', short: 'V' } } as Record<
    string,
    { type: 'string' | 'boolean'; short?: string }
  >;
  for (const c of await allCommands()) Object.assign(options, c.options);
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'option' && !Object.hasOwn(options, t.name))
      return { error: `unknown option ${t.rawName}` };
    if (t.kind === 'positional') return { at: t.index };
  }
  return undefined;
}

/** The `ikegw` command. Returns the exit code. */
export async function cliMain(argv: string[], io: CliIo): Promise<number> {
  const first = argv[0];
  if (first === 'help' || first === '-h' || first === '--help') {
    const load = first === 'help' ? loader(argv[1]) : undefined;
    io.stdout(load ? (await load()).command.help : await usage());
    return 0;
  }
  if (first === '-V' || first === '--version') return cliMain(['version', ...argv.slice(1)], io);
  const found = await locate(argv);
  if (found && 'error' in found) {
    io.stderr(`ikegw: ${found.error}\n\n${await usage()}`);
    return 2;
  }
  if (!found) {
    // options but no command: --help / --version there still mean what they say
    if (argv.includes('-h') || argv.includes('--help')) {
      io.stdout(await usage());
      return 0;
    }
    if (argv.includes('-V') || argv.includes('--version'))
      return cliMain(['version', ...argv.filter((a) => a !== '-V' && a !== '--version')], io);
    io.stdout(await usage());
    return 2;
  }
  const name = argv[found.at]!;
  const load = loader(name);
  if (!load) {
    io.stderr(`ikegw: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  const { command } = await load();
  const args = parseCommandLine([...argv.slice(0, found.at), ...argv.slice(found.at + 1)], {
    ...command.options,
    ...HELP,
  });
  if ('error' in args) {
    io.stderr(`ikegw ${command.name}: ${args.error}\n\n${command.help}`);
    return 2;
  }
  if (args.values.help) {
    io.stdout(command.help);
    return 0;
  }
  return command.run(args, io);
}
