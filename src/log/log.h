/* The logs: the error log in Gunicorn's format,
   "[2026-11-23 10:00:00 +0000] [PID] [INFO] message", the access log's
   output, capture_output, syslog, and Python's logging when a logconfig
   setting hands the logs to it. */
#ifndef NW_LOG_H
#define NW_LOG_H

#include <stddef.h>

#include <narwhal/api.h>

#include "config/settings.h"

void nw__log(int level, const char *fmt, ...) NW_PRINTF(2, 3);

/* nw__log with what the LOG hook point carries besides: NW_HOOK_F_*
   flags (an exception's traceback) and a metric from a Python hook's
   extra={...} (NULLs when none). */
void nw__log_ex(int level, unsigned flags, const char *metric,
                const char *metric_value, const char *metric_type,
                const char *fmt, ...) NW_PRINTF(6, 7);

/* Set the threshold; level names are Gunicorn's (debug ... critical). */
void nw__log_set_level(int level);
int nw__log_level(void);
int nw__log_level_from_name(const char *name);
const char *nw__log_level_name(int level);

/* Where the error log goes; -1 means stderr. */
void nw__log_set_fd(int fd);

/* (Re)open the errorlog setting's file ("-" or NULL: stderr), keeping the
   log's descriptor number.  NW_OK, or NW_ERROR (logged; the log keeps its
   previous file). */
int nw__log_reopen(const char *errorlog);

/* Every logging setting, in the arbiter: the level, the error log file
   (and capture_output onto it), the access log file, syslog, Python's
   logging for logconfig / logconfig_dict / logconfig_json (Python must
   be running then).  Workers inherit all of it.  At start a failure is
   NW_ERROR with one sentence in err; on HUP (`reload`) it is logged and
   what worked before stays. */
int nw__logs_configure(const nw_settings *s, int reload, char *err,
                       size_t errlen);

/* USR1: reopen every file (error log, access log, capture_output's
   descriptors, Python's FileHandlers), in this process. */
void nw__logs_reopen(void);

/* Is an access log wanted (Gunicorn's test: accesslog, a logconfig, or
   syslog without disable_redirect_access_to_syslog)? */
int nw__access_wanted(const nw_settings *s);

/* Write one access log line wherever access lines go: the file, syslog,
   Python's gunicorn.access logger.  len excludes the newline, which the
   caller puts at line[len]. */
void nw__access_write(const char *line, size_t len);

/* Before Py_FinalizeEx: the logs stop going through Python. */
void nw__logs_python_off(void);

/* syslog.c */
int nw__syslog_open(const nw_settings *s, char *err, size_t errlen);
void nw__syslog_close(void);
int nw__syslog_on(void);
/* one message: "<PRI>gunicorn.PREFIX.WHICH: [PID] text" */
void nw__syslog_send(int level, const char *which, const char *text,
                     size_t len);
/* "error" lines, and "access" lines unless redirect is off */
extern int nw__syslog_access;

/* pylog: the Python side (pymodule.c) */
int nw__pylog_setup(const nw_settings *s, int *level, char *err,
                    size_t errlen);
void nw__pylog_emit(int access, int level, const char *text, size_t len);
void nw__pylog_reopen(void);

#endif
