/* velo-runtime ps [--format table|json] ID [PS_ARGS...]: the container's processes (host pids), from its cgroup.
 * json: a list of pids (what `docker top` and the containerd shim read); table: ps(1) output of those pids. */
#include <string.h>
#include <sys/wait.h>

#include "rt.h"

int cmd_ps(int argc, char **argv) {
  const char *format = "table";
  const struct flag flags[] = {{"format", 'f', true, &format, NULL}, {NULL, 0, false, NULL, NULL}};
  char *pos[1];
  int rest = 0;
  if (parse_flags(argc, argv, flags, pos, 1, "ps", &rest) != 1) return rt_err("ps: needs a container id");
  if (strcmp(format, "table") && strcmp(format, "json")) return rt_err("ps: --format must be table or json, not %s", format);
  struct velo_err e = {0};
  struct container c;
  if (container_load(pos[0], &c, &e) != 0) return container_free(&c), rt_verr(&e);
  pid_t *pids = NULL;
  size_t n = 0;
  if (!c.has_cg) return rt_err("container %s has no cgroup recorded", c.id);
  if (oci_cgroup_pids(&c.cg, &pids, &n, &e) < 0) return rt_verr(&e);
  if (!strcmp(format, "json")) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", (int)pids[i]);
    puts("]");
    return 0;
  }
  /* table: ps with the caller's options (default -ef), keeping the header and the container's rows */
  char **av = calloc((size_t)(argc - rest) + 3, sizeof *av);
  int ac = 0;
  av[ac++] = "ps";
  if (argc - rest == 0) av[ac++] = "-ef";
  for (int i = rest; i < argc; i++) av[ac++] = argv[i];
  int p[2];
  if (pipe(p) < 0) return rt_err("pipe: %s", strerror(errno));
  pid_t k = fork();
  if (k == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execvp("ps", av);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  char *line = NULL;
  size_t cap = 0;
  int pid_col = -1;
  for (int ln = 0; getline(&line, &cap, f) > 0; ln++) {
    if (ln == 0) {
      /* which column is PID */
      char *copy = strdup(line), *save = NULL;
      int col = 0;
      for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save), col++)
        if (!strcmp(t, "PID")) pid_col = col;
      free(copy);
      fputs(line, stdout);
      if (pid_col < 0) return rt_err("ps: the ps output has no PID column");
      continue;
    }
    char *copy = strdup(line), *save = NULL;
    int col = 0;
    long pid = -1;
    for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save), col++)
      if (col == pid_col) pid = strtol(t, NULL, 10);
    free(copy);
    for (size_t i = 0; i < n; i++)
      if (pids[i] == pid) fputs(line, stdout);
  }
  fclose(f);
  int st;
  waitpid(k, &st, 0);
  return 0;
}
