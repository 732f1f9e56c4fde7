import {Flags} from '@oclif/core'

/** Flags shared by `sandbox create` and `sandbox run`. */
export const createFlags = {
  image: Flags.string({description: 'image to run (default: the built-in "default" image: busybox + node + npm)'}),
  profile: Flags.string({description: 'profile name (profiles/NAME.json) or path to a profile .json', default: 'default'}),
  env: Flags.string({char: 'e', description: 'environment variable KEY=VALUE (repeatable)', multiple: true, multipleNonGreedy: true}),
  'env-file': Flags.string({description: 'read environment variables from a file of KEY=VALUE lines (# comments; repeatable)', multiple: true, multipleNonGreedy: true}),
  mount: Flags.string({char: 'v', aliases: ['volume'], description: 'bind mount SRC:DST[:ro|rw] (repeatable; -v/--volume as in docker)', multiple: true, multipleNonGreedy: true}),
  'cap-add': Flags.string({description: "add a capability to the profile's set (e.g. NET_RAW; repeatable)", multiple: true, multipleNonGreedy: true}),
  'cap-drop': Flags.string({description: "drop a capability from the profile's set (e.g. CHOWN, or ALL; repeatable)", multiple: true, multipleNonGreedy: true}),
  memory: Flags.string({description: 'memory limit, e.g. 512m, 2g'}),
  pids: Flags.string({description: 'maximum number of tasks'}),
  cpus: Flags.string({description: 'CPU limit, e.g. 1.5'}),
  'io-read-bps': Flags.string({description: "read rate limit on the store's disk, bytes per second, e.g. 10m"}),
  'io-write-bps': Flags.string({description: "write rate limit on the store's disk, bytes per second, e.g. 10m (cgroup v1: direct and synchronous writes only)"}),
  disk: Flags.string({description: "what the tenant may write into its own files (its upper dir), e.g. 1g; needs project quotas on the store's filesystem"}),
  hostname: Flags.string({description: 'host name inside the sandbox (default: the sandbox name)'}),
  backend: Flags.string({description: 'lower layer: farm (hard-link farms of the layers) or fuse (one velo-fuse mount of the image, shared by its tenants)', options: ['farm', 'fuse'], default: 'farm'}),
  network: Flags.string({description: 'loopback (its own, lo only: the default), none (not even lo), bridge (velo\'s default network, made on first use) or a network of velo network create'}),
  publish: Flags.string({char: 'p', description: 'publish a port: [HOST_IP:]HOST_PORT:TENANT_PORT[/tcp|udp] (repeatable; needs --network)', multiple: true, multipleNonGreedy: true}),
  'ingress-rate': Flags.string({description: 'rate limit of traffic into the sandbox on its network, e.g. 10mbit (the CNI bandwidth plugin)'}),
  'egress-rate': Flags.string({description: 'rate limit of traffic out of the sandbox on its network, e.g. 10mbit'}),
  'read-only': Flags.boolean({description: 'mount the root filesystem read-only (binds, --tmpfs and /dev/shm stay writable)'}),
  tmpfs: Flags.string({description: 'a tmpfs at PATH[:OPTIONS] (default options noexec,nosuid,nodev; e.g. /run or /tmp:exec,size=64m; repeatable)', multiple: true, multipleNonGreedy: true}),
  entrypoint: Flags.string({description: 'replace the image\'s ENTRYPOINT (and drop its CMD), as docker; "" clears it'}),
  userns: Flags.string({description: "private: a user namespace of the tenant's own, its root an unprivileged host uid (the default); host: none, tenant root is host root minus capabilities (root only)", options: ['private', 'host']}),
}

/** A main command's flags (`sandbox create NAME -- CMD`, `sandbox run -d`). */
export const workloadFlags = {
  restart: Flags.string({description: 'when the main command exits: no (the default), on-failure[:N] (a non-zero exit, at most N restarts), always, unless-stopped (= always: no daemon restarts workloads at host boot)'}),
  'log-opt': Flags.string({description: 'log option of the main command: max-size=SIZE (default 10m), max-file=N (default 3) (repeatable)', multiple: true, multipleNonGreedy: true}),
}

export const execFlags = {
  tty: Flags.boolean({char: 't', description: 'allocate a terminal (window size follows yours)'}),
  interactive: Flags.boolean({char: 'i', description: "keep stdin attached (always so: accepted for docker's -it)"}),
  workdir: Flags.string({char: 'w', description: 'working directory inside the sandbox'}),
  user: Flags.string({char: 'u', description: 'USER or UID[:GID] to run as'}),
}

export const createOpts = (f: {image?: string; profile?: string; env?: string[]; mount?: string[]; memory?: string; pids?: string; cpus?: string; 'io-read-bps'?: string; 'io-write-bps'?: string; disk?: string; hostname?: string; backend?: string; userns?: string; network?: string; publish?: string[]; 'ingress-rate'?: string; 'egress-rate'?: string; 'env-file'?: string[]; 'cap-add'?: string[]; 'cap-drop'?: string[]; 'read-only'?: boolean; tmpfs?: string[]; entrypoint?: string}) => ({
  image: f.image,
  profile: f.profile,
  env: f.env,
  mounts: f.mount,
  memory: f.memory,
  pids: f.pids,
  cpus: f.cpus,
  ioReadBps: f['io-read-bps'],
  ioWriteBps: f['io-write-bps'],
  disk: f.disk,
  hostname: f.hostname,
  backend: f.backend,
  userns: f.userns,
  network: f.network,
  publish: f.publish,
  ingressRate: f['ingress-rate'],
  egressRate: f['egress-rate'],
  envFiles: f['env-file'],
  capAdd: f['cap-add'],
  capDrop: f['cap-drop'],
  readOnly: f['read-only'],
  tmpfs: f.tmpfs,
  entrypoint: f.entrypoint,
})
