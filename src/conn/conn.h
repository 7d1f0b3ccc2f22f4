/* A client connection: its socket, parser, response state and the Python
   objects of the request in flight.  One per connection slot, reused for
   every request and connection it serves.

   Two ways to drive one, sharing everything but the I/O:

   blocking (sync, and any class that calls api->serve_connection):
   nw__serve_connection reads, parses, calls the app, writes with writev /
   sendfile, and loops over keep-alive requests when the class keeps
   connections (NW_WORKER_KEEPALIVE); wsgi.input reads the socket on
   demand, answering 100 Continue on the first read.

   event (a non-blocking worker that owns the socket):
       nw__conn_open(c, fd, peer, len, listener)
       read into c->http.buf + c->http.len (nw__http_room bytes),
       nw__conn_parse_head(c)       until NW_HTTP_HEAD_DONE / FAILED
         FAILED: write nw__conn_refusal(c, ...) and close
       nw__conn_need_continue(c)    1: write NW_CONTINUE_LINE first
       nw__conn_spool_body(c)       after each read, until NW_OK
         NW_ERROR: write nw__conn_refusal(c, ...) and close
       nw__wsgi_call(c, app)        the body is in c->spool
       nw__wsgi_pull(c, &out)       each time the socket is writable;
                                    write out.iov, then out.file_* with
                                    sendfile; nw__out_release(&out)
       nw__wsgi_finish(c)
       nw__conn_keepalive(c) ? nw__conn_next(c) and parse the next head
                                   (pipelined bytes are already buffered)
                             : close (after reading off unread input)
       nw__wsgi_release(c), nw__conn_free(c) when the slot goes away
   conn_event.c runs this sequence as a state machine over a non-blocking
   socket for plugins (api->conn_*, nw__econn_*).
   write() inside the app queues its bytes for the next pulls instead of
   writing them (the blocking mode does that too while it pulls, so bytes
   written from inside a generator keep their place). */
#ifndef NW_CONN_H
#define NW_CONN_H

#include <Python.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <narwhal/hook.h>
#include <narwhal/worker.h>

#include "http/http.h"
#include "base/iplist.h"
#include "http/proxy.h"
#include "http/response.h"
#include "config/settings.h"
#include "conn/spool.h"

#define NW_OUT_IOV 64
#define NW_OUT_REFS 32

#define NW_CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"

/* The next bytes to write: iovecs into the head buffer, chunk frames and
   the app's bytes objects (kept alive in refs until written), then
   optionally a file segment for sendfile(), then more iovecs (a chunk's
   CRLF) after it. */
/* Header ids below this have their last value kept per connection. */
#define NW_CONN_HEADER_CACHE (NW_HDR_ACCEPT_CHARSET + 1)

/* The last environ of a connection slot, kept when the app neither kept a
   reference to it nor changed it (wsgi.c): the next request changes what
   differs in it instead of copying the template into a new dict and
   freeing that afterwards, which cost more than the rest of the environ.
   What it holds is known from here; the pointers are borrowed from the
   dict, which holds them while its version tag is unchanged. */
#define NW_ENV_MEMO_HEADERS 24
enum nw_env_slot {
    NW_ENV_METHOD,
    NW_ENV_RAW_URI,
    NW_ENV_PROTOCOL,
    NW_ENV_SCHEME,
    NW_ENV_SCRIPT_NAME,
    NW_ENV_PATH_INFO,
    NW_ENV_QUERY,
    NW_ENV_INPUT,
    NW_ENV_SLOTS
};
typedef struct nw_environ_memo {
    PyObject *env;        /* the kept environ (a reference), or NULL */
    const PyObject *tmpl; /* the template it was copied from */
    const PyObject *built; /* the environ this memo describes */
    uint64_t tag;         /* its version tag when the app got it */
    PyObject *value[NW_ENV_SLOTS];
    unsigned peer_shape;  /* which REMOTE_ and PROXY_ keys it has */
    unsigned nheaders;    /* > NW_ENV_MEMO_HEADERS: not known, not kept */
    PyObject *hkey[NW_ENV_MEMO_HEADERS];
    PyObject *hvalue[NW_ENV_MEMO_HEADERS];
} nw_environ_memo;

