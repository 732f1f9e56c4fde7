/* velo-fuse: serve one image read-only over FUSE.
 *
 *   velo-fuse [options] HOME MOUNTPOINT LAYER_ID_TOP [LAYER_ID ...]
 *     --name NAME        image name, shown as the filesystem source (velo:NAME)
 *     --daemon           detach: the calling process exits 0 (printing the daemon's pid) once the image is
 *                        mounted, or 1 with the error on stderr; the daemon then logs to --log (or nowhere)
 *     --log FILE         where a detached daemon writes its messages
 *     --ready-fd N       write "ready PID[ idmap]\n" to fd N once mounted and the FUSE_INIT exchange is done
 *                        ("idmap": the mount can be idmapped), then close it
 *     --allow-other      let every user reach the mount (root only; sandboxes need it)
 *     --max-fds N        CAS descriptors kept open (LRU), default 1024
 *     --threads N        most worker threads, default 16
 *     --timeout SEC      entry/attr cache timeout, default 86400 (the data is immutable)
 *     --no-passthrough   serve every read from the daemon (default: the kernel reads open files straight
 *                        from their CAS object where it supports FUSE passthrough; also VELO_FUSE_PASSTHROUGH=0)
 *     --debug            libfuse request tracing on stderr
 *     --trace FILE       append the CAS name of each regular file's object to FILE at its first open
 *     --fetch-socket PATH  a lazy image: objects the CAS lacks are asked of the fetcher listening on PATH
 *     --fetch-timeout MS   how long an open waits for a lazy object before it gets EIO (default 30000)
 *     --fetcher ARG      the fetcher's command line, one ARG per option (the socket path is appended); the
 *                        daemon starts it as its child once mounted and ends it when it exits
 *
 * Without --daemon it runs in the foreground. SIGINT/SIGTERM/SIGHUP or `umount MOUNTPOINT` end the
 * session; the daemon then unmounts (if still mounted) and exits 0. Layers are given TOP FIRST. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "velo_fuse.h"
#include "../common/vlog.h"

static void usage(void) {
  fprintf(stderr,
          "usage: velo-fuse [--name NAME] [--daemon [--log FILE]] [--ready-fd N] [--allow-other] [--max-fds N] [--threads N] [--timeout SEC]\n"
          "                 [--no-passthrough] [--debug] HOME MOUNTPOINT LAYER_ID_TOP [LAYER_ID ...]\n");
}

/* As many descriptors as we may have: the fd cache is bounded, but clients and libfuse use some too. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static long parse_num(const char *s, const char *what, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    vlog("error", "velo-fuse", "velo-fuse: bad %s: %s", what, s);
    exit(2);
  }
  return v;
}

static void store_closep(struct velo_store **st) {
  if (*st) velo_store_close(*st);
}

/* libfuse's log function for the daemon's own fuse_log lines (ops.c, lazy.c) and libfuse's: as they are, or with
 * VELO_LOG=json one JSON line each (native/common/vlog.h), so a mount's log reads like every other velo log. */
static void json_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  char msg[4096];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = 0;
  vlog_emit(level <= FUSE_LOG_ERR ? "error" : level == FUSE_LOG_WARNING ? "warning" : "info", "velo-fuse", msg, NULL);
}

