/* PEP 3333 in C: the environ, start_response, wsgi.input, file_wrapper,
   and the response as a producer pulled piece by piece. */
#ifndef NW_WSGI_H
#define NW_WSGI_H

#include <Python.h>

#include "conn.h"

/* Once per worker, with the GIL: types, interned keys, the template
   environ.  multithread/multiprocess go into every environ. */
int nw__wsgi_init(int multithread, int multiprocess);

/* Build the environ and call the app (GIL held).  NW_OK: pull the
   response.  NW_ERROR: nothing could be produced; an error response is in
   the head buffer (c->resp.headers_sent == 0 and c->failed set). */
int nw__wsgi_call(nw_conn *c, PyObject *app);

/* Fill out with the next pieces of the response (GIL held).  NW_OK with
   out->last when complete; NW_ERROR when the response broke after the head
   was sent (logged; the connection must close). */
int nw__wsgi_pull(nw_conn *c, nw_out *out);

/* Release what out holds (GIL held). */
void nw__out_release(nw_out *out);

/* Close the result (its close() is always called) and drop the request's
   Python objects (GIL held). */
void nw__wsgi_finish(nw_conn *c);

/* Types (wsgi_input.c) */
extern PyTypeObject nw__InputType;
PyObject *nw__input_new(nw_conn *c);
/* Ready for the next request of the same connection slot. */
void nw__input_reset(PyObject *input);
/* The app kept it past its request: reads now fail. */
void nw__input_detach(PyObject *input);

/* Log the current Python exception with its traceback; clears it. */
void nw__log_py_exception(int level, const char *fmt, ...) NW_PRINTF(2, 3);

#endif
