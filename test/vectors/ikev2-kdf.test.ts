// Published known answers for prf+ and the IKEv2 key schedule (RFC 7296 §2.13, §2.14, §2.17, §2.18).
// RFC 7296 has no vectors of its own; these come from strongSwan's prf+ test data and from NIST's
// SP 800-135 IKEv2 KDF validation data (CAVS and ACVP).
import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex } from '../../src/common/bytes.js';
import { deriveChildKeys, deriveIkeKeys, deriveRekeyedIkeKeys } from '../../src/ike/crypto/keymat.js';
import { prf, prfPlus } from '../../src/ike/crypto/suites.js';
import { Encr, Integ, Prf } from '../../src/ike/wire/constants.js';

const h = fromHex;
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const u64 = (s: string): bigint => BigInt(`0x${s}`);

describe('prf+ (RFC 7296 §2.13)', () => {
  // strongSwan src/libstrongswan/tests/suites/test_prf_plus.c, counter_data[0] (IKEv2 prf+ with
  // the counter octet): PRF_HMAC_SHA2_256, key 20 x 0x0b, seed "Hi There". The test draws
  // 3, 6, 7, 16, 8, 8, 14, 20 and 40 bytes in turn; concatenated they are the first 122 bytes.
  const stream = [
    'b9bdc0',
    '8988b4c2b75a',
    'a93e596ac84205',
    'fa2ddde1bf7a2572067b00e14b237732',
    '830509981ad2f94a',
    '8c32a47daa2255b6',
    '60c436347ae756a6edc023477d80',
    '9590e682f61d9c04b06b4ad971a34c8147fa6679',
    '2ff1434b93c722b32e12f48832ebc15ce2369ce71fe9b7b81e5704c14d0f5280a6ec626e992d7a9f',
  ].join('');

  it('strongSwan test_prf_plus.c counter vector (HMAC-SHA2-256)', () => {
    const out = prfPlus(
      Prf.HMAC_SHA2_256,
      new Uint8Array(20).fill(0x0b),
      ascii('Hi There'),
      stream.length / 2,
    );
    expect(hex(out)).toBe(stream);
  });

  it('is a prefix-stable stream: shorter outputs are prefixes of longer ones', () => {
    const key = new Uint8Array(20).fill(0x0b);
    const out = prfPlus(Prf.HMAC_SHA2_256, key, ascii('Hi There'), 45);
    expect(hex(out)).toBe(stream.slice(0, 90));
    // T1 = prf(K, S | 0x01)
    expect(out.subarray(0, 32)).toEqual(
      prf(Prf.HMAC_SHA2_256, key, concat(ascii('Hi There'), Uint8Array.of(1))),
    );
  });

  it('stops at 255 blocks (strongSwan test_wrap)', () => {
    const key = new Uint8Array(20).fill(0x0b);
    expect(prfPlus(Prf.HMAC_SHA2_256, key, ascii('Hi There'), 255 * 32).length).toBe(8160);
    expect(() => prfPlus(Prf.HMAC_SHA2_256, key, ascii('Hi There'), 255 * 32 + 1)).toThrow(
      /prf\+ cannot produce/,
    );
  });
});

