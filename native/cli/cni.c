/* A tenant on a velo network: the network's CNI configuration list (networks/NAME.conflist, written by
 * src/network/networks.ts) run with the standard plugins, as a CNI runtime does (spec 1.0: each plugin gets the
 * list's cniVersion and name, the previous plugin's result, and runtimeConfig for the capabilities it declares).
 *   - ADD between the runtime's create and start (sb_boot): the network namespace is the container init's, the
 *     workload has not started. A DEL of the same container id first clears what a crash may have left (a lease,
 *     rules). The address of the last run is asked for again (CNI_ARGS IP=...), so a tenant keeps its address
 *     across stop and start. Published ports are checked first: one in use on the host, or published by another
 *     tenant, is refused before anything is made.
 *   - DEL when the container goes (sb_rt_delete: stop, rm, a failed boot), the plugins that ran, in reverse order.
 * The network namespace is pinned by a bind mount at /run/velo/netns/<container id> (as `ip netns add` does) from
 * ADD to DEL: a stop kills init first, and the bridge plugin undoes its masquerade rule only with the namespace
 * in hand. /run is a tmpfs: a reboot takes the pins with it.
 * tenants/NAME/network.json records the run: container id, address, gateway, MAC, ports, the plugins, the ADD
 * result, attached. networks/NAME.hosts (every attached tenant's address, hostname and name) is the tenants'
 * /etc/hosts: it is rewritten in place at every ADD and DEL, under the network lock (networks/lock). */
#include "cni.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "sha256.h"

#define CNI_PATH "/usr/lib/cni:/opt/cni/bin"
#define CNI_IFNAME "eth0"
#define NETNS_DIR "/run/velo/netns"

bool cni_wanted(const struct tstate *s) { return s->network && strcmp(s->network, "loopback") && strcmp(s->network, "none"); }

static int lock_networks(const char *home) {
  char p[4300];
  snprintf(p, sizeof p, "%s/networks", home);
  mkdir(p, 0711);
  snprintf(p, sizeof p, "%s/networks/lock", home);
  int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) return close(fd), -1;
  return fd;
}

/* "velo-" + 16 hex of the store and the tenant: unique on the host, stable across starts */
static void container_id(const char *home, const char *name, char out[40]) {
  struct sha256 h;
  uint8_t d[32];
  sha256_init(&h);
  sha256_update(&h, home, strlen(home));
  sha256_update(&h, "", 1);
  sha256_update(&h, name, strlen(name));
  sha256_final(&h, d);
  int n = snprintf(out, 40, "velo-");
  for (int i = 0; i < 8; i++) n += snprintf(out + n, (size_t)(40 - n), "%02x", d[i]);
}

static json_object *read_json(const char *path) { return json_object_from_file(path); }

static int write_json_atomic(const char *path, json_object *o) {
  const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  return write_file_atomic_at(AT_FDCWD, path, txt, strlen(txt), 0644);
}

