/* A client connection: its socket, parser, response state and the Python
   objects of the request in flight.  One per connection slot, reused for
   every request and connection it serves. */
#ifndef NW_CONN_H
#define NW_CONN_H

#include <Python.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <narwhal/worker.h>

#include "http.h"
#include "response.h"

#define NW_OUT_IOV 64
#define NW_OUT_REFS 32

/* The next bytes to write: iovecs into the head buffer, chunk frames and
   the app's bytes objects (kept alive in refs until written). */
typedef struct nw_out {
    struct iovec iov[NW_OUT_IOV];
    int niov;
    PyObject *refs[NW_OUT_REFS];
    int nrefs;
    char frames[NW_OUT_REFS][20];
    size_t bytes;
    unsigned last : 1; /* nothing follows: the response is complete */
} nw_out;

enum nw_wsgi_phase {
    NW_WSGI_IDLE,
    NW_WSGI_BODY,   /* app called, iterating its result */
    NW_WSGI_FINISH, /* iterable exhausted, trailer to write */
    NW_WSGI_DONE,
};

typedef struct nw_conn {
    nw_worker *w;
    int fd;
    const nw_listener *listener;
    struct sockaddr_storage peer;
    socklen_t peerlen;

    nw_http http;
    nw_resp resp;

    /* the request in flight (GIL held to touch these) */
    enum nw_wsgi_phase phase;
    PyObject *environ;
    PyObject *result;   /* what the app returned */
    PyObject *iter;     /* iter(result), unless result is a list/tuple */
    Py_ssize_t index;   /* position in a list/tuple result */
    PyObject *pending;  /* first chunk, pulled before the head */
    PyObject *written;  /* bytes given to write(), not yet sent */
    unsigned continue_sent : 1;
    unsigned failed : 1;     /* the response broke: close, write no more */
    int error_status;        /* an error response replaces the app's */

    /* Python objects reused from request to request, unless the app kept
       a reference to one (then a fresh one is made) */
    PyObject *start_response;
    PyObject *write_fn;
    PyObject *input;

    /* the head being written */
    char *head;
    size_t head_cap;
} nw_conn;

void nw__conn_init(nw_conn *c, nw_worker *w, const nw_http_limits *limits);
void nw__conn_free(nw_conn *c);

/* Blocking I/O for the sync class: write everything (GIL released while
   blocked when `gil_held`).  NW_OK or NW_ERROR (peer gone). */
int nw__conn_write_all(nw_conn *c, struct iovec *iov, int n, int gil_held);

/* Read more raw bytes into the parser's buffer.  >0 bytes, 0 on EOF,
   NW_ERROR on error. */
ssize_t nw__conn_fill(nw_conn *c, int gil_held);

/* The blocking body source behind wsgi.input: decode up to n body bytes
   into dst, reading the socket as needed.  Returns the bytes read, 0 at
   the end of the body, NW_ERROR on a broken body (reason in err). */
ssize_t nw__conn_read_body(nw_conn *c, char *dst, size_t n,
                           const char **err);

/* api->serve_connection */
int nw__serve_connection(nw_worker *w, int fd, const struct sockaddr *peer,
                         socklen_t peerlen, const nw_listener *l);

#endif
