/* velo-runtime create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID */
#include <string.h>

#include "rt.h"

int parse_create_flags(int argc, char **argv, struct create_opts *o, bool *detach, const char *verb) {
  const char *preserve = NULL;
  bool keyring = false, pivot = false, d = false;
  const struct flag flags[] = {
      {"bundle", 'b', true, &o->bundle, NULL},
      {"pid-file", 0, true, &o->pid_file, NULL},
      {"console-socket", 0, true, &o->console_socket, NULL},
      {"no-pivot", 0, false, NULL, &pivot},
      {"no-new-keyring", 0, false, NULL, &keyring},
      {"preserve-fds", 0, true, &preserve, NULL},
      {detach ? "detach" : "", detach ? 'd' : 0, false, NULL, &d},
      {NULL, 0, false, NULL, NULL},
  };
  char *pos[1];
  int n = parse_flags(argc, argv, flags, pos, 1, verb, NULL);
  if (n < 0) return -1;
  if (n != 1) return rt_err("%s: needs exactly one container id", verb), -1;
  o->id = pos[0];
  o->no_pivot = pivot;
  o->no_new_keyring = keyring;
  if (detach) *detach = d;
  if (preserve) {
    char *end;
    long v = strtol(preserve, &end, 10);
    if (!*preserve || *end || v < 0 || v > 65536) return rt_err("%s: --preserve-fds must be a count, not %s", verb, preserve), -1;
    o->preserve_fds = (int)v;
  }
  return 0;
}

int cmd_create(int argc, char **argv) {
  struct create_opts o = {0};
  if (parse_create_flags(argc, argv, &o, NULL, "create") < 0) return 1;
  struct velo_err e = {0};
  return container_create(&o, NULL, &e) < 0 ? rt_verr(&e) : 0;
}
