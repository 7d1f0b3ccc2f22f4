/* The error log: Gunicorn's format,
   "[2026-11-23 10:00:00 +0000] [PID] [INFO] message". */
#ifndef NW_LOG_H
#define NW_LOG_H

#include <narwhal/api.h>

void nw__log(int level, const char *fmt, ...) NW_PRINTF(2, 3);

/* Set the threshold; level names are Gunicorn's (debug ... critical). */
void nw__log_set_level(int level);
int nw__log_level(void);
int nw__log_level_from_name(const char *name);
const char *nw__log_level_name(int level);

/* Where the error log goes; -1 means stderr. */
void nw__log_set_fd(int fd);

/* (Re)open the errorlog setting's file ("-" or NULL: stderr), keeping the
   log's descriptor number; USR1 calls it so logrotate can move the file.
   NW_OK, or NW_ERROR (logged; the log keeps its previous file). */
int nw__log_reopen(const char *errorlog);

#endif
