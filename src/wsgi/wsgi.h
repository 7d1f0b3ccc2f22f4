/* PEP 3333 in C: the environ (wsgi.c), start_response, write,
   file_wrapper and the response as a producer pulled piece by piece
   (wsgi_response.c), wsgi.input (wsgi_input.c). */
#ifndef NW_WSGI_H
#define NW_WSGI_H

#include <Python.h>

#include "conn/conn.h"

/* Once per worker, with the GIL: types, interned keys, the template
   environ.  multithread/multiprocess go into every environ. */
int nw__wsgi_init(int multithread, int multiprocess);

/* Build the environ and call the app (GIL held).  NW_OK: pull the
   response.  NW_ERROR: the app failed before returning (logged); pulling
   gives the error response (c->error_status). */
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

/* Drop the Python objects a connection slot keeps between requests (GIL
   held), before nw__conn_free: an event class frees slots as connections
   close. */
void nw__wsgi_release(nw_conn *c);
/* The request's environ is no longer needed: kept for the slot's next
   request when it can be (see nw_environ_memo), else released. */
void nw__wsgi_environ_done(nw_conn *c);

/* The environ alone (GIL held): for tests and the fuzzer.  NULL with an
   exception set, or with c->error_status set when the request cannot be
   served (SCRIPT_NAME mismatch). */
PyObject *nw__wsgi_environ(nw_conn *c);

/* Log the current Python exception with its traceback; clears it. */
/* The pending Python exception's traceback as one string (a new
   reference; NULL if none or it could not be formatted); the exception is
   cleared either way. */
PyObject *nw__py_traceback_text(void);
void nw__log_py_exception(int level, const char *fmt, ...) NW_PRINTF(2, 3);

/* ---- shared by the wsgi*.c files ---- */

/* wsgi_response.c */
int nw__wsgi_response_init(void);
extern PyTypeObject nw__FileWrapperType;
PyObject *nw__start_response_new(nw_conn *c);
PyObject *nw__write_new(nw_conn *c);
/* The app kept it past its request: calls now fail. */
void nw__wsgi_callable_detach(PyObject *callable);
/* "GET /path" for log lines */
void nw__request_uri(const nw_conn *c, char *buf, size_t len);

/* The app raised SystemExit: the worker's quick stop (INT/QUIT) raises it
   in a busy app.  Logs it without a traceback, clears it and marks the
   connection to close without an answer; 1 if so, 0 for any other error. */
int nw__app_quit(nw_conn *c);

/* wsgi_input.c */
extern PyTypeObject nw__InputType;
PyObject *nw__input_new(nw_conn *c);
/* Ready for the next request of the same connection slot. */
void nw__input_reset(PyObject *input);
/* The app kept it past its request: reads now fail. */
void nw__input_detach(PyObject *input);

#endif
