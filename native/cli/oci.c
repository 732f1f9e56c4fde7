#include "oci.h"
#include "cni.h"

#include <linux/fs.h>

#include "userns.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static json_object *strs(const char *const *v, size_t n) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++) json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static json_object *str_list(const char *s, ...) {
  json_object *a = json_object_new_array();
  va_list ap;
  va_start(ap, s);
  for (; s; s = va_arg(ap, const char *)) json_object_array_add(a, json_object_new_string(s));
  va_end(ap);
  return a;
}

static json_object *mount(const char *dest, const char *type, const char *source, json_object *options) {
  json_object *m = json_object_new_object();
  json_object_object_add(m, "destination", json_object_new_string(dest));
  json_object_object_add(m, "type", json_object_new_string(type));
  json_object_object_add(m, "source", json_object_new_string(source));
  json_object_object_add(m, "options", options);
  return m;
}

/* The `default` seccomp policy: allow, but EPERM for what a tenant never needs and that widens the kernel's attack
 * surface or reaches outside (most also need a capability the tenant lacks: the filter is the second wall);
 * ENOSYS where libc and runtimes fall back quietly; no new namespaces through clone (user namespaces above all).
 * Only the native architecture: a foreign one (x32, i386) is killed by the filter. */
static const char *const DENY[] = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
    "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot",
    "request_key", "setns", "settimeofday", "stime", "swapoff", "swapon", "_sysctl", "syslog", "umount",
    "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old", "fanotify_init",
    "lsm_set_self_attr", "open_tree_attr",
};
static const char *const NOSYS[] = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"};
/* CLONE_NEWNS NEWUTS NEWIPC NEWUSER NEWPID NEWNET NEWCGROUP */
static const unsigned long NSFLAGS[] = {0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000};

static json_object *rule(json_object *names, const char *action, int errno_ret) {
  json_object *r = json_object_new_object();
  json_object_object_add(r, "names", names);
  json_object_object_add(r, "action", json_object_new_string(action));
  json_object_object_add(r, "errnoRet", json_object_new_int(errno_ret));
  return r;
}

static json_object *seccomp_default(void) {
  json_object *s = json_object_new_object();
  json_object_object_add(s, "defaultAction", json_object_new_string("SCMP_ACT_ALLOW"));
  json_object_object_add(s, "architectures", str_list("SCMP_ARCH_X86_64", NULL));
  json_object *rules = json_object_new_array();
  json_object_array_add(rules, rule(strs(DENY, sizeof DENY / sizeof *DENY), "SCMP_ACT_ERRNO", 1 /* EPERM */));
  json_object_array_add(rules, rule(strs(NOSYS, sizeof NOSYS / sizeof *NOSYS), "SCMP_ACT_ERRNO", 38 /* ENOSYS */));
  for (size_t i = 0; i < sizeof NSFLAGS / sizeof *NSFLAGS; i++) {
    json_object *r = rule(str_list("clone", NULL), "SCMP_ACT_ERRNO", 1);
    json_object *arg = json_object_new_object();
    json_object_object_add(arg, "index", json_object_new_int(0));
    json_object_object_add(arg, "value", json_object_new_int64((int64_t)NSFLAGS[i]));
    json_object_object_add(arg, "valueTwo", json_object_new_int64((int64_t)NSFLAGS[i]));
    json_object_object_add(arg, "op", json_object_new_string("SCMP_CMP_MASKED_EQ"));
    json_object *args = json_object_new_array();
    json_object_array_add(args, arg);
    json_object_object_add(r, "args", args);
    json_object_array_add(rules, r);
  }
  /* no FS_IOC_FSSETXATTR: a tenant in the host's user namespace could otherwise move its files out of its disk
   * quota's project (disk.c). The kernel reads the command as 32 bits: compare those only. */
  json_object *r = rule(str_list("ioctl", NULL), "SCMP_ACT_ERRNO", 1);
  json_object *arg = json_object_new_object();
  json_object_object_add(arg, "index", json_object_new_int(1));
  json_object_object_add(arg, "value", json_object_new_int64(0xffffffff));
  json_object_object_add(arg, "valueTwo", json_object_new_int64(FS_IOC_FSSETXATTR));
  json_object_object_add(arg, "op", json_object_new_string("SCMP_CMP_MASKED_EQ"));
  json_object *args = json_object_new_array();
  json_object_array_add(args, arg);
  json_object_object_add(r, "args", args);
  json_object_array_add(rules, r);
  json_object_object_add(s, "syscalls", rules);
  return s;
}

static json_object *caps_json(const struct strlist *caps) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < caps->n; i++) {
    char n[64];
    snprintf(n, sizeof n, "CAP_%s", caps->v[i]);
    json_object_array_add(a, json_object_new_string(n));
  }
  return a;
}