/* Run one plugin: config on stdin, its result (or error object) from stdout. 0 and *result, or -1 with err. */
static int run_plugin(const char *type, const char *command, const char *cid, const char *netns, const char *args, json_object *conf,
                      json_object **result, char *err, size_t errlen) {
  char bin[512] = "";
  char paths[] = CNI_PATH;
  for (char *save = NULL, *d = strtok_r(paths, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(bin, sizeof bin, "%s/%s", d, type);
    if (access(bin, X_OK) == 0) break;
    bin[0] = 0;
  }
  if (!bin[0]) return snprintf(err, errlen, "UNSUPPORTED: the CNI plugin %s is not installed (looked in %s)\nsuggestion: install Debian's containernetworking-plugins", type, CNI_PATH), -1;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) < 0) return snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  if (pipe2(out, O_CLOEXEC) < 0) return close(in[0]), close(in[1]), snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  pid_t pid = fork();
  if (pid < 0) return close(in[0]), close(in[1]), close(out[0]), close(out[1]), snprintf(err, errlen, "fork: %s", strerror(errno)), -1;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    char e_cmd[64], e_cid[128], e_ns[4400], e_args[512], e_path[256], e_if[64];
    snprintf(e_cmd, sizeof e_cmd, "CNI_COMMAND=%s", command);
    snprintf(e_cid, sizeof e_cid, "CNI_CONTAINERID=%s", cid);
    snprintf(e_ns, sizeof e_ns, "CNI_NETNS=%s", netns ? netns : "");
    snprintf(e_args, sizeof e_args, "CNI_ARGS=%s", args ? args : "");
    snprintf(e_path, sizeof e_path, "CNI_PATH=%s", CNI_PATH);
    snprintf(e_if, sizeof e_if, "CNI_IFNAME=%s", CNI_IFNAME);
    char *env[] = {e_cmd, e_cid, e_ns, e_args, e_path, e_if, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    char *argv[] = {bin, NULL};
    execve(bin, argv, env);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  /* a plugin that exits without reading its config must not take us with it: SIGPIPE off for this write only */
  void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
  const char *txt = json_object_to_json_string_ext(conf, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  write_all(in[1], txt, strlen(txt));
  close(in[1]);
  signal(SIGPIPE, old_pipe);
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  ssize_t n;
  while (buf && (n = read(out[0], buf + len, cap - len - 1)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    len += (size_t)n;
    if (cap - len < 4096) {
      char *b = realloc(buf, cap *= 2);
      if (!b) break;
      buf = b;
    }
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!buf) return snprintf(err, errlen, "out of memory"), -1;
  buf[len] = 0;
  json_object *r = len ? json_tokener_parse(buf) : NULL;
  free(buf);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    json_object *msg, *details;
    const char *m = r && json_object_object_get_ex(r, "msg", &msg) ? json_object_get_string(msg) : "no message";
    const char *d = r && json_object_object_get_ex(r, "details", &details) ? json_object_get_string(details) : "";
    snprintf(err, errlen, "the CNI plugin %s (%s) failed: %s%s%s", type, command, m, *d ? ": " : "", d);
    if (r) json_object_put(r);
    return -1;
  }
  *result = r;
  return 0;
}

/* the plugin's config: its object from the list + cniVersion, name, prevResult, runtimeConfig for its capabilities */
static json_object *plugin_conf(json_object *list, json_object *plugin, json_object *prev, json_object *ports, json_object *bw) {
  json_object *c = NULL, *v;
  json_object_deep_copy(plugin, &c, NULL);
  if (json_object_object_get_ex(list, "cniVersion", &v)) json_object_object_add(c, "cniVersion", json_object_get(v));
  if (json_object_object_get_ex(list, "name", &v)) json_object_object_add(c, "name", json_object_get(v));
  if (prev) json_object_object_add(c, "prevResult", json_object_get(prev));
  json_object *caps, *cap;
  bool has_caps = json_object_object_get_ex(plugin, "capabilities", &caps);
  if (ports && has_caps && json_object_object_get_ex(caps, "portMappings", &cap) && json_object_get_boolean(cap)) {
    json_object *rc = json_object_new_object();
    json_object_object_add(rc, "portMappings", json_object_get(ports));
    json_object_object_add(c, "runtimeConfig", rc);
  }
  if (bw && has_caps && json_object_object_get_ex(caps, "bandwidth", &cap) && json_object_get_boolean(cap)) {
    json_object *rc = json_object_new_object();
    json_object_object_add(rc, "bandwidth", json_object_get(bw));
    json_object_object_add(c, "runtimeConfig", rc);
  }
  json_object_object_del(c, "capabilities");
  return c;
}

static const char *plugin_type(json_object *p) {
  json_object *t;
  return json_object_object_get_ex(p, "type", &t) ? json_object_get_string(t) : "";
}

/* Is host port p (protocol, address) free? A bind says so for what the host's own services hold. */
static bool port_free(const char *proto, const char *ip, int port) {
  int udp = !strcmp(proto, "udp");
  int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (!ip || !*ip || inet_pton(AF_INET, ip, &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_ANY);
  int r = bind(fd, (struct sockaddr *)&a, sizeof a);
  int en = errno;
  close(fd);
  return r == 0 || en != EADDRINUSE;
}

static const char *jstr(json_object *o, const char *k) {
  json_object *v;
  return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int jint(json_object *o, const char *k) {
  json_object *v;
  return o && json_object_object_get_ex(o, k, &v) ? json_object_get_int(v) : 0;
}

/* Another attached tenant of this store publishing the same host port (portmap binds nothing on the host). */
static const char *port_taken_by_tenant(const char *home, const char *self, const char *proto, int port, char *who, size_t wlen) {
  char d[4300];
  snprintf(d, sizeof d, "%s/tenants", home);
  DIR *dir = opendir(d);
  if (!dir) return NULL;
  struct dirent *de;
  const char *found = NULL;
  while (!found && (de = readdir(dir))) {
    if (de->d_name[0] == '.' || !strcmp(de->d_name, self)) continue;
    char p[4600];
    snprintf(p, sizeof p, "%s/%s/network.json", d, de->d_name);
    json_object *n = read_json(p), *att, *ports;
    if (!n) continue;
    if (json_object_object_get_ex(n, "attached", &att) && json_object_get_boolean(att) && json_object_object_get_ex(n, "ports", &ports))
      for (size_t i = 0; i < json_object_array_length(ports); i++) {
        json_object *m = json_object_array_get_idx(ports, i);
        const char *pr = jstr(m, "protocol");
        if (jint(m, "hostPort") == port && !strcmp(pr ? pr : "tcp", proto)) {
          snprintf(who, wlen, "%s", de->d_name);
          found = who;
        }
      }
    json_object_put(n);
  }
  closedir(dir);
  return found;
}

/* networks/NET.hosts: localhost and every attached tenant of the network (address, hostname, name) */
static void write_hosts(const char *home, const char *net) {
  char p[4300], d[4300];
  snprintf(p, sizeof p, "%s/networks/%s.hosts", home, net);
  snprintf(d, sizeof d, "%s/tenants", home);
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) return;
  len += (size_t)snprintf(buf, cap, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  DIR *dir = opendir(d);
  struct dirent *de;
  while (dir && (de = readdir(dir))) {
    if (de->d_name[0] == '.') continue;
    char np[4600], sp[4600];
    snprintf(np, sizeof np, "%s/%s/network.json", d, de->d_name);
    snprintf(sp, sizeof sp, "%s/%s/state.json", d, de->d_name);
    json_object *n = read_json(np), *att;
    if (n && json_object_object_get_ex(n, "attached", &att) && json_object_get_boolean(att) && jstr(n, "network") && !strcmp(jstr(n, "network"), net) && jstr(n, "ip")) {
      json_object *st = read_json(sp);
      const char *host = jstr(st, "hostname");
      char line[600];
      int l = snprintf(line, sizeof line, "%s\t%s%s%s\n", jstr(n, "ip"), de->d_name, host && strcmp(host, de->d_name) ? " " : "", host && strcmp(host, de->d_name) ? host : "");
      if (len + (size_t)l + 1 > cap) {
        char *b = realloc(buf, cap = (cap + (size_t)l) * 2);
        if (b) buf = b;
      }
      if (len + (size_t)l + 1 <= cap) memcpy(buf + len, line, (size_t)l), len += (size_t)l;
      if (st) json_object_put(st);
    }
    if (n) json_object_put(n);
  }
  if (dir) closedir(dir);
  /* in place, never renamed: every tenant's /etc/hosts is a bind mount of this very inode */
  int fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write_all(fd, buf, len) == 0 && ftruncate(fd, (off_t)len) < 0) {
      /* a longer old list stays past the end: the next rewrite shortens it */
    }
    close(fd);
  }
  free(buf);
}

int cni_hosts_file(const char *home, const struct tstate *s, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/networks/%s.hosts", home, s->network);
  struct stat st;
  if (stat(out, &st) == 0) return 0;
  int lk = lock_networks(home);
  write_hosts(home, s->network);
  if (lk >= 0) close(lk);
  return stat(out, &st);
}

static void detach_locked(const char *home, json_object *rec);

/* the pin of a namespace: /run/velo/netns/CID, a bind mount of /proc/PID/ns/net. 0, or -1 with err. */
static int netns_pin(pid_t init, const char *cid, char *path, size_t plen, char *err, size_t errlen) {
  mkdir("/run/velo", 0755);
  mkdir(NETNS_DIR, 0755);
  snprintf(path, plen, "%s/%s", NETNS_DIR, cid);
  umount2(path, MNT_DETACH); /* a pin a crash left */
  int fd = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0444);
  if (fd < 0) return snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno)), -1;
  close(fd);
  char src[64];
  snprintf(src, sizeof src, "/proc/%d/ns/net", (int)init);
  if (mount(src, path, NULL, MS_BIND, NULL) < 0) return snprintf(err, errlen, "cannot pin the network namespace at %s: %s", path, strerror(errno)), unlink(path), -1;
  return 0;
}

