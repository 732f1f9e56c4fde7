/* velo-runtime list [--format table|json] [--quiet]: the containers under --root. */
#include <dirent.h>
#include <string.h>

#include "rt.h"

int cmd_list(int argc, char **argv) {
  const char *format = "table";
  bool quiet = false;
  const struct flag flags[] = {{"format", 'f', true, &format, NULL}, {"quiet", 'q', false, NULL, &quiet}, {NULL, 0, false, NULL, NULL}};
  if (parse_flags(argc, argv, flags, NULL, 0, "list", NULL) < 0) return 1;
  bool json = !strcmp(format, "json");
  if (!json && strcmp(format, "table")) return rt_err("list: --format must be table or json");
  DIR *d = opendir(G.root);
  json_object *arr = json_object_new_array();
  if (!json && !quiet) printf("%-24s %-8s %-9s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    struct velo_err e = {0};
    struct container c;
    if (container_load(de->d_name, &c, &e) == 0) {
      if (quiet) puts(c.id);
      else if (json) json_object_array_add(arr, json_tokener_parse(container_state_json(&c, NULL)));
      else {
        const char *st = container_status(&c);
        printf("%-24s %-8d %-9s %-40s %s\n", c.id, strcmp(st, "stopped") ? (int)c.pid : 0, st, json_object_get_string(cfg_get(c.state, "bundle")),
               json_object_get_string(cfg_get(c.state, "created")));
      }
    }
    container_free(&c);
  }
  if (d) closedir(d);
  if (json) puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
  json_object_put(arr);
  return 0;
}