// NIST CAVS SP 800-135 KDF component test vectors, file ikev2.fax from "800-135testvectors/ikev2.zip",
// [SHA-1] COUNT = 0 (Ni/Nr 64 bits, g^ir 1024 bits, DKM 1056 bits).
const cavsSha1 = {
  ni: h('3651fef5c9c35e93'),
  nr: h('c09a8b90a3f04d59'),
  gir: h(
    'd084a30166a50fb7325c3960874a839449ef9741c2f4f947d0201dd8c1269273d79509f37e3ca3eb4fa2fe2a28254e28' +
      '9cd3f34dad4eb4df1a07685a4b8a94fa61e2491f7598b3ce65547ff133b3f63d1ac4175eaa695033f3cedb026a6873a3' +
      '6455172a8540b8a5d23a0143bed0390ee49b168269d75fffee9fb62be965993c',
  ),
  girNew: h(
    '52f00ab174c25d5b7139ae5ff4e8e9eddee5992d2e36adf8a559ffd90dab1442e4fbe429d320c0f33552a17d1557fa41' +
      'ea70e8fb916c4fa27ed52b5f8ebd8461afa78f1159159a64055ac5f6319e29c28eae58cbc6847770f32c3fed1d047504' +
      '84f854790f95e9ec01bc5bc461f24966462e359511329305038e94deb6dd42c2',
  ),
  spiI: u64('8e5c3ae507221684'),
  spiR: u64('b1f201bb155c3acd'),
  skeyseed: 'cd2e8050137832245f1dbacc6e4f0a92f94d45d6',
  dkm:
    '6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92dddedbe2436db69f60977c58fa63bbb667f8d369' +
    '20b109baae8f6c61a9ac49feda01843225d080ec5539d5881a25521ffb2a0a91874a9c0a27fcc2d717eb8963a9e3a89c' +
    '7ab264757284c28cf8c3ca40576f4220b052b1fb8e9ad60ba3c80557323331a8cbb89f20',
  dkmChild:
    '4727dc0ef94eb326ce131cf282fb652faa638ad0ddae3786a11bcc0309876009f8c485de011ad962c5b1ca8a41ff8145' +
    '445749079c5686e26ffebbc342f06981f3da745e11ca0976424d1f8caec623d59dc7186deb20a27b411d1dcb70a36544' +
    '0bf7de905088b0692e8addc094e18d1939bdb67e89798ca6b239e2ccb81c2409dac0106c',
  dkmChildDh:
    'b109c21ad4c0797768c1cec9e63554681e48f224bca7f23c20c4ea7041983451e9aa1d5408656c8a975ff1b9d9a12c75' +
    'ffeb64bdecb30174664cccb4e14f1c377b7f6d1525af77c7092aac3e47f917ebae8297fb5539d2008ce830823a09cc19' +
    '7361d4a289c72745f6ce9fefe812be5bf55b3200fbb82e41a4a40877d3fe106db909707b',
  skeyseedRekey: '3b03bce748c96d5e8306918d2ff89b68f0648da3',
};

describe('IKEv2 KDF, PRF_HMAC_SHA1: NIST CAVS 800-135 ikev2.fax [SHA-1] COUNT=0', () => {
  const v = cavsSha1;
  // AES_CBC_128 + HMAC_SHA1_96 + PRF_HMAC_SHA1 needs 3*20 + 2*20 + 2*16 = 132 bytes: exactly the DKM.
  const suite = { prf: Prf.HMAC_SHA1, encr: { id: Encr.AES_CBC, keyBits: 128 }, integ: Integ.HMAC_SHA1_96 };

  it('SKEYSEED and DKM = {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}', () => {
    const k = deriveIkeKeys(suite, v.ni, v.nr, v.gir, v.spiI, v.spiR);
    expect(hex(k.skeyseed)).toBe(v.skeyseed);
    expect(hex(concat(k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr))).toBe(v.dkm);
    expect([k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr].map((x) => x.length)).toEqual([
      20, 20, 20, 16, 16, 20, 20,
    ]);
  });

  it('DKM(Child SA) = prf+(SK_d, Ni | Nr)', () => {
    const skD = h(v.dkm.slice(0, 40));
    const c = deriveChildKeys(Prf.HMAC_SHA1, skD, v.ni, v.nr, undefined, 46, 20);
    expect(hex(concat(c.encrI, c.integI, c.encrR, c.integR))).toBe(v.dkmChild);
    expect(hex(c.encrI)).toBe(v.dkmChild.slice(0, 92));
    expect(hex(c.integR)).toBe(v.dkmChild.slice(-40));
  });

  it('DKM(Child SA D-H) = prf+(SK_d, g^ir (new) | Ni | Nr)', () => {
    const skD = h(v.dkm.slice(0, 40));
    const c = deriveChildKeys(Prf.HMAC_SHA1, skD, v.ni, v.nr, v.girNew, 46, 20);
    expect(hex(concat(c.encrI, c.integI, c.encrR, c.integR))).toBe(v.dkmChildDh);
  });

  it('SKEYSEED(Rekey) = prf(SK_d (old), g^ir (new) | Ni | Nr)', () => {
    const skD = h(v.dkm.slice(0, 40));
    const k = deriveRekeyedIkeKeys(Prf.HMAC_SHA1, skD, suite, v.girNew, v.ni, v.nr, v.spiI, v.spiR);
    expect(hex(k.skeyseed)).toBe(v.skeyseedRekey);
    // ...and the new keys are prf+ of that SKEYSEED over Ni | Nr | SPIi | SPIr.
    const seed = concat(v.ni, v.nr, h('8e5c3ae507221684'), h('b1f201bb155c3acd'));
    expect(k.skD).toEqual(prfPlus(Prf.HMAC_SHA1, k.skeyseed, seed, 20));
  });
});

