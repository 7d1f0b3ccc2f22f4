/* Worker classes written in Python (api->call_python, ABI 1.3). */
#ifndef NW_PYWORKER_H
#define NW_PYWORKER_H

#include <Python.h>

#include <narwhal/narwhal.h>

/* api->call_python: see narwhal/api.h. */
int nw__api_call_python(nw_worker *w, const char *source,
                        const char *filename, const char *func);

/* pyhooks.c: this worker's Python object, as its hooks get it, its
   attributes brought up to date (a new reference; NULL with an
   exception set). */
PyObject *nw__py_worker_self(void);

#endif
