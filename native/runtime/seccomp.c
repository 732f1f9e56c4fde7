/* linux.seccomp: validated and compiled with libseccomp at `create`, before any side effect, into a BPF program
 * that the container's process loads just before execve.
 *
 * Semantics follow runc (the reference runtime) where the runtime-spec leaves room:
 * - a rule whose action equals the default action is a no-op and is skipped (libseccomp refuses it);
 * - a syscall name libseccomp does not know (newer kernel, other arch) is skipped;
 * - args: if no index appears twice, all conditions are AND'ed in one rule; if an index appears twice (e.g. two
 *   MASKED_EQ on the same flags word), each condition becomes a rule of its own, i.e. they are OR'ed;
 * - SCMP_ACT_TRACE without errnoRet passes EPERM to the tracer, as SCMP_ACT_ERRNO defaults to EPERM;
 * - when the default action denies and `architectures` is given, syscalls numbered above the highest one the
 *   profile names (per architecture) get ENOSYS instead of the default action: a profile written before a syscall
 *   existed then makes libc fall back (clone3 -> clone) instead of failing with EPERM.
 * The program is exported from libseccomp at compile time (so every libseccomp error is a create-time error) and
 * loaded with seccomp(2) directly: no allocation or libseccomp call is left for the child. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "runtime.h"

#define WHERE "linux.seccomp"

struct oci_seccomp {
  struct sock_filter *prog;
  unsigned short len;
  unsigned int flags; /* SECCOMP_FILTER_FLAG_* passed to seccomp(2) */
};

static void ctx_releasep(scmp_filter_ctx *c) {
  if (*c) seccomp_release(*c);
}
#define cleanup_ctx __attribute__((cleanup(ctx_releasep)))

/* ---- names from the runtime-spec */

