/* The embedded interpreter: start-up, fork protocol and app loading. */
#ifndef NW_PYTHON_H
#define NW_PYTHON_H

#include <Python.h>

#include "python/python_arbiter.h"
#include "config/settings.h"

/* Start CPython in this process if it is not running yet (signals left to
   narwhal) and put the working directory and the pythonpath setting at
   the front of sys.path.  NW_OK or NW_ERROR (logged). */
int nw__python_start(const nw_settings *s, int argc, char **argv);

/* sys.path as Gunicorn sets it: the working directory, with the
   pythonpath entries in front.  Applying it again moves entries rather
   than duplicating them. */
int nw__python_setup_path(const nw_settings *s);

/* In a worker: start CPython, or, when it came from the arbiter, only
   set sys.path again (the arbiter may have changed directory since). */
int nw__python_init(const nw_settings *s, int argc, char **argv);

/* Import the app named by spec.  NW_OK with *app set, or the exit code to
   leave with (NW_EXIT_APP_LOAD), the reason and traceback logged. */
int nw__python_load_app(const char *spec, PyObject **app);

/* preload_app: the app loaded in the arbiter before forking (the workers
   inherit it); NW_OK or the exit code.  nw__python_preloaded_app() is the
   app, or NULL without --preload (a borrowed reference). */
int nw__python_preload_app(const nw_settings *s, int argc, char **argv);
PyObject *nw__python_preloaded_app(void);

/* After nw__python_load_app failed in Python: a list of the files it was
   running (borrowed; NULL if none). */
PyObject *nw__python_failure_files(void);

#endif
