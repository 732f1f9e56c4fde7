#ifndef VELO_CAPS_H
#define VELO_CAPS_H
#include <stdint.h>
#include <sys/types.h>
#include "util.h"
/* Drop every capability outside KEEP from the bounding set (needs CAP_SETPCAP, so call it first). */
int caps_drop_bounding(uint64_t keep, struct velo_err *e);
/* Permitted = effective = KEEP (only what the process still has), inheritable and ambient empty. */
int caps_set(uint64_t keep, struct velo_err *e);
/* setgroups([]), setgid, setuid. */
int switch_user(uid_t uid, gid_t gid, struct velo_err *e);
#endif
