/* Reading the settings from every source: the command line, the
   *_CMD_ARGS environment variables, and config files (Python or INI). */
#ifndef NW_CONFIG_FILES_H
#define NW_CONFIG_FILES_H

#include <stdio.h>

#include "config/settings.h"

/* All sources in Gunicorn's order (app/base.py load_config): the command
   line, then GUNICORN_CMD_ARGS and NARWHAL_CMD_ARGS, then the config file
   (-c from the command line, else from the environment variables, else
   ./narwhal.conf.py or ./gunicorn.conf.py), each stored at its own
   precedence; then hooks named in an INI file are imported, wsgi_app
   stands in for a missing APP_MODULE, and settings set but not wired yet
   are warned about.  Returns -1 to go on, or the exit code to leave with
   (0 after --help/--version, 1 for a bad value, 2 for a bad command
   line); the reason is on errout. */
int nw__config_load(nw_settings *s, int argc, char **argv, FILE *out,
                    FILE *errout);

/* One INI file into s (source FILE); the first error, with its file and
   line, goes to errout.  NW_OK or NW_ERROR. */
int nw__config_ini_load(nw_settings *s, const char *path, FILE *errout);

/* A Python config file (PATH, file:PATH) or module (python:MODULE), run
   by the interpreter the arbiter starts for it. NW_OK or NW_ERROR. */
int nw__config_py_load(nw_settings *s, const char *location, int argc,
                       char **argv, FILE *errout);

/* Import the hooks given as "module:callable" strings (from an INI file)
   and check their arity; starts Python in the arbiter only if there is
   one.  NW_OK or NW_ERROR. */
int nw__config_py_resolve(nw_settings *s, int argc, char **argv,
                          FILE *errout);

/* --check-config: import the app in the arbiter's interpreter (the
   process exits right after).  NW_OK or NW_ERROR (the reason logged). */
int nw__config_check_app(nw_settings *s, int argc, char **argv);

/* Warn (log) about settings that are set but have no effect yet. */
void nw__config_warn_unwired(const nw_settings *s);

#endif
