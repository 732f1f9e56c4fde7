/* The shared libraries ld.so will load for an ELF file, found the way ld.so finds them, so that any of them
 * that is a placeholder can be made real first: ld.so opens DT_NEEDED libraries itself, where no preload
 * can see the open, and would map the placeholder's zeros. */
#ifndef VELO_ELFDEPS_H
#define VELO_ELFDEPS_H
#include <stddef.h>

/* Maps a directory name the program gave to the one the kernel should see (phantom mode), or NULL. */
typedef const char *(*velo_dir_map)(const char *dir, char *buf, size_t len);

/* For the ELF file at PATH (already real): materialize every placeholder among its DT_NEEDED libraries
 * and theirs, searched as ld.so does before its cache (DT_RPATH when there is no DT_RUNPATH, then
 * LD_LIBRARY_PATH (as given: the one the program will start with), then DT_RUNPATH; $ORIGIN expanded). Libraries that resolve elsewhere (the system
 * directories) are ld.so's business and not ours. Best effort: errors leave things as they were, and
 * ld.so then reports what it cannot load. Calls only through R (real.h). */
void velo_prepare_deps(const char *path, velo_dir_map map, const char *ld_library_path);

#endif