static void netns_unpin(const char *path) {
  if (!path || strncmp(path, NETNS_DIR "/", sizeof NETNS_DIR)) return;
  umount2(path, MNT_DETACH);
  unlink(path);
}

int cni_attach(const char *home, const struct tstate *s, pid_t init, char *err, size_t errlen) {
  char p[4400], netns[256], cid[40];
  container_id(home, s->name, cid);
  snprintf(p, sizeof p, "%s/networks/%s.conflist", home, s->network);
  json_object *list = read_json(p), *plugins;
  if (!list || !json_object_object_get_ex(list, "plugins", &plugins) || !json_object_is_type(plugins, json_type_array)) {
    if (list) json_object_put(list);
    return snprintf(err, errlen, "NOT_FOUND: sandbox %s is on network %s, which does not exist (any more)\nsuggestion: create it (velo network create %s), or remove the sandbox", s->name,
                    s->network, s->network),
           -1;
  }
  /* the published ports (state.json "ports") */
  snprintf(p, sizeof p, "%s/tenants/%s/state.json", home, s->name);
  json_object *st = read_json(p), *ports = NULL, *bw = NULL;
  if (st && json_object_object_get_ex(st, "ports", &ports) && json_object_array_length(ports) > 0) ports = json_object_get(ports);
  else ports = NULL;
  /* state.json "bandwidth": the bandwidth plugin's runtimeConfig (rates and bursts in bits) */
  if (st && json_object_object_get_ex(st, "bandwidth", &bw) && json_object_is_type(bw, json_type_object)) bw = json_object_get(bw);
  else bw = NULL;
  if (st) json_object_put(st);
  int lk = lock_networks(home);
  int rc = -1;
  json_object *prev = NULL;
  bool pinned = false;
  json_object *ran = json_object_new_array();
  char npath[4400];
  snprintf(npath, sizeof npath, "%s/tenants/%s/network.json", home, s->name);
  json_object *old = read_json(npath);
  /* what a crash left (a lease, rules): gone before the ADD */
  if (old) {
    json_object *att;
    if (json_object_object_get_ex(old, "attached", &att) && json_object_get_boolean(att)) detach_locked(home, old);
  }
  for (size_t i = 0; ports && i < json_object_array_length(ports); i++) {
    json_object *m = json_object_array_get_idx(ports, i);
    const char *proto = jstr(m, "protocol") ? jstr(m, "protocol") : "tcp", *ip = jstr(m, "hostIP");
    int hp = jint(m, "hostPort");
    char who[300];
    if (port_taken_by_tenant(home, s->name, proto, hp, who, sizeof who)) {
      snprintf(err, errlen, "BUSY: host port %d/%s is published by sandbox %s\nsuggestion: pick another host port, or stop %s", hp, proto, who, who);
      goto out;
    }
    if (!port_free(proto, ip, hp)) {
      snprintf(err, errlen, "BUSY: host port %s%s%d/%s is already in use on the host\nsuggestion: pick another host port (-p HOST_PORT:TENANT_PORT)", ip ? ip : "", ip ? ":" : "", hp, proto);
      goto out;
    }
  }
  if (netns_pin(init, cid, netns, sizeof netns, err, errlen) < 0) goto out;
  pinned = true;
  char args[256] = "";
  const char *want = jstr(old, "ip");
  if (want) snprintf(args, sizeof args, "IgnoreUnknown=1;IP=%s", want);
  {
    /* written ahead: if this process dies mid-ADD (kill -9), the next DEL (rm, start) still knows every plugin
     * that may have made something, and the pin; a DEL of what was never added is a no-op for the plugins */
    json_object *ahead = json_object_new_object(), *all = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(plugins); i++) {
      const char *type = plugin_type(json_object_array_get_idx(plugins, i));
      if ((!strcmp(type, "portmap") && !ports) || (!strcmp(type, "bandwidth") && !bw)) continue;
      json_object_array_add(all, json_object_new_string(type));
    }
    json_object_object_add(ahead, "network", json_object_new_string(s->network));
    json_object_object_add(ahead, "containerId", json_object_new_string(cid));
    json_object_object_add(ahead, "netns", json_object_new_string(netns));
    if (want) json_object_object_add(ahead, "ip", json_object_new_string(want));
    json_object_object_add(ahead, "ports", ports ? json_object_get(ports) : json_object_new_array());
    if (bw) json_object_object_add(ahead, "bandwidth", json_object_get(bw));
    json_object_object_add(ahead, "plugins", all);
    json_object_object_add(ahead, "attached", json_object_new_boolean(1));
    int w = write_json_atomic(npath, ahead);
    json_object_put(ahead);
    if (w < 0) {
      snprintf(err, errlen, "cannot write %s: %s", npath, strerror(errno));
      goto out;
    }
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    bool failed = false;
    for (size_t i = 0; i < json_object_array_length(plugins); i++) {
      json_object *pl = json_object_array_get_idx(plugins, i);
      const char *type = plugin_type(pl);
      if (!strcmp(type, "portmap") && !ports) continue;
      if (!strcmp(type, "bandwidth") && !bw) continue; /* no rates asked for: nothing to do */
      json_object *conf = plugin_conf(list, pl, prev, ports, bw), *res = NULL;
      int r = run_plugin(type, "ADD", cid, netns, args, conf, &res, err, errlen);
      json_object_put(conf);
      if (r < 0) {
        failed = true;
        break;
      }
      json_object_array_add(ran, json_object_new_string(type));
      if (prev) json_object_put(prev);
      prev = res;
    }
    if (!failed) break;
    /* undo what ran; the address asked for may be another tenant's now: once more, without asking */
    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "network", json_object_new_string(s->network));
    json_object_object_add(rec, "containerId", json_object_new_string(cid));
    json_object_object_add(rec, "netns", json_object_new_string(netns));
    json_object_object_add(rec, "plugins", ran);
    if (ports) json_object_object_add(rec, "ports", json_object_get(ports));
    if (bw) json_object_object_add(rec, "bandwidth", json_object_get(bw));
    detach_locked(home, rec);
    json_object_put(rec);
    ran = json_object_new_array();
    if (prev) json_object_put(prev), prev = NULL;
    if (!args[0] || attempt == 1) goto out;
    args[0] = 0;
  }
  /* the address, gateway and MAC of eth0 from the last result */
  json_object *ips, *ifs, *rec = json_object_new_object();
  char ip[64] = "";
  if (prev && json_object_object_get_ex(prev, "ips", &ips) && json_object_array_length(ips) > 0) {
    json_object *a = json_object_array_get_idx(ips, 0);
    const char *addr = jstr(a, "address");
    if (addr) snprintf(ip, sizeof ip, "%.*s", (int)strcspn(addr, "/"), addr);
    if (jstr(a, "gateway")) json_object_object_add(rec, "gateway", json_object_new_string(jstr(a, "gateway")));
  }
  if (prev && json_object_object_get_ex(prev, "interfaces", &ifs))
    for (size_t i = 0; i < json_object_array_length(ifs); i++) {
      json_object *f = json_object_array_get_idx(ifs, i);
      if (jstr(f, "sandbox") && jstr(f, "name") && !strcmp(jstr(f, "name"), CNI_IFNAME) && jstr(f, "mac")) json_object_object_add(rec, "mac", json_object_new_string(jstr(f, "mac")));
    }
  json_object_object_add(rec, "network", json_object_new_string(s->network));
  json_object_object_add(rec, "containerId", json_object_new_string(cid));
  json_object_object_add(rec, "netns", json_object_new_string(netns));
  json_object_object_add(rec, "ip", json_object_new_string(ip));
  json_object_object_add(rec, "ports", ports ? json_object_get(ports) : json_object_new_array());
  if (bw) json_object_object_add(rec, "bandwidth", json_object_get(bw));
  json_object_object_add(rec, "plugins", ran);
  ran = NULL;
  if (prev) json_object_object_add(rec, "result", json_object_get(prev));
  json_object_object_add(rec, "attached", json_object_new_boolean(1));
  if (write_json_atomic(npath, rec) < 0) {
    snprintf(err, errlen, "cannot write %s: %s", npath, strerror(errno));
    detach_locked(home, rec);
    json_object_put(rec);
    goto out;
  }
  json_object_put(rec);
  write_hosts(home, s->network);
  rc = 0;
  pinned = false; /* the pin stays until DEL */