int main(int argc, char **argv) {
  if (vlog_json()) fuse_set_log_func(json_fuse_log);
  static const struct option longopts[] = {{"name", required_argument, 0, 'n'},    {"ready-fd", required_argument, 0, 'r'},
                                           {"allow-other", no_argument, 0, 'a'},   {"max-fds", required_argument, 0, 'm'},
                                           {"threads", required_argument, 0, 't'}, {"timeout", required_argument, 0, 'T'},
                                           {"debug", no_argument, 0, 'd'},         {"help", no_argument, 0, 'h'},
                                           {"daemon", no_argument, 0, 'D'},        {"log", required_argument, 0, 'l'},
                                           {"no-passthrough", no_argument, 0, 'P'},
                                           {"fetch-socket", required_argument, 0, 'S'},
                                           {"fetch-timeout", required_argument, 0, 'F'},
                                           {"fetcher", required_argument, 0, 'f'},
                                           {"trace", required_argument, 0, 'R'},
                                           {0, 0, 0, 0}};
  const char *name = "image", *log_file = NULL;
  int daemon = 0, passthrough = 1;
  int ready_fd = -1, allow_other = 0, debug = 0;
  long max_fds = 1024, threads = 16, timeout = 86400, fetch_timeout = 30000;
  const char *fetch_socket = NULL, *trace = NULL;
  char *fetcher[34];
  int n_fetcher = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
    switch (c) {
    case 'n': name = optarg; break;
    case 'r': ready_fd = (int)parse_num(optarg, "--ready-fd", 0, INT_MAX); break;
    case 'a': allow_other = 1; break;
    case 'm': max_fds = parse_num(optarg, "--max-fds", 1, 1 << 20); break;
    case 't': threads = parse_num(optarg, "--threads", 1, 1024); break;
    case 'T': timeout = parse_num(optarg, "--timeout", 0, 1L << 30); break;
    case 'd': debug = 1; break;
    case 'D': daemon = 1; break;
    case 'P': passthrough = 0; break;
    case 'l': log_file = optarg; break;
    case 'S': fetch_socket = optarg; break;
    case 'R': trace = optarg; break;
    case 'F': fetch_timeout = parse_num(optarg, "--fetch-timeout", 1, 3600000); break;
    case 'f':
      if (n_fetcher >= 32) {
        vlog("error", "velo-fuse", "velo-fuse: too many --fetcher arguments");
        return 2;
      }
      fetcher[n_fetcher++] = optarg;
      break;
    case 'h': usage(); return 0;
    default: usage(); return 2;
    }
  }
  if (argc - optind < 3) {
    usage();
    return 2;
  }
  const char *mountpoint = argv[optind + 1];
  cleanup_free char *home = realpath(argv[optind], NULL);
  if (!home) {
    vlog("error", "velo-fuse", "velo-fuse: store %s: %s", argv[optind], strerror(errno));
    return 1;
  }
  const char *const *layers = (const char *const *)argv + optind + 2;
  int n_layers = argc - optind - 2;
  for (const char *p = name; *p; p++)
    if (*p == ',' || *p == '\\' || *p <= ' ') {
      vlog("error", "velo-fuse", "velo-fuse: --name must not contain commas, backslashes or blanks");
      return 2;
    }

  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  /* Detach before anything else (LMDB environments and threads do not survive fork): the parent only waits
   * for the child's word that the mount is up, and returns its pid, or fails with what the child said. */
  if (daemon) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      perror("velo-fuse: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("velo-fuse: fork");
      return 1;
    }
    if (pid > 0) {
      close(p[1]);
      char buf[64] = {0};
      ssize_t n = read(p[0], buf, sizeof buf - 1);
      if (n > 6 && strncmp(buf, "ready ", 6) == 0) {
        printf("%s", buf + 6);
        return 0;
      }
      int status;
      waitpid(pid, &status, 0);
      return 1;
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
  }

  static struct velo_fs fs;
  struct velo_err err = {0};
  /* a long-lived reader: on a store shared for reading, the database's flock only per read (manifest.h) */
  if (velo_store_open_flags(&fs.store, home, VELO_STORE_LOCK_PER_TXN, &err) < 0) {
    vlog("error", "velo-fuse", "velo-fuse: %s", err.msg);
    return 1;
  }
  __attribute__((cleanup(store_closep))) struct velo_store *store_guard = &fs.store;
  if (velo_view_init(&fs.view, &fs.store, layers, n_layers, &err) < 0) {
    vlog("error", "velo-fuse", "velo-fuse: %s", err.msg);
    return 1;
  }
  fs.timeout = (double)timeout;
  fs.debug = debug;
  if (getenv("VELO_FUSE_PASSTHROUGH") && strcmp(getenv("VELO_FUSE_PASSTHROUGH"), "0") == 0) passthrough = 0;
  fs.passthrough = passthrough;
  pthread_mutex_init(&fs.pt_lock, NULL);
  passthrough_request(passthrough);
  fs.no_splice = getenv("VELO_FUSE_NO_SPLICE") && strcmp(getenv("VELO_FUSE_NO_SPLICE"), "1") == 0;
  fs.fetch_socket = fetch_socket;
  fs.trace_fd = -1;
  if (trace && (fs.trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
    vlog("error", "velo-fuse", "velo-fuse: --trace %s: %s", trace, strerror(errno));
    return 1;
  }
  fs.fetch_timeout_ms = fetch_timeout;
  if (fetch_socket && n_fetcher == 0) {
    vlog("error", "velo-fuse", "velo-fuse: --fetch-socket needs --fetcher");
    return 2;
  }

  /* The root, resolved before anything is mounted: a missing layer fails here, not on first access. */
  struct velo_dir root_dir;
  struct velo_entry root_e;
  MDB_txn *txn = NULL;
  if (velo_txn_begin(&fs.store, &txn, &err) < 0 || velo_view_root(txn, &fs.view, &root_dir, &root_e, &err) < 0) {
    if (txn) velo_txn_end(&fs.store, txn);
    vlog("error", "velo-fuse", "velo-fuse: %s", err.msg);
    return 1;
  }
  struct vnode *root = vnode_new(&root_e, 0, &root_dir, 0);
  velo_txn_end(&fs.store, txn);
  if (!root || nodes_init(&fs.nodes, root, &err) < 0 || fdcache_init(&fs.fds, (size_t)max_fds, &err) < 0) {
    vlog("error", "velo-fuse", "velo-fuse: out of memory");
    return 1;
  }

  char opts[512];
  snprintf(opts, sizeof opts, "ro,default_permissions,fsname=velo:%s,subtype=velo%s", name, allow_other ? ",allow_other" : "");
  char *fargv[] = {argv[0], "-o", opts, debug ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);
  struct fuse_session *se = fuse_session_new(&args, &velo_fuse_ops, sizeof velo_fuse_ops, &fs);
  fuse_opt_free_args(&args);
  if (!se) {
    vlog("error", "velo-fuse", "velo-fuse: cannot create the FUSE session");
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_session_mount(se, mountpoint) != 0) {
    vlog("error", "velo-fuse", "velo-fuse: cannot mount on %s", mountpoint);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  fs.dev_fd = fuse_session_fd(se);
  /* The kernel sent FUSE_INIT at mount: answer it before saying ready, so the caller gets a mount that is up
   * and learns whether it can be idmapped (a tenant in a user namespace needs that). */
  int idmap = init_exchange(se);
  if (idmap < 0) {
    vlog("error", "velo-fuse", "velo-fuse: the FUSE_INIT exchange on %s failed: %s", mountpoint, strerror(-idmap));
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  if (daemon) {
    /* From here on nobody reads our stdout/stderr: the caller waits until they close. */
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    int logfd = log_file ? open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (nul >= 0) dup2(nul, 0);
    dup2(logfd >= 0 ? logfd : nul, 1);
    dup2(logfd >= 0 ? logfd : nul, 2);
    if (logfd >= 0) close(logfd);
    if (nul >= 0) close(nul);
    if (chdir("/") < 0) perror("velo-fuse: chdir /");
  }
  if (fetch_socket) {
    fetcher[n_fetcher++] = (char *)fetch_socket;
    fetcher[n_fetcher] = NULL;
    int r = lazy_start_fetcher(&fs, fetcher);
    if (r < 0) vlog("error", "velo-fuse", "velo-fuse: cannot start the fetcher: %s (lazy objects will read as EIO)", strerror(-r));
  }
  if (ready_fd >= 0) {
    dprintf(ready_fd, "ready %d%s\n", (int)getpid(), idmap ? " idmap" : "");
    close(ready_fd);
  }

  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  fuse_loop_cfg_set_max_threads(cfg, (unsigned)threads);
  fuse_loop_cfg_set_idle_threads(cfg, (unsigned)(threads < 4 ? threads : 4));
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);

  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  lazy_stop_fetcher(&fs);
  if (debug)
    vlog("info", "velo-fuse", "velo-fuse: fd cache: %llu opens, %llu hits, %llu evictions", (unsigned long long)fs.fds.opens,
            (unsigned long long)fs.fds.hits, (unsigned long long)fs.fds.evictions);
  fdcache_destroy(&fs.fds);
  nodes_destroy(&fs.nodes);
  /* a signal ends the loop with rc = the signal number: that is a clean stop too */
  return rc < 0 ? 1 : 0;
}
