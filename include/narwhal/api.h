/*
 * narwhal: what the core gives plugins.
 *
 * The core hands every plugin one const nw_api table when it calls the
 * plugin's entry function.  Plugins never bind to core symbols (the core is
 * built with -fvisibility=hidden); every service is a function pointer here.
 * The table is append-only: a plugin that wants an entry newer than the ABI
 * it declares tests NW_API_HAS(api, field) first.
 */
#ifndef NARWHAL_API_H
#define NARWHAL_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Return values on I/O paths (nginx's convention). */
#define NW_OK     0
#define NW_ERROR -1
#define NW_AGAIN -2

/* Log levels: the numbers of Python's logging module. */
#define NW_LOG_DEBUG    10
#define NW_LOG_INFO     20
#define NW_LOG_WARNING  30
#define NW_LOG_ERROR    40
#define NW_LOG_CRITICAL 50

/* What should_stop() answers. */
#define NW_RUN           0  /* keep serving */
#define NW_STOP_GRACEFUL 1  /* stop accepting, finish in-flight work, return */
#define NW_STOP_QUICK    2  /* return as soon as possible */

#if defined(__GNUC__)
#define NW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define NW_PRINTF(fmt, args)
#endif

typedef struct nw_worker nw_worker;
typedef struct nw_worker_class nw_worker_class;

/* Hook plugins (hook.h): the registry handed to narwhal_hook_entry, the
   context every callback gets, and a callback. */
typedef struct nw_hook_registry nw_hook_registry;
typedef struct nw_hook_ctx nw_hook_ctx;
typedef int (*nw_hook_fn)(const nw_hook_ctx *ctx, void *data);

/* The effective settings; opaque, read through the config_* entries. */
typedef struct nw_config nw_config;

/* One listening socket, bound by the arbiter and inherited by workers. */
typedef struct nw_listener {
    int         fd;      /* non-blocking listening socket */
    int         family;  /* AF_INET, AF_INET6 or AF_UNIX */
    const char *url;     /* as logged: "http://127.0.0.1:8000", "unix:/p" */
} nw_listener;

/* A client connection slot of an event-loop class (ABI 1.1): socket,
   parser, buffers and the request in flight.  Opaque; made by
   api->conn_new and reused for connection after connection. */
typedef struct nw_conn nw_conn;

/* What an event-mode connection waits for next: the result of
   api->conn_open, conn_recv, conn_call and conn_send (ABI 1.1). */
#define NW_CONN_CLOSE  0 /* finished: api->conn_close it */
#define NW_CONN_IDLE   1 /* kept alive between requests: wait until
                            readable (the keepalive timeout) */
#define NW_CONN_HEAD   2 /* a request head is due or arriving: wait until
                            readable (the header timeout, counted from the
                            first time the slot says HEAD) */
#define NW_CONN_BODY   3 /* its body is arriving: wait until readable (the
                            body timeout, counted from the last read) */
#define NW_CONN_READY  4 /* a whole request is read: api->conn_call */
#define NW_CONN_WRITE  5 /* output is pending: wait until writable, then
                            api->conn_send */
#define NW_CONN_LINGER 6 /* closing: the response is out, the client's
                            unread input is read off; wait until readable
                            (at most a couple of seconds), then conn_recv */

