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
} nw_api;

/* True if the running core's table has the entry `field`. */
#define NW_API_HAS(api, field)                                                \
    ((api)->size >= offsetof(nw_api, field) + sizeof((api)->field))

#endif /* NARWHAL_API_H */
