/**
 * Kubernetes pod names: the cgroup path gives a pod's UID (containers.ts); inside a cluster the
 * API server says which namespace and name that UID has. `KubePods` lists this node's pods
 * (`GET /api/v1/pods?fieldSelector=spec.nodeName=NODE`) with the service account's token, keeps
 * UID → {namespace, name}, and lists again every `refreshMs` (and, at most every `missRefreshMs`,
 * when asked about a UID it does not know: a pod started since the last list). Lookups never wait:
 * they answer from the last list. Failures (unreachable, timeout, 403, bad JSON) are counted and
 * said once; busted goes on without names. Outside a cluster `kubeConfigFromEnv` gives null and
 * nothing is started.
 *
 * Environment: KUBERNETES_SERVICE_HOST/PORT (set by Kubernetes in every pod), NODE_NAME (the
 * DaemonSet sets it from spec.nodeName), the service-account token and CA under
 * /var/run/secrets/kubernetes.io/serviceaccount. For tests and out-of-cluster use:
 * BUSTED_KUBE_API (base URL, http or https), BUSTED_KUBE_TOKEN_FILE, BUSTED_KUBE_CA_FILE.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

export interface PodMeta {
  namespace: string;
  name: string;
}

/** What the identity resolver asks: a pod's names by UID, and a call when names were learned. */
export interface PodNames {
  lookup(uid: string): PodMeta | null;
  onUpdate(listener: () => void): void;
}