out:
  if (pinned) netns_unpin(netns);
  if (ran) json_object_put(ran);
  if (prev) json_object_put(prev);
  if (old) json_object_put(old);
  if (ports) json_object_put(ports);
  if (bw) json_object_put(bw);
  json_object_put(list);
  if (lk >= 0) close(lk);
  return rc;
}

/* The ADD's result as far as DEL needs it, rebuilt from host-local's leases (a file per address, naming the
 * container id) when the ADD did not get to record it (killed mid-ADD): the firewall plugin finds its rules by the
 * addresses of prevResult. NULL when there is no lease. */
static json_object *result_from_leases(const char *home, json_object *list, const char *cid) {
  json_object *plugins, *ipam, *ranges, *v;
  if (!json_object_object_get_ex(list, "plugins", &plugins) || json_object_array_length(plugins) == 0) return NULL;
  json_object *bridge = json_object_array_get_idx(plugins, 0);
  if (!json_object_object_get_ex(bridge, "ipam", &ipam) || !json_object_object_get_ex(ipam, "ranges", &ranges)) return NULL;
  const char *subnet = jstr(json_object_array_get_idx(json_object_array_get_idx(ranges, 0), 0), "subnet");
  const char *slash = subnet ? strchr(subnet, '/') : NULL;
  if (!slash || !json_object_object_get_ex(list, "name", &v)) return NULL;
  char dir[4400];
  snprintf(dir, sizeof dir, "%s/networks/ipam/%s", home, json_object_get_string(v));
  DIR *d = opendir(dir);
  if (!d) return NULL;
  json_object *ips = json_object_new_array();
  struct dirent *de;
  while ((de = readdir(d))) {
    struct in_addr a;
    if (inet_pton(AF_INET, de->d_name, &a) != 1) continue;
    char p[4700], buf[128] = "";
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[strcspn(buf, "\r\n")] = 0;
    if (strcmp(buf, cid)) continue;
    char addr[320];
    snprintf(addr, sizeof addr, "%s%s", de->d_name, slash);
    json_object *ip = json_object_new_object();
    json_object_object_add(ip, "address", json_object_new_string(addr));
    json_object_array_add(ips, ip);
  }
  closedir(d);
  if (json_object_array_length(ips) == 0) return json_object_put(ips), NULL;
  json_object *r = json_object_new_object();
  json_object_object_add(r, "cniVersion", json_object_new_string("1.0.0"));
  json_object_object_add(r, "ips", ips);
  return r;
}

