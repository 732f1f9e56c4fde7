/* What src/run/elf.ts does before `velo run` starts anything: find CMD as execvp would, and refuse a program
 * the shim cannot be preloaded into (static ELF, setuid/setgid run by someone else). */
#ifndef VELO_FRONT_LOADABLE_H
#define VELO_FRONT_LOADABLE_H

enum loadable { LOADABLE_OK, LOADABLE_STATIC, LOADABLE_SETUID };

/* resolveCommand(): 1 = found (*file malloc'd, absolute), 0 = not found, FRONT_FALLBACK (< 0) = a case whose
 * exact Node behaviour this does not reproduce (a relative PATH entry: Node would hand libuv a bare name). */
int front_resolve_command(const char *cmd, char **file);

/* checkLoadable(): *judged receives the file the verdict is about (CMD or its #! interpreter), malloc'd.
 * A placeholder is judged by its store object (velo_cas must name the store's cas/blake3).
 * FRONT_FALLBACK when the ELF header is one Node's reader would trip over. */
int front_check_loadable(const char *file, enum loadable *verdict, char **judged);

#endif
