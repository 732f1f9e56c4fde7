/* velo-runtime: an OCI runtime (runtime-spec 1.x, Linux) in the style of crun: one file per verb
 * (create.c, start.c, state.c, kill.c, delete.c, exec.c, ps.c, pause.c, features.c) over a small library, one
 * file per concern. Each concern owns its part of config.json: it validates that part before anything is
 * changed (unknown or unsupported fields fail closed, the error names the field) and applies it later.
 *
 *   config.c   reading config.json; typed getters that name the field in every error
 *   container.c  the state directory under --root, the runtime's state file, ids, status
 *   ns.c       namespaces (new, or joined by path), uid/gid maps
 *   mounts.c   root, mounts, rootfsPropagation, devices, maskedPaths, readonlyPaths, pivot_root
 *   cgroup.c   cgroupsPath and resources on cgroup v1 and v2; freeze, kill, pids, removal
 *   seccomp.c  linux.seccomp compiled with libseccomp
 *   process.c  process: user, capabilities, rlimits, noNewPrivileges, oomScoreAdj, env, cwd, exec
 *   hooks.c    prestart, createRuntime, createContainer, startContainer, poststart, poststop (with timeouts)
 *   tty.c      terminal + --console-socket
 */
#ifndef VELO_RUNTIME_H
#define VELO_RUNTIME_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/velo_err.h"

/* ---- config.c: typed access to config.json. `where` is the JSON path of the object, e.g. "linux.resources.memory";
 * errors read "config.json: linux.resources.memory.limit: expected an integer". Absent keys and JSON null both
 * count as absent (Go's encoders write null for empty slices). */