/* DEL of the plugins rec says ran, in reverse, with the ADD's result; then the record says detached */
static void detach_locked(const char *home, json_object *rec) {
  const char *net = jstr(rec, "network"), *cid = jstr(rec, "containerId"), *ns = jstr(rec, "netns");
  if (!net || !cid) return;
  /* the pinned namespace, if it is still there (not after a reboot): the plugins undo what is inside it too */
  struct statfs nfs;
  bool ns_ok = ns && statfs(ns, &nfs) == 0 && nfs.f_type == NSFS_MAGIC;
  char p[4400], err[1024];
  snprintf(p, sizeof p, "%s/networks/%s.conflist", home, net);
  json_object *list = read_json(p), *plugins, *ran, *result = NULL, *ports = NULL, *bw = NULL, *rebuilt = NULL;
  json_object_object_get_ex(rec, "result", &result);
  if (!result && list) result = rebuilt = result_from_leases(home, list, cid);
  json_object_object_get_ex(rec, "bandwidth", &bw);
  json_object_object_get_ex(rec, "ports", &ports);
  if (ports && json_object_array_length(ports) == 0) ports = NULL;
  if (list && json_object_object_get_ex(list, "plugins", &plugins) && json_object_object_get_ex(rec, "plugins", &ran)) {
    for (int i = (int)json_object_array_length(ran) - 1; i >= 0; i--) {
      const char *type = json_object_get_string(json_object_array_get_idx(ran, (size_t)i));
      for (size_t j = 0; j < json_object_array_length(plugins); j++) {
        json_object *pl = json_object_array_get_idx(plugins, j);
        if (strcmp(plugin_type(pl), type)) continue;
        json_object *conf = plugin_conf(list, pl, result, ports, bw), *res = NULL;
        if (run_plugin(type, "DEL", cid, ns_ok ? ns : "", NULL, conf, &res, err, sizeof err) == 0 && res) json_object_put(res);
        json_object_put(conf);
        break;
      }
    }
  }
  if (rebuilt) json_object_put(rebuilt);
  if (list) json_object_put(list);
  netns_unpin(ns);
}

void cni_detach(const char *home, const char *name) {
  char np[4400];
  snprintf(np, sizeof np, "%s/tenants/%s/network.json", home, name);
  json_object *rec = read_json(np), *att;
  if (!rec) return;
  if (!json_object_object_get_ex(rec, "attached", &att) || !json_object_get_boolean(att)) {
    json_object_put(rec);
    return;
  }
  int lk = lock_networks(home);
  detach_locked(home, rec);
  /* the address stays on record: the next start asks for it again */
  json_object_object_add(rec, "attached", json_object_new_boolean(0));
  json_object_object_del(rec, "result");
  json_object_object_del(rec, "netns");
  write_json_atomic(np, rec);
  const char *net = jstr(rec, "network");
  if (net) write_hosts(home, net);
  json_object_put(rec);
  if (lk >= 0) close(lk);
}
