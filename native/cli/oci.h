/* A sandbox as an OCI container: its tenants/NAME/state.json (written by either front door) becomes the
 * bundle's config.json, and an exec becomes a process JSON; velo-runtime does the rest. This is the only place
 * that decides what a velo sandbox is made of (namespaces, mounts, capabilities, seccomp, limits, init). */
#ifndef VELO_FRONT_OCI_H
#define VELO_FRONT_OCI_H
#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "state.h"
#include "userns.h"

/* The config.json of tenant s (home: the store; init: path of velo-init on the host). NULL: out of memory. */
/* ids: NULL, or the maps of a tenant with its own user namespace (s->userns; userns.c). With root, the overlay's
 * lower layers are idmapped with the same maps; rootless (not root), the overlay is mounted inside the tenant's user
 * namespace ("userxattr") and its cgroups are relative to velo's own. */
json_object *oci_sandbox_config(const char *home, const char *init, const struct tstate *s, const struct tenant_ids *ids, bool rootless, const unsigned *io_dev);
/* The sandbox's linux.cgroupsPath: where velo-runtime makes its cgroups in every hierarchy, velo/NAME.STORE (under
 * the root, or rootless under velo's own cgroup). STORE is the store dir's device and inode in hex: tenants of the
 * same name in two stores on one host (a VELO_HOME per CI job) never share a cgroup, so one store's rm or limits
 * never reach the other's tenant. The one place this rule lives: the state's cgroups come from it (cgroup_dirs). */
void oci_sandbox_cgroups_path(const char *home, const char *name, bool rootless, char *buf, size_t len);

struct oci_exec {
  const char *workdir;            /* NULL: the tenant's */
  uid_t uid;
  gid_t gid;
  const char *user_home;          /* HOME from the tenant's passwd (a named user), or NULL */
  const char *const *env;         /* --env K=V, in order */
  int n_env;
  const char *const *argv;
  int argc;
  bool tty;
};
/* The process JSON for `velo-runtime exec --process`. */
json_object *oci_sandbox_process(const struct tstate *s, const struct oci_exec *x);

#endif
