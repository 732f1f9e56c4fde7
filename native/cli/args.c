#include "args.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* the token queue: argv plus the few tokens parse_flag pushes back (split --flag=value, bundled -abc) */
struct queue {
  const char *tok[2 * ARGS_MAX_VALUES];
  int head, tail;
};

static int q_push_front(struct queue *q, const char *t) {
  if (q->head == 0) return -1;
  q->tok[--q->head] = t;
  return 0;
}

static const char *q_shift(struct queue *q) { return q->head < q->tail ? q->tok[q->head++] : NULL; }

/* mini-oclif findFlag: `--name` by long name, `-c...` by its second character */
static int find_flag(const struct flag_def *defs, int n, const char *arg, bool *is_long) {
  *is_long = !strncmp(arg, "--", 2);
  if (*is_long) {
    for (int i = 0; i < n; i++)
      if (!strcmp(arg + 2, defs[i].name)) return i;
    return -1;
  }
  if (arg[0] == '-' && arg[1])
    for (int i = 0; i < n; i++)
      if (defs[i].ch && defs[i].ch == arg[1]) return i;
  return -1;
}

struct state {
  const struct flag_def *defs;
  int n;
  struct queue *q;
  struct parsed_args *out;
  int current; /* the last option flag seen (greedy `multiple` collects bare words) */
};

/* 1 = a flag (consumed), 0 = not a flag we know, < 0 = usage error (Node renders it) */
static int parse_flag(struct state *s, const char *arg) {
  bool is_long;
  int i = find_flag(s->defs, s->n, arg, &is_long);
  if (i < 0) {
    const char *eq = strchr(arg, '=');
    if (!eq) return 0;
    /* --flag=value: value pushed back, the flag part parsed alone */
    char *flag = strndup(arg, (size_t)(eq - arg)); /* lives as long as the process: argv-like */
    if (!flag || q_push_front(s->q, eq + 1) < 0) return -1;
    int r = parse_flag(s, flag);
    if (r == 0) s->q->head++; /* not ours: drop the pushed value again */
    return r;
  }
  const struct flag_def *d = &s->defs[i];
  struct flag_val *fv = &s->out->flags[i];
  if (d->option) {
    if (!d->multiple && fv->count) return -1; /* "can only be specified once" */
    s->current = i;
    const char *value;
    if (is_long || strlen(arg) < 3) value = q_shift(s->q);
    else value = arg + (arg[2] == '=' ? 3 : 2);
    bool dummy;
    if (!value || find_flag(s->defs, s->n, value, &dummy) >= 0) return -1; /* "expects a value" */
    if (fv->count >= ARGS_MAX_VALUES) return -1;
    fv->values[fv->count++] = value;
  } else {
    fv->count++;
    if (!is_long && strlen(arg) > 2) {
      /* bundled short booleans: -fx → -f, then -x */
      char *restp;
      if (asprintf(&restp, "-%s", arg + 2) < 0 || q_push_front(s->q, restp) < 0) return -1;
    }
  }
  return 1;
}

int args_parse(const struct flag_def *defs, int n_defs, int argc, char **argv, struct parsed_args *out) {
  memset(out, 0, sizeof *out);
  if (n_defs > ARGS_MAX_FLAGS || argc > ARGS_MAX_VALUES) return -1;
  static struct queue q;
  q.head = ARGS_MAX_VALUES;
  q.tail = q.head;
  for (int i = 0; i < argc; i++) {
    /* bin/velo.js and src/fast.ts hand these to real oclif (help output), and Node decodes argv as UTF-8,
     * replacing invalid bytes: only valid UTF-8 is served here, so every string is the one Node would see */
    if (!utf8_valid(argv[i])) return -1;
    q.tok[q.tail++] = argv[i];
  }
  for (int i = 0; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) return -1;
    if (!strcmp(argv[i], "--json")) out->json = true;
  }
  struct state s = {.defs = defs, .n = n_defs, .q = &q, .out = out, .current = -1};
  bool parsing_flags = true;
  const char *tok;
  while ((tok = q_shift(&q))) {
    if (parsing_flags && tok[0] == '-' && tok[1]) {
      if (!strcmp(tok, "--")) {
        parsing_flags = false;
        continue;
      }
      int r = parse_flag(&s, tok);
      if (r < 0) return -1;
      if (r > 0) continue;
      if (!(tok[1] >= '0' && tok[1] <= '9')) return -1; /* Nonexistent flag */
    }
    if (out->n_args >= ARGS_MAX_VALUES) return -1;
    out->args[out->n_args++] = tok;
  }
  return 0;
}

/* `--` before the command (at cmd; -1: none), and IMAGE as --image */
static char **shape_finish(int argc, char **argv, int first, int cmd, enum args_shape shape, int *outc) {
  char **out = calloc((size_t)argc + 3, sizeof *out);
  if (!out) return *outc = argc, argv;
  int n = 0;
  for (int k = 0; k < argc; k++) {
    if (k == cmd) out[n++] = "--";
    if (k == first && shape == ARGS_SHAPE_IMAGE) out[n++] = "--image";
    out[n++] = argv[k];
  }
  *outc = n;
  return out;
}

char **args_docker_shape(const struct flag_def *defs, int n_defs, int argc, char **argv, enum args_shape shape, int *outc) {
  *outc = argc;
  int first = -1; /* NAME or IMAGE */
  for (int i = 0; i < argc; i++) {
    const char *tok = argv[i];
    if (!strcmp(tok, "--")) break; /* separated already */
    if (!strncmp(tok, "--", 2)) {
      if (!strchr(tok, '='))
        for (int k = 0; k < n_defs; k++)
          if (!strcmp(tok + 2, defs[k].name) && defs[k].option) i++;
      continue;
    }
    if (tok[0] == '-' && tok[1] && !(tok[1] >= '0' && tok[1] <= '9')) {
      /* a lone -x of an option takes the next word; in a bundle, the first option character takes the rest */
      size_t len = strlen(tok);
      for (size_t c = 1; c < len; c++) {
        int k = 0;
        while (k < n_defs && defs[k].ch != tok[c]) k++;
        if (k < n_defs && defs[k].option) {
          if (c == len - 1) i++;
          break;
        }
      }
      continue;
    }
    if (first < 0) {
      first = i;
      continue;
    }
    return shape_finish(argc, argv, first, i, shape, outc); /* the first word after NAME: the command */
  }
  return first < 0 ? argv : shape_finish(argc, argv, first, -1, shape, outc);
}