/* bounding always; for root also effective and permitted (a tenant's other users have none, as before) */
static json_object *capabilities(const struct strlist *caps, bool root) {
  json_object *c = json_object_new_object();
  json_object_object_add(c, "bounding", caps_json(caps));
  json_object_object_add(c, "effective", root ? caps_json(caps) : json_object_new_array());
  json_object_object_add(c, "permitted", root ? caps_json(caps) : json_object_new_array());
  json_object_object_add(c, "inheritable", json_object_new_array());
  json_object_object_add(c, "ambient", json_object_new_array());
  return c;
}

/* root: /velo/NAME; rootless: velo/NAME, relative, which velo-runtime puts beside its caller's own cgroup (on v2,
 * under the parent the user was delegated; elsewhere it cannot make it and the tenant goes without) */
void oci_sandbox_cgroups_path(const char *home, const char *name, bool rootless, char *buf, size_t len) {
  struct stat st;
  /* a store that cannot be stat'ed cannot hold a tenant either: the name alone still gives a valid path */
  if (stat(home, &st) < 0) st.st_dev = 0, st.st_ino = 0;
  snprintf(buf, len, "%svelo/%s.%llx-%llx", rootless ? "" : "/", name, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

/* [{containerID, hostID, size}...] */
static json_object *id_map(const struct idmap *im) {
  json_object *a = json_object_new_array();
  for (unsigned i = 0; i < im->n; i++) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "containerID", json_object_new_int64((int64_t)im->c[i]));
    json_object_object_add(m, "hostID", json_object_new_int64((int64_t)im->h[i]));
    json_object_object_add(m, "size", json_object_new_int64((int64_t)im->s[i]));
    json_object_array_add(a, m);
  }
  return a;
}

