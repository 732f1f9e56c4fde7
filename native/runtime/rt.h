/* velo-runtime internals shared by the verbs: global options, logging, the container record, namespaces,
 * process setup, hooks and the console. The modules each concern owns are declared in runtime.h. */
#ifndef VELO_RT_H
#define VELO_RT_H
#include <signal.h>
#include <stdio.h>

#include "runtime.h"
#include "../common/sysutil.h"

#define RT_VERSION "0.1.0"
#define RT_SPEC_VERSION "1.0.2"

/* ---- main.c: global options and logging */
struct gopts {
  const char *root;     /* --root: the state dirs live here (default /run/velo-runtime) */
  const char *log;      /* --log: errors (and, with --debug, progress) are appended here too */
  bool log_json;        /* --log-format json: {"level","msg","time"} per line, as runc writes for containerd */
  bool debug;
  bool systemd_cgroup;  /* --systemd-cgroup: refused (no systemd cgroup manager) */
};
extern struct gopts G;
void rt_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "velo-runtime: MSG" to stderr and the log; returns 1 (the exit code of a failed verb). */
int rt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_verr(const struct velo_err *e);

/* A verb's flags: --name value, --name=value, -name value (urfave/cli style, as runc accepts), short aliases. */
struct flag {
  const char *name;
  char alias;          /* short form, or 0 */
  bool takes_value;
  const char **value;  /* for flags with a value (last one wins) */
  bool *set;           /* for bool flags (may also take =true/=false) */
  const char **list;   /* for repeatable flags with a value (--env K=V --env ...) */
  int *n_list;
  int max_list;
};
/* Parse flags and collect positionals; returns the number of positionals or -1 (error printed). */
/* With rest != NULL parsing stops after the first positional (exec ID CMD...) and *rest is the index after it. */
int parse_flags(int argc, char **argv, const struct flag *flags, char **pos, int max_pos, const char *verb, int *rest);

/* ---- container.c: the state dir <root>/<id>/ and the runtime's own state file in it */
struct container {
  char *id;
  char *dir;             /* <root>/<id> */
  json_object *state;    /* state.json: the runtime's record (pid, start time, bundle, cgroup, ...) */
  json_object *config;   /* the config.json copy made at create */
  pid_t pid;             /* 0 while creating */
  unsigned long long pid_start;
  struct oci_cgroup cg;
  bool has_cg;
};
int container_id_check(const char *id, struct velo_err *e);
/* Make <root> (0700) and return the path of <root>/<id>. */
int container_dir(const char *id, char **dir, struct velo_err *e);
/* 0 loaded; 1 no such container (e names it); -1 damaged (e says why, c->dir set) */
int container_load(const char *id, struct container *c, struct velo_err *e);
/* Parse DIR/config.json (any JSON error names the file). */
json_object *config_read(const char *dir, struct velo_err *e);
int container_save(struct container *c, struct velo_err *e);
/* creating | created | running | paused | stopped */
const char *container_status(const struct container *c);
bool container_alive(const struct container *c);
/* The spec's state JSON (ociVersion, id, status, pid, bundle, annotations), as `state` prints and hooks read. */
char *container_state_json(const struct container *c, const char *status_override);
void container_free(struct container *c);
int container_write_file(const char *dir, const char *name, const char *data, size_t len, struct velo_err *e);
int write_pid_file(const char *path, pid_t pid, struct velo_err *e);

/* ---- ns.c: linux.namespaces, uidMappings/gidMappings, timeOffsets */
enum { NS_USER, NS_MNT, NS_PID, NS_NET, NS_IPC, NS_UTS, NS_CGROUP, NS_TIME, NS_COUNT };
struct ns_plan {
  bool listed[NS_COUNT];   /* in linux.namespaces */
  int join_fd[NS_COUNT];   /* an fd of the namespace to join (path given), or -1 */
  int clone_flags;         /* namespaces created by clone() (cgroup and time are unshared separately) */
  char *uid_map, *gid_map; /* "containerID hostID size\n"... for a new user namespace */
  char *time_offsets;      /* "monotonic S NS\nboottime S NS\n" for a new time namespace */
};
extern const char *const NS_NAMES[NS_COUNT];     /* spec names: user, mount, pid, network, ... */
extern const char *const NS_PROC_NAMES[NS_COUNT]; /* /proc/PID/ns names: user, mnt, pid, net, ... */
extern const int NS_CLONE_FLAGS[NS_COUNT];       /* CLONE_NEWUSER, CLONE_NEWNS, ... */
int ns_plan(json_object *linux_, struct ns_plan *n, struct velo_err *e);
void ns_plan_close(struct ns_plan *n);
/* In the parent, before clone: join pid/time namespaces by path (they apply to children), unshare a new time ns. */
int ns_parent_prepare(struct ns_plan *n, struct velo_err *e);
/* Not root: fn(arg) in a child that is root of a new user namespace with these maps (newuidmap/newgidmap), e.g.
 * to remove what a rootless container left owned by ids of its range. 0 when fn returned 0. */
int ns_run_mapped(const char *uid_map, const char *gid_map, int (*fn)(void *), void *arg, struct velo_err *e);
/* In the parent, after clone: write the child's uid/gid maps. */
int ns_write_maps(const struct ns_plan *n, pid_t child, struct velo_err *e);
/* In the child: join the namespaces given by path (user first), in the order the kernel needs. */
int ns_child_join(struct ns_plan *n, struct velo_err *e);