struct arch_name {
  const char *name;
  uint32_t token; /* SCMP_ARCH_*; 0 when this libseccomp lacks it */
};
static const struct arch_name ARCHES[] = {
  {"SCMP_ARCH_X86", SCMP_ARCH_X86},
  {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
  {"SCMP_ARCH_X32", SCMP_ARCH_X32},
  {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
  {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
  {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
  {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},
  {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
  {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},
  {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
  {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32},
  {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
  {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},
  {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
  {"SCMP_ARCH_S390", SCMP_ARCH_S390},
  {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
  {"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},
  {"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
  {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
#ifdef SCMP_ARCH_LOONGARCH64
  {"SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64},
#else
  {"SCMP_ARCH_LOONGARCH64", 0},
#endif
#ifdef SCMP_ARCH_M68K
  {"SCMP_ARCH_M68K", SCMP_ARCH_M68K},
#endif
#ifdef SCMP_ARCH_SH
  {"SCMP_ARCH_SH", SCMP_ARCH_SH},
  {"SCMP_ARCH_SHEB", SCMP_ARCH_SHEB},
#endif
};

static const struct {
  const char *name;
  enum scmp_compare op;
} OPS[] = {
  {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
  {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
  {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

/* Is this seccomp(2) filter flag known to the running kernel? Probing with a NULL program has no side effect: a
 * known flag gets EFAULT (the program pointer is read last), an unknown one EINVAL. */
static bool kernel_has_flag(unsigned int flag) {
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, NULL) < 0 && errno == EFAULT;
}

/* Does the running kernel implement this return action? */
static bool kernel_has_action(uint32_t act) {
  uint32_t a = act & SECCOMP_RET_ACTION_FULL;
  return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &a) == 0;
}

/* An action name (+ its optional errnoRet) as libseccomp's action value. `errkey` names the errno field
 * ("errnoRet" or "defaultErrnoRet") for errors. */
static int parse_action(json_object *o, const char *where, const char *key, const char *errkey, uint32_t *out, struct velo_err *e) {
  const char *name;
  int r = cfg_str(o, key, where, &name, e);
  if (r < 0) return r;
  if (r == 1) return cfg_fail(e, where, key, "required");
  uint64_t ret = EPERM;
  int has_ret = cfg_u64(o, errkey, where, &ret, e);
  if (has_ret < 0) return -1;
  bool takes_ret = false;
  uint32_t act;
  if (!strcmp(name, "SCMP_ACT_ALLOW")) act = SCMP_ACT_ALLOW;
  else if (!strcmp(name, "SCMP_ACT_LOG")) act = SCMP_ACT_LOG;
  else if (!strcmp(name, "SCMP_ACT_TRAP")) act = SCMP_ACT_TRAP;
  else if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD")) act = SCMP_ACT_KILL_THREAD;
  else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS")) act = SCMP_ACT_KILL_PROCESS;
  else if (!strcmp(name, "SCMP_ACT_ERRNO")) {
    /* the kernel clamps anything above MAX_ERRNO (4095): refuse rather than return another errno than asked */
    if (ret > 4095) return cfg_fail(e, where, errkey, "%" PRIu64 " is not an errno (0..4095)", ret);
    act = SCMP_ACT_ERRNO((uint32_t)ret);
    takes_ret = true;
  } else if (!strcmp(name, "SCMP_ACT_TRACE")) {
    if (ret > 0xffff) return cfg_fail(e, where, errkey, "%" PRIu64 " does not fit the 16 bits a tracer receives", ret);
    act = SCMP_ACT_TRACE((uint32_t)ret);
    takes_ret = true;
  } else if (!strcmp(name, "SCMP_ACT_NOTIFY"))
    /* NOTIFY needs the listener fd handed to listenerPath with the container's state, which velo-runtime does
     * not implement: refuse rather than block the container's syscalls forever. */
    return cfg_fail(e, where, key, "SCMP_ACT_NOTIFY is not supported by velo-runtime (no seccomp listener support)");
  else
    return cfg_fail(e, where, key, "unknown action %s", name);
  if (has_ret == 0 && !takes_ret)
    return cfg_fail(e, where, errkey, "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not %s", name);
  if (!kernel_has_action(act)) return cfg_fail(e, where, key, "%s is not supported by this kernel", name);
  *out = act;
  return 0;
}

/* Validate an array of strings at where.key; *n its length. */
static int str_array(json_object *o, const char *where, const char *key, json_object **arr, size_t *n, struct velo_err *e) {
  int r = cfg_arr(o, key, where, arr, e);
  if (r < 0) return r;
  *n = r == 1 ? 0 : json_object_array_length(*arr);
  for (size_t i = 0; i < *n; i++) {
    json_object *v = json_object_array_get_idx(*arr, i);
    char k[64];
    snprintf(k, sizeof k, "%s[%zu]", key, i);
    if (!v || !json_object_is_type(v, json_type_string)) return cfg_fail(e, where, k, "expected a string");
    if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) return cfg_fail(e, where, k, "contains a NUL character");
  }
  return 0;
}

/* ---- the ENOSYS stub (see the top comment) */

struct arch_max {
  uint32_t audit;    /* AUDIT_ARCH_* the kernel reports in seccomp_data.arch */
  int max64, max32;  /* highest syscall number named, -1 if none; on x86_64, max32 is for x32 (bit 30 set) */
  bool has64, has32; /* x86_64: whether x86_64 resp. x32 is in the filter */
};

struct emitter {
  struct sock_filter *p;
  size_t n, cap;
  bool far; /* a jump did not fit in 8 bits */
};

static void emit(struct emitter *m, uint16_t code, uint32_t k, size_t jt_to, size_t jf_to) {
  /* targets are absolute indexes (only forward), turned into the relative offsets BPF wants */
  size_t at = m->n++;
  if (m->p && at < m->cap) {
    size_t jt = jt_to ? jt_to - at - 1 : 0, jf = jf_to ? jf_to - at - 1 : 0;
    if (jt > 255 || jf > 255) m->far = true;
    m->p[at] = (struct sock_filter)BPF_JUMP(code, k, (uint8_t)jt, (uint8_t)jf);
  }
}
#define NEXT(m) ((m)->n + 1)

/* The stub, given where each section starts (make_stub sizes them). Layout:
 *   ld arch; jeq arch_i -> section_i ...; ja filter; section_i...; ret ENOSYS; filter... */
static void stub(struct emitter *m, const struct arch_max *a, size_t na, const size_t *sec, size_t enosys) {
  size_t filter = enosys + 1;
  emit(m, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
  for (size_t i = 0; i < na; i++) emit(m, BPF_JMP | BPF_JEQ | BPF_K, a[i].audit, sec[i], NEXT(m));
  emit(m, BPF_JMP | BPF_JA, (uint32_t)(filter - m->n - 1), 0, 0);
  for (size_t i = 0; i < na; i++) {
    emit(m, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
    if (a[i].audit == AUDIT_ARCH_X86_64) {
      /* x86_64 and x32 share the audit arch; x32 numbers have bit 30 set. A mode absent from the filter is left
       * to libseccomp (it gets the bad-arch action). */
      size_t x32 = m->n + 2; /* after the jset and the x86_64 check */
      emit(m, BPF_JMP | BPF_JSET | BPF_K, __X32_SYSCALL_BIT, a[i].has32 ? x32 : filter, NEXT(m));
      if (a[i].has64) emit(m, BPF_JMP | BPF_JGT | BPF_K, (uint32_t)a[i].max64, enosys, filter);
      else emit(m, BPF_JMP | BPF_JA, (uint32_t)(filter - m->n - 1), 0, 0);
      if (a[i].has32) emit(m, BPF_JMP | BPF_JGT | BPF_K, (uint32_t)a[i].max32, enosys, filter);
      else emit(m, BPF_JMP | BPF_JA, (uint32_t)(filter - m->n - 1), 0, 0);
      continue;
    }
    if (a[i].audit == AUDIT_ARCH_S390 || a[i].audit == AUDIT_ARCH_S390X)
      /* s390 multiplexes unknown large syscall numbers through syscall 0 */
      emit(m, BPF_JMP | BPF_JEQ | BPF_K, 0, enosys, NEXT(m));
    emit(m, BPF_JMP | BPF_JGT | BPF_K, (uint32_t)a[i].max64, enosys, filter);
  }
  emit(m, BPF_RET | BPF_K, SCMP_ACT_ERRNO(ENOSYS), 0, 0);
}

static int make_stub(const struct arch_max *a, size_t na, struct sock_filter **out, size_t *n, struct velo_err *e) {
  /* pass 1: section starts */
  size_t sec[32];
  struct emitter m = {0};
  emit(&m, 0, 0, 0, 0);
  m.n += na + 1;
  for (size_t i = 0; i < na; i++) {
    sec[i] = m.n;
    m.n += a[i].audit == AUDIT_ARCH_X86_64 ? 4 : a[i].audit == AUDIT_ARCH_S390 || a[i].audit == AUDIT_ARCH_S390X ? 3 : 2;
  }
  size_t enosys = m.n;
  struct emitter w = {.p = calloc(enosys + 1, sizeof *w.p), .cap = enosys + 1};
  if (!w.p) return VELO_FAIL_ERRNO(e, "seccomp: allocating the filter");
  stub(&w, a, na, sec, enosys);
  if (w.n != enosys + 1 || w.far) {
    free(w.p);
    return velo_fail(e, 0, "seccomp: internal error laying out the ENOSYS stub");
  }
  *out = w.p;
  *n = w.n;
  return 0;
}

/* Highest syscall number the profile names, per architecture of `architectures` (runc's rule: only those, and
 * only numbers libseccomp knows for that arch; pseudo numbers are negative). */
static int arch_maxima(json_object *syscalls, const uint32_t *tokens, size_t nt, struct arch_max *a, size_t *na) {
  *na = 0;
  for (size_t t = 0; t < nt; t++) {
    uint32_t tok = tokens[t];
    bool x32 = tok == SCMP_ARCH_X32;
    uint32_t audit = x32 ? AUDIT_ARCH_X86_64 : tok;
    int max = -1;
    size_t ns = syscalls ? json_object_array_length(syscalls) : 0;
    for (size_t i = 0; i < ns; i++) {
      json_object *names = cfg_get(json_object_array_get_idx(syscalls, i), "names");
      for (size_t j = 0; names && j < json_object_array_length(names); j++) {
        int nr = seccomp_syscall_resolve_name_arch(tok, json_object_get_string(json_object_array_get_idx(names, j)));
        if (nr > max) max = nr;
      }
    }
    if (max <= 0) continue; /* nothing known for this arch: leave it to the filter */
    struct arch_max *m = NULL;
    for (size_t k = 0; k < *na; k++)
      if (a[k].audit == audit) m = &a[k];
    if (!m) {
      m = &a[(*na)++];
      *m = (struct arch_max){.audit = audit, .max64 = -1, .max32 = -1};
    }
    if (x32) m->has32 = true, m->max32 = max;
    else m->has64 = true, m->max64 = max;
  }
  return 0;
}

/* ---- compile */

static int add_rule(scmp_filter_ctx ctx, uint32_t act, int nr, const struct scmp_arg_cmp *c, size_t nc, bool same_index,
                    const char *where, const char *name, struct velo_err *e) {
  int r;
  if (nc == 0 || !same_index) {
    r = seccomp_rule_add_array(ctx, act, nr, (unsigned)nc, c);
  } else {
    r = 0;
    for (size_t i = 0; i < nc && r == 0; i++) r = seccomp_rule_add_array(ctx, act, nr, 1, &c[i]);
  }
  if (r < 0) return cfg_fail(e, where, "names", "libseccomp refused the rule for %s: %s", name, strerror(-r));
  return 0;
}

static int parse_args(json_object *sc, const char *where, struct scmp_arg_cmp *c, size_t *nc, bool *same_index, struct velo_err *e) {
  json_object *args;
  int r = cfg_arr(sc, "args", where, &args, e);
  if (r < 0) return r;
  *nc = 0;
  *same_index = false;
  if (r == 1) return 0;
  size_t n = json_object_array_length(args);
  /* at most one condition per argument makes sense AND'ed; more only OR'ed, and then 6 per index suffice */
  if (n > 36) return cfg_fail(e, where, "args", "%zu conditions: too many", n);
  unsigned seen = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *a = json_object_array_get_idx(args, i);
    char w[128];
    snprintf(w, sizeof w, "%s.args[%zu]", where, i);
    static const char *const keys[] = {"index", "value", "valueTwo", "op", NULL};
    if (!a || !json_object_is_type(a, json_type_object)) return cfg_fail(e, w, NULL, "expected an object");
    if (cfg_only_keys(a, w, keys, e) < 0) return -1;
    uint64_t index, value = 0, two = 0;
    const char *op;
    if ((r = cfg_u64(a, "index", w, &index, e)) < 0) return r;
    if (r == 1) return cfg_fail(e, w, "index", "required");
    if (index > 5) return cfg_fail(e, w, "index", "%" PRIu64 " is not a syscall argument (0..5)", index);
    if ((r = cfg_u64(a, "value", w, &value, e)) < 0) return r;
    if (r == 1) return cfg_fail(e, w, "value", "required");
    if (cfg_u64(a, "valueTwo", w, &two, e) < 0) return -1;
    if ((r = cfg_str(a, "op", w, &op, e)) < 0) return r;
    if (r == 1) return cfg_fail(e, w, "op", "required");
    size_t k = 0;
    while (k < sizeof OPS / sizeof *OPS && strcmp(OPS[k].name, op)) k++;
    if (k == sizeof OPS / sizeof *OPS) return cfg_fail(e, w, "op", "unknown operator %s", op);
    if (seen & (1u << index)) *same_index = true;
    seen |= 1u << index;
    /* MASKED_EQ: the spec's value is the mask and valueTwo the expected result, as libseccomp's datum_a/datum_b */
    c[(*nc)++] = (struct scmp_arg_cmp){.arg = (unsigned)index, .op = OPS[k].op, .datum_a = value, .datum_b = two};
  }
  return 0;
}

int oci_seccomp_compile(json_object *seccomp, struct oci_seccomp **out, struct velo_err *e) {
  *out = NULL;
  if (!seccomp) return 0;
  static const char *const keys[] = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls", NULL};
  if (cfg_only_keys(seccomp, WHERE, keys, e) < 0) return -1;

  /* listenerPath only serves SCMP_ACT_NOTIFY, which velo-runtime refuses: say so instead of ignoring it */
  if (cfg_get(seccomp, "listenerPath")) return cfg_fail(e, WHERE, "listenerPath", "not supported by velo-runtime (no seccomp listener support)");
  if (cfg_get(seccomp, "listenerMetadata")) return cfg_fail(e, WHERE, "listenerMetadata", "not supported by velo-runtime (no seccomp listener support)");

  uint32_t def;
  if (parse_action(seccomp, WHERE, "defaultAction", "defaultErrnoRet", &def, e) < 0) return -1;
  cleanup_ctx scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx) return velo_fail(e, 0, "seccomp: libseccomp could not create a filter");
  /* libseccomp's no_new_privs attribute is moot: oci_seccomp_load loads the exported program itself, and
   * no_new_privs stays process.noNewPrivileges' business */
  int r;

  /* architectures */
  json_object *arr;
  size_t n;
  if (str_array(seccomp, WHERE, "architectures", &arr, &n, e) < 0) return -1;
  uint32_t tokens[64];
  size_t nt = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = json_object_get_string(json_object_array_get_idx(arr, i));
    char k[48];
    snprintf(k, sizeof k, "architectures[%zu]", i);
    size_t a = 0;
    while (a < sizeof ARCHES / sizeof *ARCHES && strcmp(ARCHES[a].name, name)) a++;
    if (a == sizeof ARCHES / sizeof *ARCHES) return cfg_fail(e, WHERE, k, "unknown architecture %s", name);
    if (!ARCHES[a].token) return cfg_fail(e, WHERE, k, "%s is not supported by this libseccomp", name);
    r = seccomp_arch_add(ctx, ARCHES[a].token);
    if (r < 0 && r != -EEXIST) return cfg_fail(e, WHERE, k, "libseccomp cannot add %s to this filter: %s", name, strerror(-r));
    bool dup = false;
    for (size_t t = 0; t < nt; t++) dup |= tokens[t] == ARCHES[a].token;
    if (!dup && nt < sizeof tokens / sizeof *tokens) tokens[nt++] = ARCHES[a].token;
  }

  /* flags: given to seccomp(2) at load; checked against the kernel now */
  unsigned int flags = 0;
  if (str_array(seccomp, WHERE, "flags", &arr, &n, e) < 0) return -1;
  for (size_t i = 0; i < n; i++) {
    const char *name = json_object_get_string(json_object_array_get_idx(arr, i));
    char k[48];
    snprintf(k, sizeof k, "flags[%zu]", i);
    unsigned int f;
    if (!strcmp(name, "SECCOMP_FILTER_FLAG_TSYNC")) f = SECCOMP_FILTER_FLAG_TSYNC;
    else if (!strcmp(name, "SECCOMP_FILTER_FLAG_LOG")) f = SECCOMP_FILTER_FLAG_LOG;
    else if (!strcmp(name, "SECCOMP_FILTER_FLAG_SPEC_ALLOW")) f = SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    else if (!strcmp(name, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"))
      /* only changes how a NOTIFY listener's target waits; without listener support it cannot be honoured */
      return cfg_fail(e, WHERE, k, "%s is not supported by velo-runtime (it needs a seccomp listener)", name);
    else
      return cfg_fail(e, WHERE, k, "unknown flag %s", name);
    if (!kernel_has_flag(f)) return cfg_fail(e, WHERE, k, "%s is not supported by this kernel", name);
    flags |= f;
  }

  /* syscalls */
  json_object *syscalls;
  if ((r = cfg_arr(seccomp, "syscalls", WHERE, &syscalls, e)) < 0) return r;
  size_t ns = r == 1 ? 0 : json_object_array_length(syscalls), rules = 0;
  for (size_t i = 0; i < ns; i++) {
    json_object *sc = json_object_array_get_idx(syscalls, i);
    char w[96];
    snprintf(w, sizeof w, WHERE ".syscalls[%zu]", i);
    static const char *const skeys[] = {"names", "action", "errnoRet", "args", NULL};
    if (!sc || !json_object_is_type(sc, json_type_object)) return cfg_fail(e, w, NULL, "expected an object");
    if (cfg_only_keys(sc, w, skeys, e) < 0) return -1;
    json_object *names;
    size_t nn;
    if (str_array(sc, w, "names", &names, &nn, e) < 0) return -1;
    if (nn == 0) return cfg_fail(e, w, "names", "required (a non-empty array of syscall names)");
    for (size_t j = 0; j < nn; j++)
      if (!*json_object_get_string(json_object_array_get_idx(names, j))) {
        char k[48];
        snprintf(k, sizeof k, "names[%zu]", j);
        return cfg_fail(e, w, k, "empty syscall name");
      }
    uint32_t act;
    if (parse_action(sc, w, "action", "errnoRet", &act, e) < 0) return -1;
    struct scmp_arg_cmp c[36];
    size_t nc;
    bool same_index;
    if (parse_args(sc, w, c, &nc, &same_index, e) < 0) return -1;
    if (act == def) continue; /* a no-op, and libseccomp refuses it */
    for (size_t j = 0; j < nn; j++) {
      const char *name = json_object_get_string(json_object_array_get_idx(names, j));
      int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR) continue; /* unknown to libseccomp: a newer kernel's or another arch's */
      if (add_rule(ctx, act, nr, c, nc, same_index, w, name, e) < 0) return -1;
      rules++;
    }
  }
  /* libseccomp's binary-tree layout keeps long allow-lists fast (it misbehaves with no rules, hence the bound) */
  if (rules > 32 && (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
    return velo_fail(e, -r, "seccomp: setting the filter's optimization level");

  /* Export the program now, so that any libseccomp failure is a create-time error. */
  cleanup_fd int mfd = memfd_create("velo-seccomp", MFD_CLOEXEC);
  if (mfd < 0) return VELO_FAIL_ERRNO(e, "seccomp: memfd_create");
  if ((r = seccomp_export_bpf(ctx, mfd)) < 0) return velo_fail(e, -r, "seccomp: libseccomp could not generate the filter");
  off_t size = lseek(mfd, 0, SEEK_END);
  if (size < 0) return VELO_FAIL_ERRNO(e, "seccomp: reading the generated filter");
  if (size == 0 || size % sizeof(struct sock_filter)) return velo_fail(e, 0, "seccomp: libseccomp generated a malformed filter (%lld bytes)", (long long)size);
  size_t nprog = (size_t)size / sizeof(struct sock_filter);

  /* the ENOSYS stub, only in front of a filter that denies by default */
  struct sock_filter *head = NULL;
  size_t nhead = 0;
  bool permissive = def == SCMP_ACT_ALLOW || def == SCMP_ACT_LOG || (def & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_TRACE;
  if (!permissive && nt) {
    struct arch_max am[64];
    size_t na;
    arch_maxima(syscalls, tokens, nt, am, &na);
    if (na && make_stub(am, na, &head, &nhead, e) < 0) return -1;
  }
  if (nhead + nprog > BPF_MAXINSNS) {
    free(head);
    return cfg_fail(e, WHERE, NULL, "the compiled filter has %zu instructions, more than the kernel's %d", nhead + nprog, BPF_MAXINSNS);
  }
  struct oci_seccomp *s = calloc(1, sizeof *s);
  if (s) s->prog = calloc(nhead + nprog, sizeof *s->prog);
  if (!s || !s->prog) {
    free(head);
    free(s);
    return VELO_FAIL_ERRNO(e, "seccomp: allocating the filter");
  }
  if (nhead) memcpy(s->prog, head, nhead * sizeof *head);
  free(head);
  if (pread(mfd, s->prog + nhead, nprog * sizeof *s->prog, 0) != (ssize_t)(nprog * sizeof *s->prog)) {
    int err = errno;
    oci_seccomp_free(s);
    return velo_fail(e, err, "seccomp: reading the generated filter");
  }
  s->len = (unsigned short)(nhead + nprog);
  s->flags = flags;
  *out = s;
  return 0;
}

int oci_seccomp_load(struct oci_seccomp *s, struct velo_err *e) {
  if (!s) return 0;
  struct sock_fprog fprog = {.len = s->len, .filter = s->prog};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &fprog) < 0) {
    if (errno == EACCES)
      return velo_fail(e, EACCES, "seccomp: loading the filter needs process.noNewPrivileges or CAP_SYS_ADMIN");
    return VELO_FAIL_ERRNO(e, "seccomp: loading the filter");
  }
  return 0;
}

/* "VSC1", flags, length, instructions: the compiled program as it is kept in the state dir */
struct saved_header {
  char magic[4];
  uint32_t flags, len;
};

int oci_seccomp_bytes(const struct oci_seccomp *s, void **buf, size_t *n) {
  struct saved_header h = {{'V', 'S', 'C', '1'}, s->flags, s->len};
  *n = sizeof h + (size_t)s->len * sizeof *s->prog;
  char *b = malloc(*n);
  if (!b) return -1;
  memcpy(b, &h, sizeof h);
  memcpy(b + sizeof h, s->prog, (size_t)s->len * sizeof *s->prog);
  *buf = b;
  return 0;
}

int oci_seccomp_from_bytes(const void *buf, size_t n, struct oci_seccomp **out, struct velo_err *e) {
  struct saved_header h;
  if (n < sizeof h) return velo_fail(e, 0, "seccomp: the saved filter is damaged");
  memcpy(&h, buf, sizeof h);
  if (memcmp(h.magic, "VSC1", 4) || !h.len || h.len > BPF_MAXINSNS || n != sizeof h + (size_t)h.len * sizeof(struct sock_filter))
    return velo_fail(e, 0, "seccomp: the saved filter is damaged");
  struct oci_seccomp *s = calloc(1, sizeof *s);
  if (!s || !(s->prog = malloc((size_t)h.len * sizeof *s->prog))) return free(s), velo_fail(e, ENOMEM, "seccomp");
  memcpy(s->prog, (const char *)buf + sizeof h, (size_t)h.len * sizeof *s->prog);
  s->len = (unsigned short)h.len;
  s->flags = h.flags;
  *out = s;
  return 0;
}

void oci_seccomp_free(struct oci_seccomp *s) {
  if (!s) return;
  free(s->prog);
  free(s);
}
