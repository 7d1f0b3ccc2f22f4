/* Process titles as ps and top show them: "narwhal: master [NAME]". */
#ifndef NW_PROCTITLE_H
#define NW_PROCTITLE_H

#include "config/settings.h"

/* Once, first thing in main(): moves the environment out of the way so
   the title can use the memory argv and environ occupy.  Returns a copy of
   argv (to re-execute with) that survives later titles. */
char **nw__proctitle_init(int argc, char **argv);

/* Set the title (and the kernel's 15-byte name for top and pkill). */
void nw__proctitle_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The NAME in titles: proc_name, else default_proc_name (the APP_MODULE),
   with ".2" while this master is a re-executed one. */
const char *nw__proc_name(const nw_settings *s);

#endif