export interface KubeConfig {
  /** `https://10.96.0.1:443`, without a trailing slash. */
  apiBase: string;
  nodeName: string;
  tokenFile: string;
  caFile: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The cluster's API server as the environment describes it; null outside a cluster. A cluster
 * without NODE_NAME is a configuration mistake: it is said through `onProblem`, and names are off.
 */
export function kubeConfigFromEnv(env: NodeJS.ProcessEnv = process.env, onProblem?: (message: string) => void): KubeConfig | null {
  let apiBase = env.BUSTED_KUBE_API?.replace(/\/+$/, '');
  if (!apiBase) {
    const host = env.KUBERNETES_SERVICE_HOST;
    if (!host) return null; // not in a cluster
    const port = env.KUBERNETES_SERVICE_PORT || '443';
    apiBase = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  const nodeName = env.NODE_NAME?.trim();
  if (!nodeName) {
    onProblem?.('running in Kubernetes without NODE_NAME: pod namespaces and names are not looked up (set NODE_NAME from spec.nodeName, as deploy/daemonset.yaml does).');
    return null;
  }
  return {
    apiBase, nodeName,
    tokenFile: env.BUSTED_KUBE_TOKEN_FILE || `${SA_DIR}/token`,
    caFile: env.BUSTED_KUBE_CA_FILE || `${SA_DIR}/ca.crt`,
  };
}

export interface KubePodsOptions {
  /** Full re-list interval (default 60 s). */
  refreshMs?: number;
  /** Earliest re-list after a lookup of an unknown UID (default 5 s). */
  missRefreshMs?: number;
  /** One request's limit, connect to last byte (default 5 s). */
  timeoutMs?: number;
  /** Largest PodList read (default 64 MiB); a bigger answer is a failure. */
  maxBytes?: number;
  onWarning?: (message: string) => void;
  now?: () => number;
}

/** Kubernetes Pod, as far as busted reads it. */
interface PodItem {
  metadata?: { uid?: unknown; namespace?: unknown; name?: unknown; annotations?: Record<string, unknown> };
}

/** A static pod's cgroups carry its config hash as UID; its mirror pod in the API has another UID. */
const MIRROR = 'kubernetes.io/config.mirror';

/** UIDs → names of the PodList JSON; throws when it is not a PodList. */
export function parsePodList(text: string): Map<string, PodMeta> {
  const doc = JSON.parse(text) as { kind?: unknown; items?: unknown };
  if (!Array.isArray(doc.items)) throw new Error(`the answer is not a PodList (kind ${String(doc.kind)})`);
  const pods = new Map<string, PodMeta>();
  for (const item of doc.items as PodItem[]) {
    const m = item?.metadata;
    if (typeof m?.uid === 'string' && typeof m.namespace === 'string' && typeof m.name === 'string') {
      const meta = { namespace: m.namespace, name: m.name };
      pods.set(m.uid.toLowerCase(), meta);
      const mirror = m.annotations?.[MIRROR];
      if (typeof mirror === 'string' && mirror !== '') pods.set(mirror.toLowerCase(), meta);
    }
  }
  return pods;
}

export class KubePods implements PodNames {
  private pods = new Map<string, PodMeta>();
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<boolean> | null = null;
  private lastStart = -Infinity;
  private warned = false;
  private stopped = false;
  private readonly opts: Required<Omit<KubePodsOptions, 'onWarning'>> & Pick<KubePodsOptions, 'onWarning'>;
  /** Lists done, lists failed, and pods known from the last good list. */
  readonly stats = { refreshes: 0, failures: 0, pods: 0, lastError: null as string | null };

  constructor(
    readonly config: KubeConfig,
    options: KubePodsOptions = {},
  ) {
    this.opts = {
      refreshMs: options.refreshMs ?? 60_000, missRefreshMs: options.missRefreshMs ?? 5000, timeoutMs: options.timeoutMs ?? 5000,
      maxBytes: options.maxBytes ?? 64 * 1024 * 1024, now: options.now ?? Date.now, onWarning: options.onWarning,
    };
  }

  /** Lists at once (in the background) and then every `refreshMs`; the timer never keeps busted alive. */
  start(): this {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  lookup(uid: string): PodMeta | null {
    const hit = this.pods.get(uid.toLowerCase());
    if (hit) return hit;
    // a pod started since the last list: list again soon, without waiting for it here
    if (!this.stopped && this.opts.now() - this.lastStart >= this.opts.missRefreshMs) void this.refresh();
    return null;
  }

  onUpdate(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** Lists this node's pods once; resolves false when that failed (counted, said the first time). */
  refresh(): Promise<boolean> {
    this.inFlight ??= this.list().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async list(): Promise<boolean> {
    this.lastStart = this.opts.now();
    try {
      const text = await this.get(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.config.nodeName}`)}&resourceVersion=0`);
      const pods = parsePodList(text);
      this.stats.refreshes++;
      this.stats.pods = pods.size;
      const changed = pods.size !== this.pods.size || [...pods].some(([uid, p]) => {
        const old = this.pods.get(uid);
        return !old || old.name !== p.name || old.namespace !== p.namespace;
      });
      this.pods = pods;
      if (changed) for (const l of this.listeners) l();
      return true;
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      if (!this.warned) {
        this.warned = true;
        this.opts.onWarning?.(`cannot list this node's pods from ${this.config.apiBase} (${(err as Error).message}); records carry pod UIDs without namespace and name. busted keeps trying every ${Math.round(this.opts.refreshMs / 1000)} s.`);
      }
      return false;
    }
  }

  private get(path: string): Promise<string> {
    const url = new URL(this.config.apiBase + path);
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = readOptional(this.config.tokenFile); // re-read each time: bound tokens are rotated
    if (token) headers.authorization = `Bearer ${token.toString('utf8').trim()}`;
    const secure = url.protocol === 'https:';
    const ca = secure ? readOptional(this.config.caFile) : null;
    const { timeoutMs, maxBytes } = this.opts;
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, { method: 'GET', headers, timeout: timeoutMs, ...(ca ? { ca } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > maxBytes) req.destroy(new Error(`the pod list is larger than ${maxBytes} bytes`));
          else chunks.push(d);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) resolve(body);
          else reject(new Error(`HTTP ${res.statusCode}${statusMessage(body)}`));
        });
        res.on('error', reject);
      });
      const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('close', () => clearTimeout(deadline));
      req.end();
    });
  }
}

function readOptional(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch {
    return null;
  }
}

/** `: pods is forbidden: …` from a Kubernetes Status body, if it is one. */
function statusMessage(body: string): string {
  try {
    const s = JSON.parse(body) as { message?: unknown };
    return typeof s.message === 'string' ? `: ${s.message.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

/** Pod names for this process: a started `KubePods` in a cluster, else null. */
export function startKubePods(onWarning?: (message: string) => void, env: NodeJS.ProcessEnv = process.env): KubePods | null {
  const config = kubeConfigFromEnv(env, onWarning);
  return config ? new KubePods(config, { onWarning }).start() : null;
}