typedef struct nw_out {
    struct iovec iov[NW_OUT_IOV];
    int niov;
    int file_iov;       /* iov[0, file_iov) goes before the file segment */
    PyObject *refs[NW_OUT_REFS];
    int nrefs;
    char frames[NW_OUT_REFS][20];
    size_t bytes;
    int file_fd;        /* -1, or send [file_off, file_off + file_len) */
    off_t file_off;
    size_t file_len;
    unsigned last : 1;  /* nothing follows: the response is complete */
} nw_out;

enum nw_wsgi_phase {
    NW_WSGI_IDLE,
    NW_WSGI_BODY,   /* app called, iterating its result */
    NW_WSGI_FINISH, /* iterable exhausted, trailer to write */
    NW_WSGI_DONE,
};

enum nw_conn_mode {
    NW_CONN_BLOCKING,
    NW_CONN_EVENT,
};

/* What a worker precomputes from the settings for its connections. */
typedef struct nw_conn_config {
    nw_http_limits limits;
    nw_iplist forwarded_allow; /* forwarded_allow_ips */
    nw_iplist proxy_allow;     /* proxy_allow_ips */
    unsigned proxy_mode;       /* enum nw_proxy_mode */
    unsigned sendfile : 1;
    const char *tmp_dir;       /* tmp_upload_dir */
    size_t spool_memory;       /* bodies past this spill to a file */
    unsigned keepalive_ms;     /* idle wait for the next request */
    unsigned client_timeout_ms;
} nw_conn_config;

/* From the settings; NW_ERROR with one sentence naming the setting. */
int nw__conn_config_init(nw_conn_config *cc, const nw_settings *s,
                         char *err, size_t errlen);
void nw__conn_config_free(nw_conn_config *cc);

struct nw_conn {
    nw_worker *w;
    const nw_conn_config *cfg;
    int fd;
    const nw_listener *listener;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    unsigned mode;              /* enum nw_conn_mode */
    unsigned keepalive_class : 1; /* the class keeps connections open */
    unsigned proxy_checked : 1; /* the PROXY header was looked for */
    unsigned nrequests;         /* on this connection so far */
    nw_proxy_info proxy;

    nw_http http;
    nw_resp resp;
    nw_spool spool;             /* event mode: the body, read in full */

    /* the request in flight (GIL held to touch these) */
    enum nw_wsgi_phase phase;
    PyObject *environ;
    PyObject *result;   /* what the app returned */
    PyObject *iter;     /* iter(result), unless result is a list/tuple */
    Py_ssize_t index;   /* position in a list/tuple result */
    PyObject *pending;  /* first chunk, pulled before the head */
    PyObject *queued;   /* event mode: bytes given to write() (a list) */
    Py_ssize_t queued_pos;
    unsigned continue_sent : 1;
    unsigned failed : 1;     /* the response broke: close, write no more */
    unsigned use_file : 1;   /* the result goes out with sendfile() */
    unsigned pulling : 1;    /* inside nw__wsgi_pull */
    unsigned head_done : 1;  /* this request's head was parsed */
    unsigned req_active : 1; /* the app was called: its end is pending */
    unsigned cut_short : 1;  /* the app failed after write(): what it
                                wrote goes out, then the close */
    int error_status;        /* an error response replaces the app's */
    uint64_t t_start_us;     /* after pre_request, when a request's end
                                is observed (access log, hooks) */
    PyObject *py_req;        /* the Python hooks' req, pre to post */

    /* Python objects reused from request to request, unless the app kept
       a reference to one (then a fresh one is made) */
    PyObject *start_response;
    PyObject *write_fn;
    PyObject *input;
    /* REMOTE_ADDR and REMOTE_PORT, made at a connection's first request
       and reused by the next ones (stale: a new client since) */
    PyObject *remote_addr;
    PyObject *remote_port;
    unsigned remote_stale : 1;
    /* the last value of each of the first header ids (Host to
       Accept-Charset), reused while a client repeats it */
    PyObject *header_cache[NW_CONN_HEADER_CACHE];
    nw_environ_memo env_memo;

    /* the head being written */
    char *head;
    size_t head_cap;

