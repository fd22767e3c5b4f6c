// `helm upgrade` of a release installed from the reference chart (Constellation's
// dev-docs/howto/vpn/helm) to this chart: the objects Helm patches in place must keep their names,
// and the fields the API server refuses to change on an existing object must equal what the
// reference chart rendered — else the upgrade fails half-way ("field is immutable", "updates to
// statefulset spec for fields other than ... are forbidden").
//
// What the reference chart renders, as its templates compute it (written down here, not read from
// its sources at test time):
//   name      = nameOverride, else the chart name "vpn"; cut to 42 characters, trailing "-" removed
//   fullname  = the release name if it contains name, else "<release>-<name>"; cut to 42, "-" trimmed
//   selector labels = { app.kubernetes.io/name: name, app.kubernetes.io/instance: <release> }
//   StatefulSet <fullname>-frontend  selector = selector labels + component: frontend;
//                                    no serviceName, podManagementPolicy or volumeClaimTemplates
//   Deployment  <fullname>-operator  selector = selector labels + component: operator; no strategy
//   Service     <fullname>-lb        selector = selector labels + component: frontend
//   ServiceAccount, ClusterRole, ClusterRoleBinding <fullname>; Secret <fullname>-strongswan;
//   ConfigMaps <fullname>-operator and <fullname>-strongswan
// So for release "vpn": vpn-frontend, vpn-operator, vpn-lb, ServiceAccount/ClusterRole "vpn";
// for release "myrel": myrel-vpn-frontend, myrel-vpn-operator, myrel-vpn-lb, "myrel-vpn".
import { Deployment, type IDeployment, type IStatefulSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { type IService, Service } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, detectRenderer, ensureRenderer, type Rendered, render } from './render.js';

const renderer = detectRenderer();
if (renderer.kind === 'none') console.warn(`test/helm/upgrade.test.ts skipped: ${renderer.reason}`);

/** A reference-chart user's config.yaml (the reference's values, filled in). */
const REFERENCE_CONFIG = `
podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - 192.168.0.0/16
mtu: 1300
ipsec:
  psk: "an-upgrade-test-psk-0123456789abcdef"
  peer: "203.0.113.7"
image: "ghcr.io/edgelesssys/constellation/vpn@sha256:88b6a0265052cb0a68d20d9b20e0d42ef15e7a80e5f71201ecf32e004de2356e"
`;

/** Helm's `trunc 42 | trimSuffix "-"` (trimSuffix removes one "-"). */
const cut = (s: string): string => {
  const t = s.slice(0, 42);
  return t.endsWith('-') ? t.slice(0, -1) : t;
};

interface ReferenceNames {
  fullname: string;
  statefulSet: string;
  deployment: string;
  service: string;
  serviceAccount: string;
  clusterRole: string;
  frontendPod: string;
  frontendSelector: Record<string, string>;
  operatorSelector: Record<string, string>;
}

/** Names and selectors the reference chart renders for a release (see the header comment). */
function referenceNames(release: string, nameOverride = ''): ReferenceNames {
  const raw = nameOverride || 'vpn';
  const name = cut(raw);
  const fullname = release.includes(raw) ? cut(release) : cut(`${release}-${raw}`);
  const selector = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': release };
  return {
    fullname,
    statefulSet: `${fullname}-frontend`,
    deployment: `${fullname}-operator`,
    service: `${fullname}-lb`,
    serviceAccount: fullname,
    clusterRole: fullname,
    frontendPod: `${fullname}-frontend-0`,
    frontendSelector: { ...selector, component: 'frontend' },
    operatorSelector: { ...selector, component: 'operator' },
  };
}

function one<T>(r: Rendered, kind: string, name: string): T {
  const hits = r.docs.filter(({ obj }) => obj.kind === kind && obj.metadata.name === name);
  const have = r.docs.filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj.metadata.name);
  expect(hits.length, `${kind} ${name} (rendered: ${have.join(', ')})`).toBe(1);
  return hits[0]!.obj as unknown as T;
}

const LONG_RELEASE = `${'x'.repeat(41)}-tail`; // "<release>-vpn" cut to 42 ends in "-"

