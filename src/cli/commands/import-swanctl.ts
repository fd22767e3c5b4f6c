// `ikegw import-swanctl FILE`: converts a strongSwan swanctl.conf (the site-to-site subset) to
// ikegw's YAML; the parser and converter are src/cli/import-swanctl.ts.
import { defineCommand, PSK_NOTE } from '../command.js';

export const command = defineCommand({
  name: 'import-swanctl',
  synopsis: 'import-swanctl FILE [-o OUT] [--psk-dir DIR | --inline-psk] [--swanctl-dir DIR]',
  summary: 'convert a strongSwan swanctl.conf (site-to-site subset) to YAML',
  notes: [PSK_NOTE],
  options: {
    output: { type: 'string', short: 'o' },
    'psk-dir': { type: 'string' },
    'inline-psk': { type: 'boolean' },
    // x509/, x509ca/, private/ of auth = pubkey connections (default: the file's directory)
    'swanctl-dir': { type: 'string' },
  },
  async run({ values, positionals: [file] }, io) {
    if (!file) {
      io.stderr('ikegw import-swanctl: which file? usage: ikegw import-swanctl swanctl.conf [-o OUT]\n');
      return 2;
    }
    const inlinePsk = values['inline-psk'] ?? false;
    const pskDir = values['psk-dir'];
    if (inlinePsk && pskDir !== undefined) {
      io.stderr('ikegw import-swanctl: --inline-psk and --psk-dir exclude each other\n');
      return 2;
    }
    const { importSwanctlMain } = await import('../import-swanctl.js');
    return importSwanctlMain(
      {
        file,
        ...(values.output ? { output: values.output } : {}),
        ...(pskDir ? { pskDir } : {}),
        ...(values['swanctl-dir'] ? { swanctlDir: values['swanctl-dir'] } : {}),
        inlinePsk,
      },
      io,
    );
  },
});
