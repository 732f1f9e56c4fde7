/* The event journal, $VELO_HOME/events.log: one JSON object per line, appended by every velo call that changes
 * something (sandbox create/start/stop/die/rm, image, volume, gc), read by `velo events` (src/ops/events.ts).
 * This file is its only writer: Node's calls append through `velo __event` (sandbox_internal.c), so the format
 * and the size bound live here once. */
#ifndef VELO_FRONT_EVENTS_H
#define VELO_FRONT_EVENTS_H

/* Past this size the journal is renamed to events.log.1 (the one before is dropped): about 2 × this on disk. */
#define EVENTS_MAX_BYTES (1024 * 1024)

/* Append {"time","type","action","name","attrs":{k: v...}} as one write(2) of one line (O_APPEND: lines of
 * concurrent writers never interleave; a writer killed mid-call leaves a whole line or none). attrs are "k=v".
 * Best effort: a journal that cannot be written never fails the call that changed something. */
void event_emit(const char *home, const char *type, const char *action, const char *name, const char *const *attrs, int n_attrs);

#endif
