/**
 * Container, Kubernetes pod and systemd unit from a cgroup v2 path, by the names that runtimes
 * and kubelet give their cgroups. Pure string work: no file is read.
 *
 * Shapes recognized (segments of the path; <id> is 64 hex digits):
 *   docker          /system.slice/docker-<id>.scope              (systemd driver)
 *                   /docker/<id>                                 (cgroupfs driver)
 *   podman          …/libpod-<id>.scope[/container]              (systemd)   libpod_parent/libpod-<id> (cgroupfs)
 *                   …/libpod-conmon-<id>.scope                   (conmon, the monitor: no container)
 *   cri-o           …/crio-<id>.scope  …/crio-<id>               (crio-conmon-<id>.scope is conmon)
 *   containerd      …/cri-containerd-<id>.scope                  (CRI, systemd driver)
 *                   …/<pod>.slice:cri-containerd:<id>            (containerd's own systemd naming)
 *                   /system.slice/nerdctl-<id>.scope, /<namespace>/<id> (nerdctl, cgroupfs)
 *   cri             /kubepods/<qos>/pod<uid>/<id>                (cgroupfs driver: the runtime is not named)
 *   lxc             /lxc.payload.<name>
 *   systemd-nspawn  /machine.slice/systemd-nspawn@<name>.service, /machine.slice/machine-<name>.scope
 * Kubernetes pods, QoS from the slice or directory (none means guaranteed):
 *   systemd   /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/…
 *   cgroupfs  /kubepods/burstable/pod<uid>/…, /kubepods/pod<uid>/…
 * With nested containers (docker in docker) the outermost one is reported: the one the host's
 * runtime knows.
 */

export type ContainerRuntime = 'docker' | 'containerd' | 'cri-o' | 'podman' | 'cri' | 'lxc' | 'systemd-nspawn';
export type PodQos = 'guaranteed' | 'burstable' | 'besteffort';

export interface ContainerInfo {
  id: string;
  runtime: ContainerRuntime;
}

export interface PodInfo {
  uid: string;
  qos: PodQos;
  /** From the API server (core/kube.ts), when busted runs in the cluster and the pod is listed. */
  namespace?: string;
  name?: string;
}

export interface CgroupInfo {
  container: ContainerInfo | null;
  pod: PodInfo | null;
  /** Innermost systemd unit (`nginx.service`, `session-3.scope`, `user@1000.service`), if any. */
  unit: string | null;
  /** Innermost systemd slice (`user-1000.slice`, `system.slice`), if any. */
  slice: string | null;
}

const ID = '[0-9a-f]{64}';
const UID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}';

/** Whole-segment patterns naming a container; first group is the id. */
const SEGMENT_RULES: Array<[RegExp, ContainerRuntime | null]> = [
  [new RegExp(`^docker-(${ID})\\.scope$`), 'docker'],
  [new RegExp(`^cri-containerd-(${ID})\\.scope$`), 'containerd'],
  [new RegExp(`^\\S+\\.slice:cri-containerd:(${ID})$`), 'containerd'],
  [new RegExp(`^nerdctl-(${ID})\\.scope$`), 'containerd'],
  [new RegExp(`^crio-conmon-(${ID})(\\.scope)?$`), null],
  [new RegExp(`^crio-(${ID})(\\.scope)?$`), 'cri-o'],
  [new RegExp(`^libpod-conmon-(${ID})(\\.scope)?$`), null],
  [new RegExp(`^libpod-(${ID})(\\.scope)?$`), 'podman'],
  [/^lxc\.payload\.(.+)$/, 'lxc'],
  [/^systemd-nspawn@(.+)\.service$/, 'systemd-nspawn'],
  [/^machine-(.+)\.scope$/, 'systemd-nspawn'],
];

const POD_SYSTEMD = new RegExp(`^kubepods(?:-(besteffort|burstable))?-pod(${UID})\\.slice$`);
const POD_CGROUPFS = new RegExp(`^pod(${UID})$`);
const POD_IN_SEGMENT = new RegExp(`^kubepods(?:-(besteffort|burstable))?-pod(${UID})\\.slice:`);
const BARE_ID = new RegExp(`^${ID}$`);

function podUid(raw: string): string {
  return raw.replace(/_/g, '-');
}

/** Container, pod and systemd unit of a cgroup path such as `/kubepods.slice/…/cri-containerd-<id>.scope`. */
export function parseCgroupPath(path: string | null): CgroupInfo {
  const info: CgroupInfo = { container: null, pod: null, unit: null, slice: null };
  if (!path) return info;
  const segs = path.split('/').filter((s) => s !== '');
  let inKubepods = false;
  let kubeQos: PodQos = 'guaranteed';
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const prev = i > 0 ? segs[i - 1]! : null;
    if (seg.endsWith('.slice')) info.slice = seg;
    else if (/\.(service|scope)$/.test(seg)) info.unit = seg;
    if (seg === 'kubepods' || seg === 'kubepods.slice') inKubepods = true;
    if (inKubepods && (seg === 'besteffort' || seg === 'burstable')) kubeQos = seg;
    if (!info.pod) {
      const m = POD_SYSTEMD.exec(seg) ?? POD_IN_SEGMENT.exec(seg);
      if (m) info.pod = { uid: podUid(m[2]!), qos: (m[1] as PodQos | undefined) ?? 'guaranteed' };
      else if (inKubepods) {
        const c = POD_CGROUPFS.exec(seg);
        if (c) info.pod = { uid: podUid(c[1]!), qos: kubeQos };
      }
    }
    if (info.container) continue;
    const found = matchSegment(seg, prev, i === 1, info.pod !== null && prev !== null && isPodSegment(prev));
    if (found === 'monitor') continue;
    if (found) info.container = found;
  }
  return info;
}

function isPodSegment(seg: string): boolean {
  return POD_SYSTEMD.test(seg) || POD_CGROUPFS.test(seg);
}

function matchSegment(seg: string, prev: string | null, topLevel: boolean, underPod: boolean): ContainerInfo | 'monitor' | null {
  for (const [re, runtime] of SEGMENT_RULES) {
    const m = re.exec(seg);
    if (m) return runtime === null ? 'monitor' : { id: m[1]!, runtime };
  }
  if (!BARE_ID.test(seg)) return null;
  if (underPod) return { id: seg, runtime: 'cri' };
  if (prev === 'docker') return { id: seg, runtime: 'docker' };
  if (prev === 'libpod_parent') return { id: seg, runtime: 'podman' };
  // containerd's cgroupfs layout (nerdctl, ctr): /<namespace>/<id>
  if (topLevel && prev !== null && /^[a-z0-9][a-z0-9._-]*$/.test(prev) && !/\.(slice|service|scope)$/.test(prev)) return { id: seg, runtime: 'containerd' };
  return null;
}
