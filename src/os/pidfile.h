/* The pid file (-p/--pid): Gunicorn's pidfile.py. */
#ifndef NW_PIDFILE_H
#define NW_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct nw_pidfile {
    char *path; /* NULL: no pid file */
    pid_t pid;  /* what was written */
} nw_pidfile;

/* Write pid to path atomically (a temporary file renamed over it, mode
   0644).  A file naming another live process is refused, as Gunicorn
   does.  NW_OK, or NW_ERROR with one sentence in err. */
int nw__pidfile_create(nw_pidfile *pf, const char *path, pid_t pid,
                       char *err, size_t errlen);

/* Move to another path (the ".2" file of a re-executed master becomes the
   real one when it is promoted). */
int nw__pidfile_rename(nw_pidfile *pf, const char *path, char *err,
                       size_t errlen);

/* Remove it, but only if it still holds our pid. */
void nw__pidfile_unlink(nw_pidfile *pf);

#endif
