import test from 'ava';
import { parseCgroupPath, type CgroupInfo } from '../../src/core/containers.js';

const C = 'f45298cd514d1930c4fe3afc4412e59547f7e3148fddd22ca33cefce046eb830';
const D = '9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d';
const UID = 'dd1bf9d1-241d-47f5-8e25-12de83135812';
const UID_ = UID.replace(/-/g, '_');

type Row = [string, string, Partial<CgroupInfo>];

// Shapes as runtimes and kubelet create them (cgroup v2 "0::" paths; v1 named paths alike).
const table: Row[] = [
  // docker
  ['docker, systemd driver', `/system.slice/docker-${D}.scope`, { container: { id: D, runtime: 'docker' }, pod: null, unit: `docker-${D}.scope`, slice: 'system.slice' }],
  ['docker, cgroupfs driver', `/docker/${D}`, { container: { id: D, runtime: 'docker' }, pod: null }],
  ['docker, systemd inside the container', `/system.slice/docker-${D}.scope/init.scope`, { container: { id: D, runtime: 'docker' }, unit: 'init.scope' }],
  ['docker in docker: the outer (host) container', `/docker/${D}/docker/${C}`, { container: { id: D, runtime: 'docker' } }],
  // containerd / CRI under kubepods, systemd driver
  ['containerd, besteffort, systemd',
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${C}.scope`,
    { container: { id: C, runtime: 'containerd' }, pod: { uid: UID, qos: 'besteffort' } }],
  ['containerd, burstable, systemd',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${C}.scope`,
    { container: { id: C, runtime: 'containerd' }, pod: { uid: UID, qos: 'burstable' } }],
  ['containerd, guaranteed, systemd',
    `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${C}.scope`,
    { container: { id: C, runtime: 'containerd' }, pod: { uid: UID, qos: 'guaranteed' } }],
  // containerd / CRI under kubepods, cgroupfs driver (the runtime is not named)
  ['CRI, besteffort, cgroupfs', `/kubepods/besteffort/pod${UID}/${C}`, { container: { id: C, runtime: 'cri' }, pod: { uid: UID, qos: 'besteffort' } }],
  ['CRI, burstable, cgroupfs', `/kubepods/burstable/pod${UID}/${C}`, { container: { id: C, runtime: 'cri' }, pod: { uid: UID, qos: 'burstable' } }],
  ['CRI, guaranteed, cgroupfs', `/kubepods/pod${UID}/${C}`, { container: { id: C, runtime: 'cri' }, pod: { uid: UID, qos: 'guaranteed' } }],
  ['CRI, cgroupfs, a sub-cgroup made by the container', `/kubepods/besteffort/pod${UID}/${C}/kube-proxy`, { container: { id: C, runtime: 'cri' }, pod: { uid: UID, qos: 'besteffort' } }],
  ['containerd own systemd naming (kind)',
    `/system.slice/containerd.service/kubepods-burstable-pod${UID_}.slice:cri-containerd:${C}`,
    { container: { id: C, runtime: 'containerd' }, pod: { uid: UID, qos: 'burstable' } }],
  ['pod cgroup only (pause-less, no container yet)', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`, { container: null, pod: { uid: UID, qos: 'burstable' } }],
  ['static pod uid (32 hex, no dashes)', `/kubepods/burstable/pod6b9ab1b0d4b0a2a3c1e1f0e0d0c0b0a0/${C}`, { pod: { uid: '6b9ab1b0d4b0a2a3c1e1f0e0d0c0b0a0', qos: 'burstable' } }],
  // docker as the kubelet runtime (dockershim / cri-dockerd), systemd driver
  ['docker under kubepods', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/docker-${D}.scope`, { container: { id: D, runtime: 'docker' }, pod: { uid: UID, qos: 'besteffort' } }],
  // CRI-O
  ['CRI-O, systemd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${C}.scope`, { container: { id: C, runtime: 'cri-o' }, pod: { uid: UID, qos: 'burstable' } }],
  ['CRI-O, cgroupfs', `/kubepods/burstable/pod${UID}/crio-${C}`, { container: { id: C, runtime: 'cri-o' }, pod: { uid: UID, qos: 'burstable' } }],
  ['CRI-O conmon is not the container', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${C}.scope`, { container: null, pod: { uid: UID, qos: 'burstable' } }],
  // podman
  ['podman rootful, systemd', `/machine.slice/libpod-${C}.scope`, { container: { id: C, runtime: 'podman' }, pod: null }],
  ['podman with a split container cgroup', `/machine.slice/libpod-${C}.scope/container`, { container: { id: C, runtime: 'podman' } }],
  ['podman rootless', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${C}.scope`, { container: { id: C, runtime: 'podman' }, slice: 'user.slice' }],
  ['podman conmon', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-${C}.scope`, { container: null }],
  ['podman, cgroupfs', `/libpod_parent/libpod-${C}`, { container: { id: C, runtime: 'podman' } }],
  // containerd without Kubernetes
  ['nerdctl, systemd', `/system.slice/nerdctl-${C}.scope`, { container: { id: C, runtime: 'containerd' } }],
  ['containerd namespace, cgroupfs', `/default/${C}`, { container: { id: C, runtime: 'containerd' } }],
  // others
  ['LXC', '/lxc.payload.web1', { container: { id: 'web1', runtime: 'lxc' } }],
  ['systemd-nspawn', '/machine.slice/systemd-nspawn@deb.service', { container: { id: 'deb', runtime: 'systemd-nspawn' } }],
  // systemd slices: no container
  ['systemd system service', '/system.slice/nginx.service', { container: null, pod: null, unit: 'nginx.service', slice: 'system.slice' }],
  ['systemd user session', '/user.slice/user-1000.slice/session-3.scope', { container: null, pod: null, unit: 'session-3.scope', slice: 'user-1000.slice' }],
  ['systemd user manager app', '/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope',
    { container: null, unit: 'vte-spawn-1.scope', slice: 'app-org.gnome.Terminal.slice' }],
  ['root cgroup', '/', { container: null, pod: null, unit: null, slice: null }],
  ['a 64-hex name under a service is not a container', `/system.slice/foo.service/${C}`, { container: null }],
  ['an id that is too short is not a container', '/system.slice/docker-abc123.scope', { container: null }],
];

for (const [name, path, want] of table) {
  test(`cgroup path: ${name}`, (t) => {
    const got = parseCgroupPath(path);
    for (const k of Object.keys(want) as Array<keyof CgroupInfo>) t.deepEqual(got[k], want[k], `${k} of ${path}`);
  });
}

test('cgroup path: null and empty give nothing', (t) => {
  t.deepEqual(parseCgroupPath(null), { container: null, pod: null, unit: null, slice: null });
  t.deepEqual(parseCgroupPath(''), { container: null, pod: null, unit: null, slice: null });
});