    /* event mode (conn_event.c, behind api->conn_*) */
    unsigned estate;         /* NW_CONN_* */
    nw_out *out;             /* the pull being written (pooled) */
    int out_iov;             /* its next iovec */
    const char *raw;         /* canned bytes to write first: 100 Continue
                                or a refusal */
    size_t raw_len;
    unsigned raw_then;       /* the state once they are out */
    unsigned in_request : 1; /* the app was called: finish due */
    unsigned out_busy : 1;   /* out holds bytes not yet written */
    size_t lingered;         /* bytes read off while lingering */
};

void nw__conn_init(nw_conn *c, nw_worker *w, const nw_conn_config *cfg,
                   unsigned mode);
void nw__conn_free(nw_conn *c);

/* A new connection in this slot. */
void nw__conn_open(nw_conn *c, int fd, const struct sockaddr *peer,
                   socklen_t peerlen, const nw_listener *l);

/* Parse what is buffered: the PROXY header on a connection's first
   request, then the request head. */
enum nw_http_result nw__conn_parse_head(nw_conn *c);

/* The refusal of a request that failed to parse: logs "Invalid request
   from ip=..." and writes the canned error response (Connection: close)
   into out.  Returns its length. */
size_t nw__conn_refusal(nw_conn *c, char *out, size_t cap);

/* 1 when NW_CONTINUE_LINE must be written before the body is read (and
   marks it sent). */
int nw__conn_need_continue(nw_conn *c);

/* Event mode: move the buffered body bytes into the spool.  NW_OK: the
   whole body is there; NW_AGAIN: read more; NW_ERROR: refused (status in
   c->http.error_status). */
int nw__conn_spool_body(nw_conn *c);

/* May the response say Connection: keep-alive?  The class keeps
   connections, the request allows it (Connection, version, no upgrade, no
   gzip transfer coding), nothing broke, the worker is not stopping. */
int nw__conn_keepalive_wanted(const nw_conn *c);

/* After a response: may the connection serve another request? */
int nw__conn_keepalive(nw_conn *c);

/* Ready for the next request on the same connection. */
void nw__conn_next(nw_conn *c);

/* The body source behind wsgi.input: decode up to n body bytes into dst
   (blocking mode: reading the socket as needed; event mode: from the
   spool).  Returns the bytes read, 0 at the end of the body, NW_ERROR on a
   broken body (reason in err). */
ssize_t nw__conn_read_body(nw_conn *c, char *dst, size_t n,
                           const char **err);

/* Blocking I/O: write everything (GIL released while blocked when
   `gil_held`).  NW_OK or NW_ERROR (peer gone). */
int nw__conn_write_all(nw_conn *c, struct iovec *iov, int n, int gil_held);

/* Blocking I/O: write what a pull produced (iovecs, file segment). */
int nw__conn_write_out(nw_conn *c, nw_out *out, int gil_held);

/* The client's IP as text ("" for a unix socket); with proxy_aware, the
   PROXY protocol's source when there is one. */
const char *nw__conn_peer_ip(const nw_conn *c, int proxy_aware, char *buf,
                             size_t len);

/* The request as hooks see it (ip: room for the address text). */
void nw__conn_hook_request(const nw_conn *c, nw_hook_request *hr, char *ip,
                           size_t iplen);

/* Event mode: api->conn_new ... conn_free (conn_event.c). */
nw_conn *nw__econn_new(nw_worker *w);
int nw__econn_open(nw_conn *c, int fd, const struct sockaddr *peer,
                   socklen_t peerlen, const nw_listener *l);
int nw__econn_recv(nw_conn *c);
int nw__econn_call(nw_conn *c);
int nw__econn_send(nw_conn *c);
void nw__econn_close(nw_conn *c);
void nw__econn_free(nw_conn *c);

/* api->serve_connection */
int nw__serve_connection(nw_worker *w, int fd, const struct sockaddr *peer,
                         socklen_t peerlen, const nw_listener *l);

/* The status the client got: an error response the server made in place
   of the app's (before any of the app's headers went out), else the
   app's. */
static inline int
nw__conn_status(const nw_conn *c)
{
    return c->error_status != 0 && !c->resp.headers_sent ? c->error_status
                                                          : c->resp.status;
}

#endif