json_object *cfg_get(json_object *o, const char *key);
/* Fail on any key of o not in allowed (NULL-terminated): "config.json: WHERE.KEY: not supported by velo-runtime". */
int cfg_only_keys(json_object *o, const char *where, const char *const *allowed, struct velo_err *e);
/* Each getter: 0 and *out set when present; 1 when absent (out untouched); -1 on a wrong type (e filled). */
int cfg_str(json_object *o, const char *key, const char *where, const char **out, struct velo_err *e);
int cfg_bool(json_object *o, const char *key, const char *where, bool *out, struct velo_err *e);
int cfg_i64(json_object *o, const char *key, const char *where, int64_t *out, struct velo_err *e);
int cfg_u64(json_object *o, const char *key, const char *where, uint64_t *out, struct velo_err *e);
int cfg_obj(json_object *o, const char *key, const char *where, json_object **out, struct velo_err *e);
int cfg_arr(json_object *o, const char *key, const char *where, json_object **out, struct velo_err *e);
/* "config.json: WHERE.KEY: MSG" */
int cfg_fail(struct velo_err *e, const char *where, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- cgroup.c. The container's cgroup(s), from linux.cgroupsPath (default "/velo-runtime/<id>") and
 * linux.resources, on v1 (one dir per mounted hierarchy: hybrid hosts like this one) or v2 (one dir). */
struct cg_hier {
  char *controllers; /* "memory", "cpu,cpuacct", "name=systemd"; "" for the v2 (unified) tree */
  char *mountpoint;  /* where the host mounts that hierarchy, e.g. /sys/fs/cgroup/memory */
  char *path;        /* the container's cgroup dir in it, e.g. /sys/fs/cgroup/memory/velo-runtime/ID */
  char *rel;         /* that dir relative to the hierarchy root, e.g. /velo-runtime/ID */
};
/* Not root (ns.c): maps through newuidmap/newgidmap, cgroups only where delegated, exec joins the user namespace
 * first, no device rules. */
bool rt_rootless(void);

struct oci_cgroup {
  bool v2;            /* pure v2 host (cgroup2 mounted at the cgroup root) */
  struct cg_hier *h;  /* the hierarchies the container joins (v2: exactly one) */
  size_t n;
};
/* Validate linux.cgroupsPath and linux.resources (linux may be NULL) before any side effect; resolve the dirs. */
int oci_cgroup_plan(json_object *linux_, const char *id, bool systemd, struct oci_cgroup *cg, struct velo_err *e);
/* Make the dirs and write the limits. */
int oci_cgroup_create(struct oci_cgroup *cg, json_object *linux_, struct velo_err *e);
/* Which hierarchies a join moves into: the v1 ones (with controllers, or named), the v2 (unified) one. */
enum { CG_V1 = 1, CG_V2 = 2, CG_ALL = 3 };
/* Move pid into the hierarchies WHICH names (pid 0 = the caller). */
int oci_cgroup_join(const struct oci_cgroup *cg, pid_t pid, int which, struct velo_err *e);
/* A child (fork semantics; FLAGS: namespaces to make) born in the container's v2 cgroup when it has one
 * (clone3 with CLONE_INTO_CGROUP, Linux 5.7): a process born in its cgroup is never migrated, and a migration
 * through cgroup.procs waits for an RCU grace period (the kernel's cgroup_threadgroup_rwsem; tens of ms, see
 * docs/operations.md). *BORN (in parent and child) says whether it was; when not (no v2 cgroup, no clone3, a
 * seccomp filter that refuses it, clone3 failing for any reason), the child is forked as clone(2) would, and the
 * caller joins as before. */
pid_t oci_cgroup_clone(const struct oci_cgroup *cg, unsigned long flags, bool *born);
/* Host pids of every process in the container's cgroup (malloc'd, sorted). */
int oci_cgroup_pids(const struct oci_cgroup *cg, pid_t **pids, size_t *n, struct velo_err *e);
int oci_cgroup_freeze(const struct oci_cgroup *cg, bool frozen, struct velo_err *e);
/* Is the cgroup frozen (or freezing)? `state` then says "paused". */
bool oci_cgroup_frozen(const struct oci_cgroup *cg);
/* Signal every process of the cgroup; with SIGKILL, wait until it is empty (up to timeout_ms). */
int oci_cgroup_kill_all(const struct oci_cgroup *cg, int sig, int timeout_ms, struct velo_err *e);
/* Remove the dirs (kills nothing; retries briefly while the kernel finishes exits). Missing dirs are fine. */
int oci_cgroup_destroy(const struct oci_cgroup *cg, struct velo_err *e);
/* `update --resources F`: apply a linux.resources object to an existing container's cgroup. */
int oci_cgroup_update(const struct oci_cgroup *cg, json_object *resources, struct velo_err *e);
/* Stored in the runtime's state file so later verbs find the same dirs. */
json_object *oci_cgroup_to_json(const struct oci_cgroup *cg);
int oci_cgroup_from_json(json_object *j, struct oci_cgroup *cg, struct velo_err *e);
void oci_cgroup_free(struct oci_cgroup *cg);

/* ---- seccomp.c */
struct oci_seccomp; /* a compiled filter (libseccomp context), or none */
/* Validate and compile linux.seccomp (NULL: no filter) before any side effect. */
int oci_seccomp_compile(json_object *seccomp, struct oci_seccomp **out, struct velo_err *e);
/* Load it into the calling process (after fork, as late as possible before exec). NULL: nothing. */
int oci_seccomp_load(struct oci_seccomp *s, struct velo_err *e);
void oci_seccomp_free(struct oci_seccomp *s);
/* The compiled program as bytes and back: create keeps it in the state dir, so exec loads the container's filter
 * without compiling linux.seccomp again (a damaged copy is an error, never a missing filter). */
int oci_seccomp_bytes(const struct oci_seccomp *s, void **buf, size_t *n);
int oci_seccomp_from_bytes(const void *buf, size_t n, struct oci_seccomp **out, struct velo_err *e);

/* ---- mounts.c. What the container's mount namespace looks like; runs in the container's child after the
 * namespaces exist and before pivot_root. */
/* uidMappings/gidMappings (KEY) of OBJ as uid_map text ("containerID hostID size\n"...): 0, 1 when absent or empty,
 * -1 with e naming AT.KEY[i] (ns.c) */
int oci_id_maps(json_object *obj, const char *at, const char *key, char **out, struct velo_err *e);

struct oci_mount_ctx {
  json_object *config;        /* the whole config.json */
  const char *bundle;         /* absolute bundle dir (root.path and relative mount sources are relative to it) */
  const char *rootfs;         /* absolute, resolved root.path */
  const struct oci_cgroup *cg; /* for cgroup/cgroup2 mounts */
  bool userns;                /* in a new user namespace: devices are bind-mounted, not mknod'ed */
  bool new_cgroupns;          /* the container has its own cgroup namespace */
  const int *prepared;        /* per mounts[] index: an idmapped mount the parent made (-1: none), or NULL */
  size_t n_prepared;
};
/* The idmapped mounts of config (a mount with uidMappings/gidMappings, which oci_mounts_validate checked equal the
 * container's own): made here, in the caller's (the host's) user namespace, idmapped with userns_fd (the
 * container's new user namespace) — a bind's clone, or for the "/" overlay (velo extension) an overlay whose
 * lower layers are idmapped and which the caller mounts (the overlay itself cannot be idmapped). fds[i] gets mount
 * i's detached mount (-1 for the others; n = the number of mounts). Plain binds are cloned here too, where the
 * caller can (the container's root may not reach their host paths); the child binds the others itself.
 * 0, or -1 with e. */
int oci_mounts_prepare_idmapped(json_object *config, const char *bundle, int userns_fd, int *fds, size_t n, struct velo_err *e);
/* Validate root, mounts, linux.rootfsPropagation, linux.devices, maskedPaths, readonlyPaths before any side effect. */
/* new_userns: the container gets a new user namespace (ns_plan), the only case an idmapped mount is taken in. */
int oci_mounts_validate(json_object *config, const char *bundle, bool new_userns, char **rootfs_out, struct velo_err *e);
/* Make / private (or rootfsPropagation), bind the rootfs onto itself, do every mount, devices, default
 * devices and /dev symlinks, masked and read-only paths. Does not pivot. */
int oci_mounts_setup(const struct oci_mount_ctx *m, struct velo_err *e);
/* pivot_root into the rootfs (or, no_pivot, MS_MOVE + chroot), then root.readonly and the final propagation. */
int oci_mounts_finish(const struct oci_mount_ctx *m, bool no_pivot, struct velo_err *e);

/* ---- what `features` reports comes from the modules themselves: mounts.c lists the option names it
 * recognises; seccomp names are probed through oci_seccomp_compile (cmd_features.c), so the report and the
 * code that accepts a name cannot disagree. */
json_object *oci_mount_options_json(void);

#endif