// OpenSSL test/recipes/30-test_evp_data/evpkdf_ikev2.txt, the "self_test_data.c" entries (SHA256):
// the same Ni, Nr, g^ir, g^ir (new), SPIs as the CAVS vector above, with PRF_HMAC_SHA2_256.
describe('IKEv2 KDF, PRF_HMAC_SHA2_256: OpenSSL evpkdf_ikev2.txt self-test data', () => {
  const v = cavsSha1;
  const skeyseed = 'efaa7ab0eaa85a3d0be2100cd4b6fe00ff5025a9eafddb3ef518e9f0d3fe60e6';
  const dkm =
    '462b9dd525d4fd71169174272779e704baf62c6231779ae9efe8c58b21916b42010164af2111ebd762f6916ca9a6f0ee' +
    '05c8b320e4ee27705521de2589adea1878f1a551738af7c88dc4f0bb0c096a3f7d1f1a670fc79f49f678d60d665bb371' +
    '0c8657f03ba9f62b9a818d7a228968c506e237ae9502aa6db395c61ea6a3e79504f86b7368bfb5423df79e48809bbccd' +
    '49fd826d024f63d7c2a5566400a12e736aa034510428f5ea008fe2fc16886fa388274ea6c2b4fcfc6141bf04f8207ef8' +
    'afc224ea1059cb220dc0b23ac0e4ccda495a4e131b1d56e223aba5a48e8ed1f5';
  const dkmChild =
    '23647677e7d403fa1e3006f19840aee18ad9fecc4215814c4131bdeba98433d8b0e31bfbbddf822abcce5e06486aa388' +
    '022b75e27e1e68aa5983028b65282c730c5d49ef7606770376cfdec41f7cc435d816029989bc353d3b67b9fd1168ddcb' +
    '8978850da9b752aee6a30d0086d2c4d74ec0e03648a0dad334faf5fe88084e67b0f3e8fee8b5e1bd3850db540f1fb8cf' +
    'fe23c9e92cda209373f354880c246c753e2a0eca9cb73b9910a8531c4010e6768fa29f909e60af777fed6e739c3cfda0' +
    '3467e915d6f03fce9c41f5f9d578f8912d66a75457e79ee1d5bcc2be5c2f9bae';
  const dkmChildDh =
    '6a919387a5fa2835fe8a8237e4a14845bd2b9930db87eff7adf268f62186004902dba9aa942d0259a0edc4120b932a50' +
    '3865b57ba8fb88117ef5df7b26799cd8ba37aa5438108cb1a4fe117907c9d0597b708c3f11151fefd624d2317202b7c8' +
    '1430600e6fcbb6e1a8df2b4861ef2363d53de1be69057b0cf6634a7e7bfa97b3c2810623e2bd6757738777177036e9c3' +
    'a39794456954bd41fc444a12507ab9cac69a0540d13c29db8510f566a691691baa2d9569dacc990d56a454bb444bcbbe' +
    '8751b0550a5278812fc5ab4f28990dd6d608538d7ddde24dc81bdaaca7751fde';
  const rekey = '90722c42bd849e9b72d240fc254174270fa8295de6f0338dafc303a9ec104f12';
  const skD = h(dkm.slice(0, 64));

  it('GEN: SKEYSEED = prf(Ni | Nr, g^ir)', () => {
    expect(hex(prf(Prf.HMAC_SHA2_256, concat(v.ni, v.nr), v.gir))).toBe(skeyseed);
  });
  it('DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)', () => {
    const seed = concat(v.ni, v.nr, h('8e5c3ae507221684b1f201bb155c3acd'));
    expect(hex(prfPlus(Prf.HMAC_SHA2_256, h(skeyseed), seed, dkm.length / 2))).toBe(dkm);
    // The same through deriveIkeKeys: AES_GCM_16_256 + PRF_HMAC_SHA2_256 takes 3*32 + 2*36 bytes.
    const k = deriveIkeKeys(
      { prf: Prf.HMAC_SHA2_256, encr: { id: Encr.AES_GCM_16, keyBits: 256 }, integ: Integ.NONE },
      v.ni,
      v.nr,
      v.gir,
      v.spiI,
      v.spiR,
    );
    expect(hex(k.skeyseed)).toBe(skeyseed);
    expect(hex(concat(k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr))).toBe(dkm.slice(0, 2 * 168));
    expect(k.skAi.length).toBe(0);
    expect(k.skEi.length).toBe(36);
  });
  it('DKM(Child_SA)', () => {
    const c = deriveChildKeys(Prf.HMAC_SHA2_256, skD, v.ni, v.nr, undefined, 60, 20);
    expect(hex(concat(c.encrI, c.integI, c.encrR, c.integR))).toBe(dkmChild.slice(0, 2 * 160));
    expect(hex(prfPlus(Prf.HMAC_SHA2_256, skD, concat(v.ni, v.nr), dkmChild.length / 2))).toBe(dkmChild);
  });
  it('DKM(Child_DH)', () => {
    expect(hex(prfPlus(Prf.HMAC_SHA2_256, skD, concat(v.girNew, v.ni, v.nr), dkmChildDh.length / 2))).toBe(
      dkmChildDh,
    );
    const c = deriveChildKeys(Prf.HMAC_SHA2_256, skD, v.ni, v.nr, v.girNew, 32, 32);
    expect(hex(concat(c.encrI, c.integI, c.encrR, c.integR))).toBe(dkmChildDh.slice(0, 256));
  });
  it('rekey: SKEYSEED = prf(SK_d, g^ir (new) | Ni | Nr)', () => {
    const suite = {
      prf: Prf.HMAC_SHA2_256,
      encr: { id: Encr.AES_CBC, keyBits: 256 },
      integ: Integ.HMAC_SHA2_256_128,
    };
    const k = deriveRekeyedIkeKeys(Prf.HMAC_SHA2_256, skD, suite, v.girNew, v.ni, v.nr, v.spiI, v.spiR);
    expect(hex(k.skeyseed)).toBe(rekey);
  });
});

