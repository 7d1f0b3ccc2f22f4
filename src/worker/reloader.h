/* --reload: restart a worker when the code it runs changes. */
#ifndef NW_RELOADER_H
#define NW_RELOADER_H

#include "config/settings.h"
#include "worker/worker.h"

/* In a worker with the app loaded and the GIL held: when s->reload is
   on, start watching.  NW_OK, or NW_ERROR (logged). */
int nw__reloader_start(nw_worker_core *core, const nw_settings *s);

#endif