/* ---- process.c: the process object (create's and exec's) */
struct proc_plan {
  json_object *p;
  char **argv, **env;
  const char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t n_groups;
  int64_t umask;           /* -1: leave */
  uint64_t caps[5];        /* bounding, effective, inheritable, permitted, ambient */
  bool no_new_privs;
  bool terminal;
  unsigned short rows, cols;
  bool has_oom;
  int64_t oom_score_adj;
  struct { int resource; uint64_t soft, hard; } rlimits[32];
  size_t n_rlimits;
  bool has_ioprio;
  int ioprio;
};
int proc_plan(json_object *process, const char *where, struct proc_plan *pp, struct velo_err *e);
void proc_plan_free(struct proc_plan *pp);
/* Set before the user switch: rlimits, oom_score_adj, ioprio, umask. */
int proc_apply_early(const struct proc_plan *pp, struct velo_err *e);
/* Resolve argv[0] with the process's PATH inside the (already entered) root; malloc'd path. */
int proc_find_exec(const struct proc_plan *pp, char **path, struct velo_err *e);
/* bounding set → keep caps → user (groups, gid, uid) → caps (e, p, i, ambient) → nnp → seccomp → cwd. */
int proc_finalize(const struct proc_plan *pp, struct oci_seccomp *sc, struct velo_err *e);
/* execve with exactly the process's env; on failure reports errno */
int proc_exec(const struct proc_plan *pp, const char *path, struct velo_err *e);
/* Every signal back to its default disposition, none blocked (before the container's program runs). */
void proc_reset_signals(void);
/* The signals run and exec pass on to their child (WINCH: a relayed terminal copies the size instead). */
extern const int PROC_FORWARD[];
extern const size_t PROC_N_FORWARD;
/* Those and SIGCHLD: block them before the child exists. */
void proc_forward_set(sigset_t *set);
/* Wait for child with the set blocked, passing those signals on; its exit code (128+N for signal N). */
int proc_wait_forwarding(pid_t child, const sigset_t *set);
/* Add HOME (from the container's /etc/passwd for the uid, else /) when the env has none, as runc; call inside the root. */
int proc_default_home(struct proc_plan *pp);
int cap_last(void);
extern const char *const CAP_NAMES[]; /* CAP_CHOWN ... by number, NULL-terminated */

/* ---- hooks.c */
int hooks_validate(json_object *hooks, struct velo_err *e);
/* Run every hook of one kind (e.g. "prestart") with the state JSON on stdin; first failure stops. */
int hooks_run(json_object *config, const char *kind, const char *state_json, struct velo_err *e);

/* ---- tty.c: process.terminal with --console-socket */
int console_connect(const char *path, struct velo_err *e);
/* Open a pty from /dev/ptmx (inside the container), send the master over sock, make the slave our
 * controlling terminal and stdio. */
int console_setup(int sock, unsigned short rows, unsigned short cols, struct velo_err *e);
/* The other end, when velo-runtime relays the terminal itself (exec/run -t without --console-socket, as runc):
 * receive the master (sized like our own terminal). */
int console_recv(int sock, struct velo_err *e);

/* ---- create.c (create and run share it) */
struct create_opts {
  const char *id, *bundle, *pid_file, *console_socket;
  bool no_pivot, no_new_keyring;
  int preserve_fds;
  /* run in the foreground: a terminal without --console-socket is relayed by run itself; the socket its master
   * arrives on is returned here (-1: no terminal) */
  int *relay_sock;
  /* the container's process gets /dev/null as stdio instead of ours (a library caller: the native front-end) */
  bool null_stdio;
};
/* Create the container (state "created", its process waiting for start); *child (if given) gets that process's
 * pid, a child of the caller (run waits for it). 0, or -1 with e saying why (nothing left behind). */
int container_create(const struct create_opts *o, pid_t *child, struct velo_err *e);
/* create's and run's flags (cmd_create.c); detach non-NULL: run's --detach too. 0, or -1 with the error printed. */
int parse_create_flags(int argc, char **argv, struct create_opts *o, bool *detach, const char *verb);
/* Let a created container's process run: write to exec.fifo, run poststart hooks. */
int container_start(struct container *c, struct velo_err *e);
int container_delete(struct container *c, bool force, struct velo_err *e);
/* delete [--force] by id, a damaged or half-made state dir included (--force removes what it can find of it);
 * with force a missing container is no error. */
int container_remove(const char *id, bool force, struct velo_err *e);
/* ---- exec.c: one more process in a running container */
struct exec_opts {
  const char *console_socket; /* process.terminal: the engine's end of the terminal */
  int preserve_fds;
  /* process.terminal without a console socket: the socket its master arrives on (console_recv) is returned here */
  int *relay_sock;
};
/* Start process (the spec's process object) in container c. On return the signals proc_forward_set names are
 * blocked, so a wait (proc_wait_forwarding) cannot miss them. 0 and *child; -1 with e saying why and *code the
 * exit code a shell would give for a process that never ran (127 not found, 126 not executable, else 1). */
int container_exec(const struct container *c, json_object *process, const struct exec_opts *xo, pid_t *child, int *code,
                   struct velo_err *e);
/* kill [--all] by id: sig to the container's init (or, all, to every process of its cgroup); a container that is
 * not running is an error. 0, or -1 with e. */
int container_kill(const char *id, int sig, bool all, struct velo_err *e);
/* pause / resume by id: freeze or thaw every process of the container's cgroup. 0 done, 1 it already was paused
 * (running); -1 with e: it is neither (stopped, creating) or the cgroup did not settle. */
int container_freeze(const char *id, bool frozen, struct velo_err *e);
/* Send sig to the container's init through a pidfd (start time checked). */
int container_signal(const struct container *c, int sig, struct velo_err *e);
int parse_signal(const char *s, int *sig);
/* Wait up to timeout_ms for the container's init to exit (0), or -1 on timeout. */
int container_wait_exit(const struct container *c, int timeout_ms);

/* the verbs */
int cmd_create(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_update(int argc, char **argv);
int cmd_list(int argc, char **argv);

#endif