// NIST ACVP kdf-components-ikev2-1.0 sample (as carried in OpenSSL evpkdf_ikev2.txt):
// tgId = 13, tcId = 241, hashAlg SHA2-512, nInit/nResp 2048 bits, g^ir 2048 bits.
describe('IKEv2 KDF, PRF_HMAC_SHA2_512: NIST ACVP kdf-components-ikev2 tgId 13 tcId 241', () => {
  const ni = h(
    '834ea4753e9a06832072fa15e89e799035a1285ce241caf3b5c724ece8ecd0d2d1ac46fab3d9d86bf2ebf4cc8f93e06c' +
      '5342415e14dfcbc949574e1606f96f143e8aa8c80bccd376ff3d3bae0b134a04dd2ae557010e5d7a7552c6864fd8a82d' +
      '99ffdfda97be97389a426d7259411b10dd9eefae2709141e654087a2056eb86daf95ef262328a2cdd90c61152dc2bbfc' +
      'f4ccf4084557c3892603023a8b7045fc589a35143e10dcd1a73406ea923b21687a12134b6a1007e4aa2e37fffa4901df' +
      'f6f3514e2b350f08175e194d3c6db75e03fd838d503cefa9e9604a4e18f330c08142574a992465fea063875abaf144f4' +
      '7c50f32a0a83224e3eea739033af6b9f',
  );
  const nr = h(
    'f833709de457fb58abe1d26e8decc8fe889d503954c4812ac0f41271394af7c148b15a241c2d6d6502c3c57dae854a97' +
      'bfb3ccdcec650153578ccb51bdfe1c715e81f3d78488b1547a3c9e5617d9b78b46d06f56bb56423c88deaccd82e7a2a1' +
      '1add56651091682f0987332ea28a32045a4d39609f364eb5e70468ecb7bbdcad6b41e04add11d97f300e8d0a0c2941f1' +
      'cb64885f940ee2fa273477e910983e96913f58e37bfd68e3adcd6e813176e95fee7985f5526eedc3245c4746f5864d9e' +
      '90bf80f6882f6a505adacd81d106576f7a6c705e37ce551235e012e64ec3be7b4f3f8889e664cc5ed7bcc4a88022a437' +
      '439609b3019cde1948665a548e420d1e',
  );
  const gir = h(
    '9566a04bf95f433c6497b3ae8cb0f600043f8438eb2b9e97e912af1c5ace9a73a8884bf1ff80a895eb97a6f5494b6cea' +
      '5b1c3123c3a9cbe057a0cba2f52fd40a8dfdf9f99b521d356347e2b70cf637b5b4a44c2ed92770a281e6431cb50bddce' +
      '4fb2ec8100218fa84b0a4a344c4dc79bbc81add2fd23bc797efa1b2afa6840ad7b2e04d391f33662774a5296a0ef9c9c' +
      '113e84f5b958fd54857e75378406f29da1eb23e9e9d9d94177672bfa7742f7f4319f31ed06e1999e17eeac6b35adc9a2' +
      '45cad998e3ce3c422b8ad752f7144332e9aae44ea837677a8406b7261c04cb4eb9230fba75e09e16eeda246d5b1da5cf' +
      '14c96f00fc83c555854e7982e52a1d4f',
  );
  const girNew = h(
    'f34450ec9f4b07881ff17db4ae1681b26f2fc8cbecdb7ef0463b09c4fe79f8414fbea9fd3e7c18c845d04e283e1eeb78' +
      '24484c72354a7a9c418e69b8134d596e1abcd2998ea5fabca1fd156678bf7fb0f31c1158e812fd215837a23938bac55b' +
      '37c6e8becedf9435a03484326cd2d4e3c7a273d8a99135027aa17823da9bf0263082394ca3475266f5bae91d1577c3d1' +
      '5a7dd429e1f5de70138b05214589ef8a519aa930a42f609ccc54ce8701488e80c2beacca2542c0d9b2dd7c04e41ebbc3' +
      '41eb65a3f786900747fa6ca2cf914e908fea40014d3175b73da1b63437a89638f69e184fd91e6a02c0f9fc9afafe7b68' +
      '11b3ac7a57b2615a3b3fc26289500143',
  );
  const spiI = u64('6e5f49d279f4fbbb');
  const spiR = u64('ff7ae472aa4dd7af');
  const skeyseed =
    '3daa296c25dd8cbde8e9f5fe85498cb06339fc7aaa93f60987831a0fa79829e244afe92bd66590d8c7f1bc281badc619' +
    'ed2c9762fdb913b052842e50e3989863';
  // First 64 bytes (SK_d) of the DKM, of DKM(Child_SA) and of DKM(Child_DH).
  const skD =
    '2bd66826c397a19618e3133ace96f6168a04ef9afa53f2f07cecda9e0f6139c37cc6512551f523006b74d501c5dd1ae5' +
    '02689ece8a43ce7b3d866c7372176b1d';
  const childPrefix =
    '0b0d01a13515ac0727f7d90456d3d2fd9c1172096cded4a20bda43fc796184baeb3a7f34ffc09c584dd9beebc7629a36' +
    'a5d143dfb1c2931f369e6702769b6a01';
  const childDhPrefix =
    '48e185dc18e52193e01eca3c0d739c3070a73b89a4d0fac7b40e4d51250eeae7232c2031daa700e3a2d570ba67eca56f' +
    '1dbe5de5b96cd718faf2fcc7ebca08d1';
  const rekey =
    '1cc9237ebb1704d703952b6edbe275ca51ac17e2e224f13e38f4c49f5fa9af00f8ecb96fa0ecd6ff282c08a29d3e313a' +
    'b4a4ee1022580118b8deff0cd8432a00';
  const suite = { prf: Prf.HMAC_SHA2_512, encr: { id: Encr.AES_GCM_16, keyBits: 256 }, integ: Integ.NONE };

  it('GEN and DKM (SK_d)', () => {
    const k = deriveIkeKeys(suite, ni, nr, gir, spiI, spiR);
    expect(hex(k.skeyseed)).toBe(skeyseed);
    expect(hex(k.skD)).toBe(skD);
  });
  it('DKM(Child_SA) and DKM(Child_DH), first 64 bytes', () => {
    const c = deriveChildKeys(Prf.HMAC_SHA2_512, h(skD), ni, nr, undefined, 20, 12);
    expect(hex(concat(c.encrI, c.integI, c.encrR, c.integR))).toBe(childPrefix);
    const d = deriveChildKeys(Prf.HMAC_SHA2_512, h(skD), ni, nr, girNew, 32, 0);
    expect(hex(concat(d.encrI, d.encrR))).toBe(childDhPrefix);
  });
  it('ReKey', () => {
    const k = deriveRekeyedIkeKeys(Prf.HMAC_SHA2_512, h(skD), suite, girNew, ni, nr, spiI, spiR);
    expect(hex(k.skeyseed)).toBe(rekey);
  });
});