json_object *oci_sandbox_config(const char *home, const char *init, const struct tstate *s, const struct tenant_ids *ids, bool rootless, const unsigned *io_dev) {
  char dir[4200], buf[4400];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, s->name);
  json_object *c = json_object_new_object();
  json_object_object_add(c, "ociVersion", json_object_new_string("1.0.2"));

  /* pid 1 is velo-init: it reaps, passes TERM/INT/HUP/QUIT/USR1/USR2 to every process and keeps only CAP_KILL */
  json_object *p = json_object_new_object();
  json_object_object_add(p, "terminal", json_object_new_boolean(0));
  json_object *u = json_object_new_object();
  json_object_object_add(u, "uid", json_object_new_int(0));
  json_object_object_add(u, "gid", json_object_new_int(0));
  json_object_object_add(p, "user", u);
  json_object_object_add(p, "args", str_list("/dev/init", NULL));
  json_object_object_add(p, "env", str_list(DEFAULT_PATH, NULL));
  json_object_object_add(p, "cwd", json_object_new_string("/"));
  const char *kill_only[] = {"KILL"};
  struct strlist kl = {(char **)kill_only, 1};
  json_object_object_add(p, "capabilities", capabilities(&kl, true));
  json_object_object_add(p, "noNewPrivileges", json_object_new_boolean(1));
  json_object_object_add(c, "process", p);

  json_object *root = json_object_new_object();
  snprintf(buf, sizeof buf, "%s/root", dir);
  json_object_object_add(root, "path", json_object_new_string(buf));
  json_object_object_add(root, "readonly", json_object_new_boolean(s->readonly_root));
  json_object_object_add(c, "root", root);
  json_object_object_add(c, "hostname", json_object_new_string(s->hostname));

  json_object *mounts = json_object_new_array();
  /* the root: an overlay over the image's shared farms (or its FUSE mount), mounted by velo-runtime inside the
   * container's mount namespace (its "/" extension), so it lives and dies with the sandbox. lowerdir+ one layer
   * at a time: no option-page limit on the number of layers. metacopy off: upper dirs are the tenant's. */
  json_object *ov = json_object_new_array();
  for (size_t i = 0; i < s->lowers.n; i++) {
    snprintf(buf, sizeof buf, "lowerdir+=%s", s->lowers.v[i]);
    json_object_array_add(ov, json_object_new_string(buf));
  }
  snprintf(buf, sizeof buf, "upperdir=%s/upper", dir);
  json_object_array_add(ov, json_object_new_string(buf));
  snprintf(buf, sizeof buf, "workdir=%s/work", dir);
  json_object_array_add(ov, json_object_new_string(buf));
  json_object_array_add(ov, json_object_new_string("metacopy=off"));
  json_object_array_add(ov, json_object_new_string("nodev"));
  /* rootless: mounted inside the tenant's user namespace, so overlayfs keeps its marks in user.overlay.* (the farms'
   * opaque dirs are written so, velo-meta); with root: the lower layers idmapped, the overlay mounted by the host */
  if (rootless) json_object_array_add(ov, json_object_new_string("userxattr"));
  json_object *top = mount("/", "overlay", "overlay", ov);
  if (ids && !rootless) {
    json_object_object_add(top, "uidMappings", id_map(&ids->uid));
    json_object_object_add(top, "gidMappings", id_map(&ids->gid));
  }
  json_object_array_add(mounts, top);
  json_object_array_add(mounts, mount("/proc", "proc", "proc", str_list("nosuid", "nodev", "noexec", NULL)));
  json_object_array_add(mounts, mount("/dev", "tmpfs", "tmpfs", str_list("nosuid", "noexec", "mode=755", "size=65536k", NULL)));
  json_object_array_add(mounts, mount("/dev/pts", "devpts", "devpts", str_list("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL)));
  json_object_array_add(mounts, mount("/dev/shm", "tmpfs", "shm", str_list("nosuid", "nodev", "mode=1777", "size=65536k", NULL)));
  json_object_array_add(mounts, mount("/dev/mqueue", "mqueue", "mqueue", str_list("nosuid", "nodev", "noexec", NULL)));
  json_object_array_add(mounts, mount("/sys", "sysfs", "sysfs", str_list("nosuid", "nodev", "noexec", "ro", NULL)));
  /* the tenant's own cgroups, read-only (its cgroup namespace makes them the root): programs see their limits */
  json_object_array_add(mounts, mount("/sys/fs/cgroup", "cgroup", "cgroup", str_list("nosuid", "nodev", "noexec", "ro", NULL)));
  json_object_array_add(mounts, mount("/dev/init", "bind", init, str_list("bind", "ro", "nosuid", "nodev", NULL)));
  /* on a velo network: the network's hosts file (its tenants by name), read-only, kept current by cni.c */
  char hosts[4400];
  if (cni_wanted(s) && cni_hosts_file(home, s, hosts, sizeof hosts) == 0)
    json_object_array_add(mounts, mount("/etc/hosts", "bind", hosts, str_list("bind", "ro", "nosuid", "nodev", "noexec", NULL)));
  for (size_t i = 0; i < s->n_mounts; i++) {
    json_object *b = mount(s->mounts[i].target, "bind", s->mounts[i].source,
                           s->mounts[i].readonly ? str_list("rbind", "nosuid", "nodev", "ro", NULL) : str_list("rbind", "nosuid", "nodev", NULL));
    /* a named volume keeps the ids a tenant sees (root = 0 on disk): idmapped with the tenant's own map, so tenants
     * of different host ranges share it, each as its own root. Rootless: the user's files, a plain bind (its root). */
    if (s->mounts[i].volume && ids && !rootless) {
      json_object_object_add(b, "uidMappings", id_map(&ids->uid));
      json_object_object_add(b, "gidMappings", id_map(&ids->gid));
    }
    json_object_array_add(mounts, b);
  }
  /* --tmpfs: options as Node merged them (nosuid,nodev always among them); fresh at every start */
  for (size_t i = 0; i < s->n_tmpfs; i++) {
    json_object *opts = json_object_new_array();
    for (size_t k = 0; k < s->tmpfs[i].options.n; k++) json_object_array_add(opts, json_object_new_string(s->tmpfs[i].options.v[k]));
    json_object_array_add(mounts, mount(s->tmpfs[i].target, "tmpfs", "tmpfs", opts));
  }
  json_object_object_add(c, "mounts", mounts);

  json_object *l = json_object_new_object();
  json_object *ns = json_object_new_array();
  static const char *const NS[] = {"user", "mount", "pid", "uts", "ipc", "network", "cgroup"};
  for (size_t i = ids ? 0 : 1; i < sizeof NS / sizeof *NS; i++) {
    json_object *n = json_object_new_object();
    json_object_object_add(n, "type", json_object_new_string(NS[i]));
    json_object_array_add(ns, n);
  }
  json_object_object_add(l, "namespaces", ns);
  if (ids) {
    json_object_object_add(l, "uidMappings", id_map(&ids->uid));
    json_object_object_add(l, "gidMappings", id_map(&ids->gid));
  }
  oci_sandbox_cgroups_path(home, s->name, rootless, buf, sizeof buf);
  json_object_object_add(l, "cgroupsPath", json_object_new_string(buf));
  json_object *res = json_object_new_object();
  /* no device but the default ones (null, zero, tty, ...): a tenant can never reach a host disk */
  json_object *dev = json_object_new_object();
  json_object_object_add(dev, "allow", json_object_new_boolean(0));
  json_object_object_add(dev, "access", json_object_new_string("rwm"));
  json_object *devs = json_object_new_array();
  json_object_array_add(devs, dev);
  json_object_object_add(res, "devices", devs);
  double v;
  if (state_limit(s, "memory", &v)) {
    /* swap included: the limit cannot be dodged by swapping */
    json_object *m = json_object_new_object();
    json_object_object_add(m, "limit", json_object_new_int64((int64_t)v));
    json_object_object_add(m, "swap", json_object_new_int64((int64_t)v));
    json_object_object_add(res, "memory", m);
  }
  if (state_limit(s, "pids", &v)) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "limit", json_object_new_int64((int64_t)v));
    json_object_object_add(res, "pids", m);
  }
  if (state_limit(s, "cpus", &v)) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "quota", json_object_new_int64((int64_t)(v * 100000 + 0.5)));
    json_object_object_add(m, "period", json_object_new_int64(100000));
    json_object_object_add(res, "cpu", m);
  }
  /* I/O rates on the disk under the store (io_dev: major, minor, resolved at boot): v1 blkio throttle, v2 io.max */
  static const char *const IO[][2] = {{"ioReadBps", "throttleReadBpsDevice"}, {"ioWriteBps", "throttleWriteBpsDevice"}};
  json_object *bio = NULL;
  for (int i = 0; io_dev && i < 2; i++) {
    if (!state_limit(s, IO[i][0], &v)) continue;
    if (!bio) bio = json_object_new_object();
    json_object *d = json_object_new_object();
    json_object_object_add(d, "major", json_object_new_int64(io_dev[0]));
    json_object_object_add(d, "minor", json_object_new_int64(io_dev[1]));
    json_object_object_add(d, "rate", json_object_new_int64((int64_t)v));
    json_object *a = json_object_new_array();
    json_object_array_add(a, d);
    json_object_object_add(bio, IO[i][1], a);
  }
  if (bio) json_object_object_add(res, "blockIO", bio);
  json_object_object_add(l, "resources", res);
  json_object_object_add(l, "maskedPaths", str_list("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/kallsyms", "/proc/latency_stats",
                                                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", NULL));
  json_object_object_add(l, "readonlyPaths", str_list("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL));
  if (!strcmp(s->seccomp, "default")) json_object_object_add(l, "seccomp", seccomp_default());
  json_object_object_add(c, "linux", l);
  json_object *ann = json_object_new_object();
  /* network "none": its own network namespace with even lo left down */
  if (!strcmp(s->network, "none")) json_object_object_add(ann, "org.velo.loopback", json_object_new_string("down"));
  json_object_object_add(ann, "org.velo.sandbox", json_object_new_string(s->name));
  json_object_object_add(c, "annotations", ann);
  return c;
}

/* envMerge: later values win, a key keeps the place of its first appearance (a JS Map) */
static void env_set(json_object *env, const char *kv) {
  const char *eq = strchr(kv, '=');
  size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
  for (size_t i = 0; i < json_object_array_length(env); i++) {
    const char *e = json_object_get_string(json_object_array_get_idx(env, i));
    if (!strncmp(e, kv, kl) && e[kl] == '=') {
      json_object_array_put_idx(env, i, json_object_new_string(kv));
      return;
    }
  }
  json_object_array_add(env, json_object_new_string(kv));
}

json_object *oci_sandbox_process(const struct tstate *s, const struct oci_exec *x) {
  json_object *p = json_object_new_object();
  json_object_object_add(p, "terminal", json_object_new_boolean(x->tty));
  json_object *u = json_object_new_object();
  json_object_object_add(u, "uid", json_object_new_int64(x->uid));
  json_object_object_add(u, "gid", json_object_new_int64(x->gid));
  json_object_object_add(p, "user", u);
  json_object *args = json_object_new_array();
  for (int i = 0; i < x->argc; i++) json_object_array_add(args, json_object_new_string(x->argv[i]));
  json_object_object_add(p, "args", args);
  /* the tenant's env, then HOME of a named user, HOSTNAME, TERM for a terminal, then --env (later wins) */
  json_object *env = json_object_new_array();
  char buf[4200];
  for (size_t i = 0; i < s->env.n; i++) env_set(env, s->env.v[i]);
  if (x->user_home) {
    snprintf(buf, sizeof buf, "HOME=%s", x->user_home);
    env_set(env, buf);
  }
  snprintf(buf, sizeof buf, "HOSTNAME=%s", s->hostname);
  env_set(env, buf);
  if (x->tty) {
    const char *term = getenv("TERM");
    snprintf(buf, sizeof buf, "TERM=%s", term && *term ? term : "xterm-256color");
    env_set(env, buf);
  }
  for (int i = 0; i < x->n_env; i++) env_set(env, x->env[i]);
  json_object_object_add(p, "env", env);
  json_object_object_add(p, "cwd", json_object_new_string(x->workdir ? x->workdir : s->workdir));
  json_object_object_add(p, "capabilities", capabilities(&s->caps, x->uid == 0));
  json_object_object_add(p, "noNewPrivileges", json_object_new_boolean(1));
  return p;
}
