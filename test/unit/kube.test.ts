/**
 * core/kube.ts against a fake API server on 127.0.0.1 (a node http server answering a PodList),
 * and the identity resolver naming pods with it. Unreachable, slow and forbidding API servers
 * are counted failures, said once, never thrown.
 */
import test from 'ava';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupResolver } from '../../src/core/identity-cgroups.js';
import { IdentityResolver } from '../../src/core/identity.js';
import { KubePods, kubeConfigFromEnv, parsePodList, type KubeConfig } from '../../src/core/kube.js';

const UID_A = '1a2b3c4d-0000-4000-8000-00000000abcd';
const UID_B = '5e6f7a8b-1111-4111-9111-0000000000ef';

const podList = (pods: Array<[string, string, string]>) => JSON.stringify({
  kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1' },
  items: pods.map(([uid, namespace, name]) => ({ metadata: { uid, namespace, name }, spec: { nodeName: 'node-a' } })),
});

interface FakeApi {
  base: string;
  requests: { url: string; auth: string | undefined }[];
  setPods(pods: Array<[string, string, string]>): void;
  close(): Promise<void>;
}

async function fakeApi(handler?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): Promise<FakeApi> {
  let body = podList([]);
  const requests: FakeApi['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', auth: req.headers.authorization });
    if (handler?.(req, res)) return;
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    setPods: (pods) => (body = podList(pods)),
    close: () => new Promise((res) => {
      server.closeAllConnections();
      server.close(() => res());
    }),
  };
}

function tokenFile(t: { teardown(fn: () => void): void }, token: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'busted-kube-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), `${token}\n`);
  return join(dir, 'token');
}

const config = (apiBase: string, tokenPath = '/nonexistent/token'): KubeConfig => ({ apiBase, nodeName: 'node-a', tokenFile: tokenPath, caFile: '/nonexistent/ca.crt' });

test('kubeConfigFromEnv: nothing outside a cluster; the service address, node name and service-account files inside', (t) => {
  t.is(kubeConfigFromEnv({}), null);
  const problems: string[] = [];
  t.is(kubeConfigFromEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, (m) => problems.push(m)), null);
  t.is(problems.length, 1);
  t.regex(problems[0]!, /without NODE_NAME.*spec\.nodeName/);
  t.deepEqual(kubeConfigFromEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443', NODE_NAME: 'node-a' }), {
    apiBase: 'https://10.96.0.1:6443', nodeName: 'node-a',
    tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
  });
  t.is(kubeConfigFromEnv({ KUBERNETES_SERVICE_HOST: 'fd00::1', NODE_NAME: 'n' })!.apiBase, 'https://[fd00::1]:443');
  t.like(kubeConfigFromEnv({ BUSTED_KUBE_API: 'http://127.0.0.1:8001/', BUSTED_KUBE_TOKEN_FILE: '/tmp/tok', NODE_NAME: 'n' }), {
    apiBase: 'http://127.0.0.1:8001', tokenFile: '/tmp/tok',
  });
});

test('parsePodList: uid → namespace and name; items without them are skipped; not a PodList throws', (t) => {
  const pods = parsePodList(JSON.stringify({ kind: 'PodList', items: [{ metadata: { uid: UID_A.toUpperCase(), namespace: 'ml', name: 'trainer-0' } }, { metadata: { uid: 3 } }, null] }));
  t.deepEqual([...pods], [[UID_A, { namespace: 'ml', name: 'trainer-0' }]]);
  const mirror = parsePodList(JSON.stringify({ kind: 'PodList', items: [{ metadata: {
    uid: UID_B, namespace: 'kube-system', name: 'etcd-node-a', annotations: { 'kubernetes.io/config.mirror': 'abcdef0123456789abcdef0123456789' },
  } }] }));
  t.deepEqual(mirror.get('abcdef0123456789abcdef0123456789'), { namespace: 'kube-system', name: 'etcd-node-a' }, 'static pods by their config hash');
  t.throws(() => parsePodList('{"kind":"Status","message":"nope"}'), { message: /not a PodList/ });
  t.throws(() => parsePodList('not json'));
});

test('lists this node\'s pods with the service-account token and answers lookups from the list', async (t) => {
  const api = await fakeApi();
  t.teardown(() => api.close());
  api.setPods([[UID_A, 'ml', 'trainer-0'], [UID_B, 'web', 'chat-7d9f']]);
  const pods = new KubePods(config(api.base, tokenFile(t, 'sekret-token')));
  let updates = 0;
  pods.onUpdate(() => updates++);
  t.is(await pods.refresh(), true);
  t.deepEqual(pods.lookup(UID_A), { namespace: 'ml', name: 'trainer-0' });
  t.deepEqual(pods.lookup(UID_B.toUpperCase()), { namespace: 'web', name: 'chat-7d9f' });
  t.is(api.requests.length, 1);
  const url = new URL(api.requests[0]!.url, api.base);
  t.is(url.pathname, '/api/v1/pods');
  t.is(url.searchParams.get('fieldSelector'), 'spec.nodeName=node-a');
  t.is(api.requests[0]!.auth, 'Bearer sekret-token');
  t.is(updates, 1);
  t.is(await pods.refresh(), true);
  t.is(updates, 1, 'the same list again is no update');
  t.like(pods.stats, { refreshes: 2, failures: 0, pods: 2 });
});

