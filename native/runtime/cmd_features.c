/* velo-runtime features: what this runtime supports, in the runtime-spec's features.md format. */
#include "rt.h"

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
  json_object_object_add(o, "mountOptions", strs(OCI_MOUNT_OPTIONS));
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
  json_object_object_add(sc, "actions", strs(OCI_SECCOMP_ACTIONS));
  json_object_object_add(sc, "operators", strs(OCI_SECCOMP_OPS));
  json_object_object_add(sc, "archs", strs(OCI_SECCOMP_ARCHS));
  json_object_object_add(sc, "knownFlags", strs(OCI_SECCOMP_FLAGS));
  json_object_object_add(sc, "supportedFlags", strs(OCI_SECCOMP_FLAGS));
  json_object_object_add(l, "seccomp", sc);
  json_object *aa = json_object_new_object();
  json_object_object_add(aa, "enabled", json_object_new_boolean(0));
  json_object_object_add(l, "apparmor", aa);
  json_object *se = json_object_new_object();
  json_object_object_add(se, "enabled", json_object_new_boolean(0));
  json_object_object_add(l, "selinux", se);
  json_object_object_add(o, "linux", l);
  json_object *ann = json_object_new_object();
  json_object_object_add(ann, "org.velo.runtime.version", json_object_new_string(RT_VERSION));
  json_object_object_add(o, "annotations", ann);
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
  return 0;
}
