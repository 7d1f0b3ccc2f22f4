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

    /* ---- ABI 1.1: hooks (hook.h) ---- */

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
} nw_api;

/* True if the running core's table has the entry `field`. */
#define NW_API_HAS(api, field)                                                \
    ((api)->size >= offsetof(nw_api, field) + sizeof((api)->field))

#endif /* NARWHAL_API_H */
