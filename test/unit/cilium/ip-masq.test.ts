// editNonMasqueradeCidrs: the ip-masq-agent config edit, in both formats.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_NON_MASQ_CIDRS, editNonMasqueradeCidrs } from '../../../src/cilium/ip-masq.js';

describe('editNonMasqueradeCidrs', () => {
  it('YAML flow list: keeps comments and style, appends, dedupes only VPN CIDRs', () => {
    const text =
      '# top\nnonMasqueradeCIDRs: [10.0.0.0/8, 10.0.0.0/8, 192.168.0.0/16, 192.168.0.0/16] # inline\nmasqLinkLocal: true\n';
    const r = editNonMasqueradeCidrs(text, ['192.168.0.0/16', '172.20.0.0/24'], []);
    expect(r.changed).toBe(true);
    expect(r.text).toBe(
      '# top\nnonMasqueradeCIDRs: [ 10.0.0.0/8, 10.0.0.0/8, 192.168.0.0/16, 172.20.0.0/24 ] # inline\nmasqLinkLocal: true\n',
    );
    expect(r.managed).toEqual(['172.20.0.0/24']);
    expect(r.removed).toEqual(['192.168.0.0/16']);
  });

  it('field names match case-insensitively, as encoding/json does', () => {
    const r = editNonMasqueradeCidrs('NonMasqueradeCIDRs:\n  - 10.0.0.0/8\n', ['172.20.0.0/24'], []);
    expect(parse(r.text)).toEqual({ NonMasqueradeCIDRs: ['10.0.0.0/8', '172.20.0.0/24'] });
  });

  it('compact JSON stays compact; nothing to do means unchanged text', () => {
    const text = '{"nonMasqueradeCIDRs":["10.0.0.0/8","172.20.0.0/24"],"masqLinkLocal":true}';
    const same = editNonMasqueradeCidrs(text, ['172.20.0.0/24'], []);
    expect(same.changed).toBe(false);
    expect(same.text).toBe(text);
    const r = editNonMasqueradeCidrs(text, ['fd00:99::/64'], []);
    expect(r.text).toBe(
      '{"nonMasqueradeCIDRs":["10.0.0.0/8","172.20.0.0/24","fd00:99::/64"],"masqLinkLocal":true}',
    );
  });

  it('removes only what it added before; equal CIDRs in other spellings are recognized', () => {
    const text = 'nonMasqueradeCIDRs:\n- 10.0.0.0/8\n- 172.20.0.0/24\n- fd00:99:0::/64\n';
    const r = editNonMasqueradeCidrs(text, ['fd00:99::/64'], ['172.20.0.0/24', '10.0.0.0/8']);
    expect(parse(r.text)).toEqual({ nonMasqueradeCIDRs: ['fd00:99:0::/64'] });
    expect(r.managed).toEqual([]); // it was there already, in another spelling
  });

  it('empty or missing config: the defaults plus the VPN CIDRs; a config without the field: just the CIDRs', () => {
    const r = editNonMasqueradeCidrs(undefined, ['172.20.0.0/24'], []);
    expect(JSON.parse(r.text)).toEqual({ nonMasqueradeCIDRs: [...DEFAULT_NON_MASQ_CIDRS, '172.20.0.0/24'] });
    expect(editNonMasqueradeCidrs('', ['10.0.0.0/8'], []).changed).toBe(false);
    const y = editNonMasqueradeCidrs('masqLinkLocal: false\n', ['172.20.0.0/24'], []);
    expect(parse(y.text)).toEqual({ masqLinkLocal: false, nonMasqueradeCIDRs: ['172.20.0.0/24'] });
  });

  it('refuses configs it cannot read', () => {
    expect(() => editNonMasqueradeCidrs('{not json', ['1.0.0.0/8'], [])).toThrow(
      /neither valid JSON nor YAML/,
    );
    expect(() => editNonMasqueradeCidrs('nonMasqueradeCIDRs: 10.0.0.0/8\n', ['1.0.0.0/8'], [])).toThrow(
      /not a list/,
    );
    expect(() => editNonMasqueradeCidrs('- a\n- b\n', ['1.0.0.0/8'], [])).toThrow(/not a mapping/);
  });
});
