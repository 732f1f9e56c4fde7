/* velo-runtime update --resources F|- ID: new linux.resources for a running container (docker update, the
 * containerd shim's Update). The config copy in the state dir records them, so a later update starts there. */
#include <fcntl.h>
#include <string.h>

#include "rt.h"

int cmd_update(int argc, char **argv) {
  const char *res = NULL;
  const struct flag flags[] = {{"resources", 'r', true, &res, NULL}, {NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, "update", NULL) != 1) return rt_err("update: needs exactly one container id");
  if (!res) return rt_err("update: needs --resources FILE (or - for stdin); the per-resource flags are not supported");
  int fd = !strcmp(res, "-") ? 0 : open(res, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rt_err("update: --resources %s: %s", res, strerror(errno));
  char *buf = malloc(1 << 20);
  size_t got = 0;
  ssize_t n;
  while (buf && got < (1 << 20) - 1 && ((n = read(fd, buf + got, (1 << 20) - 1 - got)) > 0 || (n < 0 && errno == EINTR))) got += n > 0 ? (size_t)n : 0;
  if (fd) close(fd);
  if (!buf) return rt_err("update: out of memory");
  buf[got] = 0;
  json_object *r = json_tokener_parse(buf);
  free(buf);
  if (!r || !json_object_is_type(r, json_type_object)) return rt_err("update: --resources %s: expected a JSON object (linux.resources)", res);
  struct velo_err e = {0};
  struct container c;
  int rc = container_load(pos[0], &c, &e);
  if (rc == 0 && !c.has_cg) rc = velo_fail(&e, 0, "container %s has no cgroup recorded", c.id);
  if (rc == 0) rc = oci_cgroup_update(&c.cg, r, &e);
  if (rc == 0) {
    json_object *linux_ = cfg_get(c.config, "linux");
    if (linux_) json_object_object_add(linux_, "resources", json_object_get(r));
    const char *txt = json_object_to_json_string_ext(c.config, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = container_write_file(c.dir, "config.json", txt, strlen(txt), &e);
  }
  json_object_put(r);
  container_free(&c);
  return rc ? rt_verr(&e) : 0;
}
