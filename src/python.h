/* The embedded interpreter: start-up and app loading. */
#ifndef NW_PYTHON_H
#define NW_PYTHON_H

#include <Python.h>

#include "settings.h"

/* Start CPython (signals left to narwhal), put the working directory and
   the pythonpath setting at the front of sys.path.  NW_OK or NW_ERROR
   (logged). */
int nw__python_init(const nw_settings *s, int argc, char **argv);

/* Import the app named by spec.  NW_OK with *app set, or the exit code to
   leave with (NW_EXIT_APP_LOAD), the reason and traceback logged. */
int nw__python_load_app(const char *spec, PyObject **app);

#endif
