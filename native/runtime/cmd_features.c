/* velo-runtime features: what this runtime supports, in the runtime-spec's features.md format. */
#include "rt.h"

/* Which of the spec's names does seccomp.c accept? Each is compiled in a one-rule profile. */
static json_object *seccomp_names(const char *const *names, const char *tmpl) {
  json_object *a = json_object_new_array();
  for (; *names; names++) {
    char buf[512];
    snprintf(buf, sizeof buf, tmpl, *names);
    json_object *p = json_tokener_parse(buf);
    struct oci_seccomp *s = NULL;
    struct velo_err e = {0};
    if (p && oci_seccomp_compile(p, &s, &e) == 0) json_object_array_add(a, json_object_new_string(*names));
    oci_seccomp_free(s);
    json_object_put(p);
  }
  return a;
}

static const char *const SPEC_ACTIONS[] = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
                                           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", NULL};
static const char *const SPEC_OPS[] = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", NULL};
static const char *const SPEC_ARCHS[] = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",
                                         "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
                                         "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
                                         "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", NULL};
static const char *const SPEC_FLAGS[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", NULL};

static json_object *strs(const char *const *v) {
  json_object *a = json_object_new_array();
  for (; *v; v++) json_object_array_add(a, json_object_new_string(*v));
  return a;
}

int cmd_features(int argc, char **argv) {
  (void)argv;
  if (argc) return rt_err("features: takes no arguments");
  json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersionMin", json_object_new_string("1.0.0"));
  json_object_object_add(o, "ociVersionMax", json_object_new_string("1.2.0"));
  static const char *const hooks[] = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL};
  json_object_object_add(o, "hooks", strs(hooks));
  json_object_object_add(o, "mountOptions", oci_mount_options_json());
  json_object *l = json_object_new_object();
  const char *ns[NS_COUNT + 1];
  for (int i = 0; i < NS_COUNT; i++) ns[i] = NS_NAMES[i];
  ns[NS_COUNT] = NULL;
  json_object_object_add(l, "namespaces", strs(ns));
  const char *caps[64];
  int n = 0;
  for (int c = 0; CAP_NAMES[c] && c <= cap_last(); c++) caps[n++] = CAP_NAMES[c];
  caps[n] = NULL;
  json_object_object_add(l, "capabilities", strs(caps));
  json_object *cg = json_object_new_object();
  json_object_object_add(cg, "v1", json_object_new_boolean(1));
  json_object_object_add(cg, "v2", json_object_new_boolean(1));
  json_object_object_add(cg, "systemd", json_object_new_boolean(0));
  json_object_object_add(cg, "systemdUser", json_object_new_boolean(0));
  json_object_object_add(l, "cgroup", cg);
  json_object *sc = json_object_new_object();
  json_object_object_add(sc, "enabled", json_object_new_boolean(1));
  json_object_object_add(sc, "actions", seccomp_names(SPEC_ACTIONS, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getpid\"],\"action\":\"%s\"}]}"));
  json_object_object_add(sc, "operators", seccomp_names(SPEC_OPS, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"%s\"}]}]}"));
  json_object_object_add(sc, "archs", seccomp_names(SPEC_ARCHS, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"%s\"]}"));
  json_object_object_add(sc, "knownFlags", strs(SPEC_FLAGS));
  json_object_object_add(sc, "supportedFlags", seccomp_names(SPEC_FLAGS, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"%s\"]}"));
  json_object_object_add(l, "seccomp", sc);
  json_object *aa = json_object_new_object();
  json_object_object_add(aa, "enabled", json_object_new_boolean(0));
  json_object_object_add(l, "apparmor", aa);
  json_object *se = json_object_new_object();
  json_object_object_add(se, "enabled", json_object_new_boolean(0));
  json_object_object_add(l, "selinux", se);
  /* idmapped mounts through a mount's uidMappings/gidMappings (the container's own mappings; not the idmap option) */
  json_object *mx = json_object_new_object(), *idm = json_object_new_object();
  json_object_object_add(idm, "enabled", json_object_new_boolean(1));
  json_object_object_add(mx, "idmap", idm);
  json_object_object_add(l, "mountExtensions", mx);
  json_object_object_add(o, "linux", l);
  json_object *ann = json_object_new_object();
  json_object_object_add(ann, "org.velo.runtime.version", json_object_new_string(RT_VERSION));
  json_object_object_add(o, "annotations", ann);
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
  return 0;
}