const CASES: Array<{ release: string; nameOverride?: string; expect?: Partial<ReferenceNames> }> = [
  {
    release: 'vpn',
    expect: {
      statefulSet: 'vpn-frontend',
      deployment: 'vpn-operator',
      service: 'vpn-lb',
      serviceAccount: 'vpn',
    },
  },
  {
    release: 'myrel',
    expect: {
      statefulSet: 'myrel-vpn-frontend',
      deployment: 'myrel-vpn-operator',
      service: 'myrel-vpn-lb',
      clusterRole: 'myrel-vpn',
    },
  },
  { release: 'myvpn', expect: { statefulSet: 'myvpn-frontend' } },
  { release: 'vpn-prod', expect: { service: 'vpn-prod-lb' } },
  { release: LONG_RELEASE, expect: { statefulSet: `${'x'.repeat(41)}-frontend` } },
  { release: 'myrel', nameOverride: 'tunnel', expect: { deployment: 'myrel-tunnel-operator' } },
];

describe.skipIf(renderer.kind === 'none')(`helm upgrade from the reference chart (${renderer.kind})`, () => {
  beforeAll(() => ensureRenderer(renderer, 170_000), 180_000);
  afterAll(() => cleanupScratch());

  it('models the reference naming as written down above', () => {
    for (const c of CASES) expect(referenceNames(c.release, c.nameOverride)).toMatchObject(c.expect ?? {});
  });

  describe.each(CASES)('release $release, nameOverride "$nameOverride"', ({ release, nameOverride }) => {
    const ref = referenceNames(release, nameOverride);
    let r: Rendered;
    beforeAll(() => {
      r = render(renderer, REFERENCE_CONFIG, {
        release,
        sets: nameOverride ? [`nameOverride=${nameOverride}`] : [],
      });
      expect(r.ok, r.stderr).toBe(true);
    });

    it('keeps the StatefulSet name, its selector and its other immutable fields', () => {
      const sts = one<IStatefulSet>(r, 'StatefulSet', ref.statefulSet);
      new StatefulSet(sts).validate();
      expect(sts.spec!.selector.matchLabels).toEqual(ref.frontendSelector);
      expect(sts.spec!.selector.matchExpressions).toBeUndefined();
      // The selector must select the pods the StatefulSet makes.
      expect(sts.spec!.template.metadata!.labels).toMatchObject(ref.frontendSelector);
      // Unset in the reference chart and immutable: must stay unset.
      const spec = sts.spec as unknown as Record<string, unknown>;
      for (const f of ['serviceName', 'podManagementPolicy', 'volumeClaimTemplates']) {
        expect(spec[f], `StatefulSet spec.${f}`).toBeUndefined();
      }
    });

    it('keeps the Deployment name and selector; a Recreate strategy clears rollingUpdate', () => {
      const dep = one<IDeployment>(r, 'Deployment', ref.deployment);
      new Deployment(dep).validate();
      expect(dep.spec!.selector.matchLabels).toEqual(ref.operatorSelector);
      expect(dep.spec!.selector.matchExpressions).toBeUndefined();
      expect(dep.spec!.template.metadata!.labels).toMatchObject(ref.operatorSelector);
      // The reference Deployment has the defaulted RollingUpdate strategy; patching only the type
      // to Recreate is refused, the rendered manifest must delete rollingUpdate explicitly.
      const strategy = dep.spec!.strategy as Record<string, unknown> | undefined;
      if (strategy?.type === 'Recreate') {
        expect('rollingUpdate' in strategy && strategy.rollingUpdate === null, 'rollingUpdate: null').toBe(
          true,
        );
      }
    });

    it('keeps the LoadBalancer Service name, and it selects the frontend pod only', () => {
      const svc = one<IService>(r, 'Service', ref.service);
      new Service(svc).validate();
      expect(svc.spec!.type).toBe('LoadBalancer');
      expect(svc.spec!.selector).toEqual(ref.frontendSelector);
      const podLabels = one<IStatefulSet>(r, 'StatefulSet', ref.statefulSet).spec!.template.metadata!.labels!;
      for (const [k, v] of Object.entries(svc.spec!.selector!)) expect(podLabels[k], k).toBe(v);
      const opLabels = one<IDeployment>(r, 'Deployment', ref.deployment).spec!.template.metadata!.labels!;
      expect(Object.entries(svc.spec!.selector!).every(([k, v]) => opLabels[k] === v)).toBe(false);
    });

    it('points the helpers at the same frontend pod name', () => {
      for (const kind of ['StatefulSet', 'Deployment']) {
        const name = kind === 'StatefulSet' ? ref.statefulSet : ref.deployment;
        const w = one<IStatefulSet | IDeployment>(r, kind, name);
        for (const c of w.spec!.template.spec!.containers) {
          const env = c.env?.find((e) => e.name === 'VPN_FRONTEND_POD');
          expect(env?.value, `${kind} container ${c.name}`).toBe(ref.frontendPod);
        }
      }
    });
  });
});