test('a UID it does not know lists again, at most once per missRefreshMs, without waiting', async (t) => {
  const api = await fakeApi();
  t.teardown(() => api.close());
  let now = 0;
  const pods = new KubePods(config(api.base), { missRefreshMs: 5000, now: () => now });
  await pods.refresh();
  t.is(api.requests.length, 1);
  api.setPods([[UID_A, 'ml', 'new-pod']]);
  now = 1000;
  t.is(pods.lookup(UID_A), null, 'too soon after the last list: no request');
  await new Promise((res) => setTimeout(res, 50));
  t.is(api.requests.length, 1);
  now = 5000;
  const learned = new Promise<void>((res) => pods.onUpdate(res));
  t.is(pods.lookup(UID_A), null, 'answers at once');
  await learned;
  t.is(api.requests.length, 2);
  t.deepEqual(pods.lookup(UID_A), { namespace: 'ml', name: 'new-pod' });
  pods.stop();
  t.is(pods.lookup(UID_B), null);
  await new Promise((res) => setTimeout(res, 50));
  t.is(api.requests.length, 2, 'stopped: no more requests');
});

test('an unreachable API server is a counted failure, said once; busted goes on', async (t) => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  probe.close();
  await once(probe, 'close');
  const warnings: string[] = [];
  const pods = new KubePods(config(`http://127.0.0.1:${port}`), { onWarning: (m) => warnings.push(m), timeoutMs: 2000 });
  t.is(await pods.refresh(), false);
  t.is(await pods.refresh(), false);
  t.like(pods.stats, { refreshes: 0, failures: 2, pods: 0 });
  t.is(warnings.length, 1, 'said once');
  t.regex(warnings[0]!, new RegExp(`cannot list this node's pods from http://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\)`));
  t.is(pods.lookup(UID_A), null);
});

test('a server that does not answer times out; a 403 says the API server\'s reason', async (t) => {
  const slow = await fakeApi(() => true); // never answers
  t.teardown(() => slow.close());
  const pods = new KubePods(config(slow.base), { timeoutMs: 300 });
  const started = Date.now();
  t.is(await pods.refresh(), false);
  t.true(Date.now() - started < 2000);
  t.regex(pods.stats.lastError!, /no answer within 300 ms/);

  const forbidden = await fakeApi((_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({
      kind: 'Status', status: 'Failure', reason: 'Forbidden',
      message: 'pods is forbidden: User "system:serviceaccount:busted:default" cannot list resource "pods"',
    }));
    return true;
  });
  t.teardown(() => forbidden.close());
  const denied = new KubePods(config(forbidden.base));
  t.is(await denied.refresh(), false);
  t.regex(denied.stats.lastError!, /^HTTP 403: pods is forbidden/);
});

test('start() lists at once and its timer does not keep the process alive', async (t) => {
  const api = await fakeApi();
  t.teardown(() => api.close());
  api.setPods([[UID_A, 'ml', 'trainer-0']]);
  const pods = new KubePods(config(api.base), { refreshMs: 60_000 });
  const learned = new Promise<void>((res) => pods.onUpdate(res));
  pods.start();
  await learned;
  t.deepEqual(pods.lookup(UID_A), { namespace: 'ml', name: 'trainer-0' });
  pods.stop();
});

test('the identity resolver names pods from the list, also for identities resolved before the list came', async (t) => {
  const api = await fakeApi();
  t.teardown(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'busted-kube-id-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mount = join(dir, 'cgroup');
  const path = (uid: string) => `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${'c'.repeat(64)}.scope`;
  mkdirSync(mount + path(UID_A), { recursive: true });
  const pods = new KubePods(config(api.base));
  const r = new IdentityResolver({ procRoot: join(dir, 'proc'), cgroups: new CgroupResolver({ mount, minWalkIntervalMs: 0 }), pods });
  const changes: string[] = [];
  r.onChange((key, who) => who.pod?.name && changes.push(`${key} ${who.pod.namespace}/${who.pod.name}`));
  const cgroupId = statSync(mount + path(UID_A), { bigint: true }).ino;
  r.lookup({ pid: 99, startTime: 1, exeDev: 0, exeIno: 0n, uid: 0, gid: 0, cgroupId });
  await r.idle();
  t.deepEqual(r.get('99:1')!.pod, { uid: UID_A, qos: 'burstable' }, 'not listed yet: the UID only');
  await pods.refresh(); // the list the unknown UID asked for (still without it)
  api.setPods([[UID_A, 'ml', 'trainer-0']]);
  await pods.refresh();
  t.deepEqual(r.get('99:1')!.pod, { uid: UID_A, qos: 'burstable', namespace: 'ml', name: 'trainer-0' });
  t.deepEqual(changes, ['99:1 ml/trainer-0'], 'listeners hear of it (the engine then sends a process record)');
  // a new identity in that pod is named at once
  t.is(r.lookup({ pid: 100, startTime: 2, exeDev: 0, exeIno: 0n, uid: 0, gid: 0, cgroupId }).pod?.name, 'trainer-0');
});