typedef struct nw_api {
    /* sizeof(nw_api) in the running core: entries at offsets below it
       exist. */
    uint32_t size;
    /* NW_ABI_MINOR of the running core. */
    uint32_t abi_minor;
    /* the core's version string, e.g. "0.1.0" */
    const char *version;

    /* Write one line to the error log in narwhal's format, if level is at
       or above the configured log level. */
    void (*log)(int level, const char *fmt, ...) NW_PRINTF(2, 3);

    /* Tell the arbiter this worker is alive.  Call it at least every
       w->heartbeat_interval_ms, or the arbiter kills the worker once the
       `timeout` setting has passed. */
    void (*heartbeat)(nw_worker *w);

    /* NW_RUN, NW_STOP_GRACEFUL or NW_STOP_QUICK.  Signals are caught by
       the core, which makes w->wakeup_fd readable; this call also acts on
       the signals that arrived since the last call (drains wakeup_fd,
       reopens logs on USR1, calls the class's on_signal). */
    int (*should_stop)(nw_worker *w);

    /* Settings by name (Gunicorn's names, e.g. "worker_connections").
       NW_OK, or NW_ERROR for an unknown name or a setting of another type.
       Strings stay valid for the life of the process. */
    int (*config_int)(const nw_config *cfg, const char *name, long long *out);
    int (*config_bool)(const nw_config *cfg, const char *name, int *out);
    int (*config_double)(const nw_config *cfg, const char *name,
                         double *out);
    int (*config_str)(const nw_config *cfg, const char *name,
                      const char **out);

    /* Serve one accepted client connection to the end, blocking: read and
       parse requests, call the WSGI app, write the responses, write the
       access log, close fd.  Takes the GIL only while Python runs.
       Returns the number of requests served, or NW_ERROR when the
       connection failed (already logged and closed). */
    int (*serve_connection)(nw_worker *w, int fd,
                            const struct sockaddr *peer, socklen_t peerlen,
                            const nw_listener *listener);

    /* ---- ABI 1.1 (2026-11-24): event-mode connections ----
       For classes that own their sockets and never block: accept, then
       api->conn_open; each time the socket is readable api->conn_recv;
       on NW_CONN_READY api->conn_call; on NW_CONN_WRITE api->conn_send
       when writable (try it at once: the socket usually is); on
       NW_CONN_CLOSE (or a timeout, or the worker stopping)
       api->conn_close.  The core reads and writes the socket itself
       (non-blocking recv, writev, sendfile), reads the whole body before
       the app runs (spooled to a file past 1 MiB, 413 past
       limit_request_body), answers refusals and 100 Continue, pulls the
       response only as the socket takes it, counts requests for
       max_requests and keeps Connection: keep-alive and pipelining
       right.  Entries marked GIL need the Python GIL held
       (api->gil_acquire); the others may be called with or without it.
       Test NW_API_HAS(api, conn_free) before using them. */

    /* Release the GIL, and take it back with the state gil_release
       returned, or NULL for the calling thread's own state.  run() is
       called without the GIL and must return without it; in between a
       class may hold it across its callbacks and release it only around
       its poll. */
    void *(*gil_release)(void);
    void (*gil_acquire)(void *state);

    /* A connection slot of worker w, ready for api->conn_open. */
    nw_conn *(*conn_new)(nw_worker *w);
    /* Serve an accepted socket (non-blocking) in slot c: sets TCP_NODELAY
       on TCP.  Returns NW_CONN_HEAD. */
    int (*conn_open)(nw_conn *c, int fd, const struct sockaddr *peer,
                     socklen_t peerlen, const nw_listener *listener);
    /* Readable: read what the socket holds and parse it.  Returns the
       next NW_CONN_* state. */
    int (*conn_recv)(nw_conn *c);
    /* GIL.  After NW_CONN_READY: call the WSGI app.  Returns
       NW_CONN_WRITE. */
    int (*conn_call)(nw_conn *c);
    /* GIL.  Writable: write the pending output, pulling more of the
       response as the socket takes it; at the end of a response the
       request is finished (its close() called) and the next pipelined
       request parsed.  Returns the next NW_CONN_* state (NW_CONN_WRITE
       also when it stopped to let other connections run). */
    int (*conn_send)(nw_conn *c);
    /* GIL.  End the connection: a response in flight is abandoned (its
       close() is called), the socket closed.  The slot can be opened
       again. */
    void (*conn_close)(nw_conn *c);
    /* GIL.  Free a closed slot. */
    void (*conn_free)(nw_conn *c);

    /* ---- ABI 1.2 (2026-11-24): hooks (hook.h) ---- */

    /* From narwhal_hook_entry: call fn(ctx, data) at `point` (NW_HOOK_*),
       in `order` (NW_HOOK_ORDER_*; lower first).  NW_OK, or NW_ERROR for
       a point this core does not have (a newer plugin can do without
       it) or a call made outside the entry. */
    int (*hook_add)(nw_hook_registry *reg, unsigned point, nw_hook_fn fn,
                    void *data, int order);

    /* The index-th header of the request (response = 0) or of the
       response (1) a request point is about: NW_OK with the name and value
       (not NUL-terminated; request names as sent, response names as the
       app gave them), or NW_ERROR past the last one. */
    int (*hook_header)(const nw_hook_ctx *ctx, int response, unsigned index,
                       const char **name, size_t *name_len,
                       const char **value, size_t *value_len);

    /* In the master: set the number of workers wanted, as Gunicorn's
       `server.num_workers = n` (nworkers_changed runs; the master starts
       or stops workers to match).  NW_OK, or NW_ERROR in a worker process
       or for n < 0. */
    int (*set_num_workers)(long n);

    /* ---- ABI 1.3 (2026-11-24): worker classes written in Python ---- */

    /* GIL.  Call the function `func` of the Python module made from
       `source` (run once, on the first call; `filename` names it in
       tracebacks) with this worker's Python object, the one its hooks
       get, as Gunicorn's Worker: wsgi (the app), sockets (the listeners,
       as socket objects of their own), cfg, log, pid, ppid, nr, alive,
       max_requests, plus notify() (the heartbeat), should_stop()
       (NW_RUN, NW_STOP_GRACEFUL or NW_STOP_QUICK: acts on the signals, as
       api->should_stop), handle_request() (counts a request toward
       max_requests), wakeup_fd and heartbeat_interval (seconds).  While
       it runs, INT and QUIT raise SystemExit in it (as in a Gunicorn
       worker), which ends the call with 0.  Returns what func returned
       (None is 0), or NW_ERROR when it raised (the traceback is in the
       error log).  Test NW_API_HAS(api, call_python) first. */
    int (*call_python)(nw_worker *w, const char *source,
                       const char *filename, const char *func);
} nw_api;

/* True if the running core's table has the entry `field`. */
#define NW_API_HAS(api, field)                                                \
    ((api)->size >= offsetof(nw_api, field) + sizeof((api)->field))

#endif /* NARWHAL_API_H */
