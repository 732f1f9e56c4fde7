/* A tenant's state file, tenants/NAME/state.json: the same fields, order and format as src/sandbox/state.ts
 * (TenantState, written with JSON.stringify(s, null, 2) + "\n", temp file then rename, mode 0600). */
#ifndef VELO_FRONT_STATE_H
#define VELO_FRONT_STATE_H
#include <stdbool.h>
#include <stddef.h>

struct strlist {
  char **v;
  size_t n;
};

struct tmount {
  char *source, *target;
  bool readonly;
  char *volume; /* a named volume's (src/volume/volumes.ts): idmapped into a tenant with a user namespace; NULL: a bind */
};

/* a --tmpfs mount: its options as src/sandbox/tenant.ts parseTmpfs validated and merged them */
struct ttmpfs {
  char *target;
  struct strlist options;
};

/* memory, pids, cpus, ioReadBps, ioWriteBps, disk */
#define TLIMITS_MAX 6
/* limits in the order JSON.stringify meets them ({...profile.limits} then the flags that add keys) */
struct tlimit {
  const char *key; /* "memory" | "pids" | "cpus" */
  double value;
};

/* a published port (src/network/networks.ts PortMapping) */
struct tport {
  char *host_ip; /* NULL: every address */
  int host_port, container_port;
  const char *protocol; /* "tcp" | "udp" */
};

struct tstate {
  char *name, *image;
  struct strlist layers, lowers;
  char *backend; /* NULL: absent (farm) */
  char *profile, *hostname, *network;
  struct tport *ports; /* written by the native create only (state_read leaves them to cni.c) */
  size_t n_ports;
  struct strlist env;
  struct tmount *mounts;
  size_t n_mounts;
  struct ttmpfs *tmpfs; /* "tmpfs" (--tmpfs) */
  size_t n_tmpfs;
  bool readonly_root;   /* "readonlyRoot" (--read-only) */
  bool auto_remove;     /* "autoRemove" (--rm with -d): read only (the native create never writes a main command) */
  struct tlimit limits[TLIMITS_MAX];
  int n_limits;
  struct strlist caps;
  char *seccomp;
  bool userns; /* a user namespace of its own ("userns": true); its range: userns.c */
  char *user; /* NULL: absent */
  char *workdir;
  struct strlist cgroups;
  char *created_at;
  /* a main command as the native create writes it (state.ts "main", "logs", "autoRemove"; written only: the
   * monitor reads its plan from the file, monitor.c workload_read). Served only for root, no --restart/--log-opt. */
  bool has_main;
  struct strlist main_argv;
  char *main_workdir; /* NULL: absent */
  long long log_max_size;
  int log_max_files;
  bool has_pid;
  long pid;
  char *pid_start, *started_at;
};

enum { STATE_OK = 0, STATE_NOENT = 1, STATE_HALF = 2, STATE_UNSERVED = -1 };

/* The limit key of s (memory, pids, ...) in *v: true when set. */
bool state_limit(const struct tstate *s, const char *key, double *v);

/* Read tenants/NAME/state.json. STATE_NOENT: no such sandbox; STATE_HALF: the dir without a state file;
 * STATE_UNSERVED: anything else (damaged, unreadable, a field of an unexpected type) — Node says what. */
int state_read(const char *home, const char *name, struct tstate *s);
/* The same from the file's text (what state_format gave): the monitor gets its tenant's state this way. */
int state_parse(const char *text, const char *name, struct tstate *s);

/* JSON.parse's rule with json-c: one value, then only whitespace (NULL otherwise). */
struct json_object;
struct json_object *json_parse_strict(const char *text);

/* tenants/NAME/state.json's text (malloc'd; no symlink followed, at most 16 MiB), or NULL with *err an errno. */
char *state_file_text(const char *home, const char *name, int *err);

/* state.json's text of s (malloc'd into *out): what state_write writes. < 0 on failure. */
int state_format(const struct tstate *s, char **out, size_t *out_len);

/* Write it (temp → rename, 0600, no symlink followed). < 0 with errno on failure. */
int state_write(const char *home, const struct tstate *s);

/* src/sandbox/state.ts isRunning: init alive, same start time, not a zombie */
bool state_running(const struct tstate *s);

int strlist_push(struct strlist *l, const char *v);

#endif
