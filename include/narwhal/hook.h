/*
 * narwhal: the hook plugin ABI.
 *
 * A hook plugin is a shared object that exports two functions:
 *
 *   narwhal_hook_info()            returns the plugin's static descriptor
 *                                  (magic, ABI, size, build fingerprint,
 *                                  name); NW_HOOK_PLUGIN(...) writes it.
 *   narwhal_hook_entry(api, reg)   registers callbacks, one call of
 *                                  api->hook_add(reg, point, fn, data,
 *                                  order) per point; NW_OK, or NW_ERROR to
 *                                  refuse to load (say why with api->log).
 *
 * The arbiter loads the plugins named by hook_plugins (--hook-plugin) with
 * dlopen(RTLD_NOW | RTLD_LOCAL) before the first fork and checks the
 * descriptor exactly as it checks a worker class's, before it calls the
 * entry: a mismatch is refused with one line naming the file, the field,
 * both values and the fix.  Plugins are never unloaded; the workers
 * inherit them (and whatever the entry opened, e.g. a UDP socket).
 *
 *     static int
 *     on_ready(const nw_hook_ctx *ctx, void *data)
 *     {
 *         ctx->api->log(NW_LOG_INFO, "ready with %ld workers",
 *                       ctx->num_workers);
 *         return NW_OK;
 *     }
 *
 *     NW_HOOK_PLUGIN("mine", "what it does");
 *
 *     NW_EXPORT int
 *     narwhal_hook_entry(const nw_api *api, nw_hook_registry *reg)
 *     {
 *         return api->hook_add(reg, NW_HOOK_WHEN_READY, on_ready, NULL,
 *                              NW_HOOK_ORDER_MIDDLE);
 *     }
 *
 * The Python hooks of a config file (on_starting = ..., def post_fork(...))
 * are one built-in hook of the core, registered before any plugin at
 * NW_HOOK_ORDER_MIDDLE: they run at the same points, with the same
 * meanings.
 */
#ifndef NARWHAL_HOOK_H
#define NARWHAL_HOOK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.h"
#include "fingerprint.h"
#include "version.h"
#include "worker.h"

#define NW_HOOK_MAGIC 0x6e77686bu /* "nwhk" */

/* Names of the two functions a hook plugin exports. */
#define NW_HOOK_INFO_SYMBOL  "narwhal_hook_info"
#define NW_HOOK_ENTRY_SYMBOL "narwhal_hook_entry"

/*
 * Hook points: Gunicorn's server hooks (same call points, same processes,
 * see doc/hooks.md), then narwhal's own.  The numbers are ABI: new points
 * are appended.  Every callback of a point runs, in order, whatever the
 * others returned, except at PRE_REQUEST, where the first NW_ERROR stops
 * the point and the app is not called (the client gets a 500, as for an
 * exception in Gunicorn's pre_request).  A callback that returns
 * NW_ERROR anywhere else is logged and changes nothing: a hook never
 * stops the master or a worker.
 */
enum nw_hook_point {
    /* master, after the pid file, before the sockets are opened */
    NW_HOOK_ON_STARTING = 0,
    /* master, HUP: the new configuration is read and its sockets open,
       before its workers are started */
    NW_HOOK_ON_RELOAD = 1,
    /* master: sockets open, before the first workers are started */
    NW_HOOK_WHEN_READY = 2,
    /* master, just before a worker is forked (ctx->worker->pid is 0) */
    NW_HOOK_PRE_FORK = 3,
    /* worker, just after the fork, still as the master's user and group
       (as Gunicorn) */
    NW_HOOK_POST_FORK = 4,
    /* worker: the app is loaded, serving starts next */
    NW_HOOK_POST_WORKER_INIT = 5,
    /* worker: leaving on SIGINT or SIGQUIT (quick stop) */
    NW_HOOK_WORKER_INT = 6,
    /* worker: leaving on the master's SIGABRT (heartbeat timeout) */
    NW_HOOK_WORKER_ABORT = 7,
    /* forked child of the master, USR2: just before it executes the new
       master */
    NW_HOOK_PRE_EXEC = 8,
    /* worker, before the app is called (ctx->req); NW_ERROR: the app is
       not called, the client gets a 500 (Gunicorn: an exception in
       pre_request) */
    NW_HOOK_PRE_REQUEST = 9,
    /* worker, after the response was written and the app's result
       closed (ctx->req has the status, bytes sent and duration) */
    NW_HOOK_POST_REQUEST = 10,
    /* master: a worker was reaped (ctx->worker->status: waitpid's) */
    NW_HOOK_CHILD_EXIT = 11,
    /* worker, just before it exits; also in the master for a worker that
       vanished unreaped (kill gave ESRCH), as Gunicorn */
    NW_HOOK_WORKER_EXIT = 12,
    /* master: the number of workers was set (ctx->num_workers, and
       ctx->old_num_workers: -1 the first time, Python's None) */
    NW_HOOK_NWORKERS_CHANGED = 13,
    /* master, after the workers stopped, just before it exits */
    NW_HOOK_ON_EXIT = 14,

    /* narwhal's own points: C plugins only */

    /* worker: once per request answered, where the access log line is
       written (also for requests refused after their head was read);
       whether or not an access log is configured (statsd counts here) */
    NW_HOOK_ACCESS = 15,
    /* any process: a line for the error log, at any level, before the
       loglevel filter (ctx->level, ctx->message; ctx->metric when a
       Python hook logged with extra={"metric": ...}) */
    NW_HOOK_LOG = 16,
    /* master: every pass of its loop (at least once a second) */
    NW_HOOK_TICK = 17,
    /* master: shutting down (TERM, INT, QUIT or a halt), before the
       workers are told to stop */
    NW_HOOK_STOPPING = 18,

    NW_HOOK_POINT_COUNT = 19
};

/* Order among the callbacks of a point: lower runs first; equal orders
   run in registration order (the Python hooks first, then the plugins in
   hook_plugins order). */
#define NW_HOOK_ORDER_FIRST  (-100)
#define NW_HOOK_ORDER_MIDDLE 0
#define NW_HOOK_ORDER_LAST   100

/* nw_hook_worker.flags */
#define NW_HOOK_WORKER_BOOTED  0x01u /* serving: post_worker_init done */
#define NW_HOOK_WORKER_ABORTED 0x02u /* killed for a heartbeat timeout */
#define NW_HOOK_WORKER_ALIVE   0x04u /* not told to stop */

/* A worker process, as the master or the worker itself sees it. */
typedef struct nw_hook_worker {
    /* sizeof(nw_hook_worker) in the core */
    uint32_t size;
    /* NW_HOOK_WORKER_* */
    uint32_t flags;
    /* its pid (0 before the fork: pre_fork) and its master's */
    pid_t pid;
    pid_t ppid;
    /* 1-based number, unique while the master lives */
    unsigned number;
    /* spawn order: the oldest worker has the smallest age */
    uint64_t age;
    /* requests served so far */
    uint64_t requests;
    /* child_exit: the status waitpid() gave; -1 elsewhere */
    int status;
    void *reserved[4];
} nw_hook_worker;

/* nw_hook_request.flags */
#define NW_HOOK_REQ_REFUSED 0x01u /* refused by the server after its head
                                     was read: the app never saw it */
#define NW_HOOK_REQ_BROKEN  0x02u /* the response broke or the client
                                     left: the connection was closed */

/* A request, at PRE_REQUEST, POST_REQUEST and ACCESS.  Strings point into
   the connection's buffers: valid during the call only, not
   NUL-terminated. */
typedef struct nw_hook_request {
    /* sizeof(nw_hook_request) in the core */
    uint32_t size;
    /* NW_HOOK_REQ_* */
    uint32_t flags;
    /* the request line as sent: method, target, its path (undecoded) and
       query (after '?', before any '#') */
    const char *method;
    size_t method_len;
    const char *uri;
    size_t uri_len;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    unsigned http_major;
    unsigned http_minor;
    /* the client's address as the app sees it (REMOTE_ADDR before the
       app ran): "" for a unix socket; NUL-terminated */
    const char *remote_addr;
    /* request headers, read with api->hook_header(ctx, 0, i, ...) */
    unsigned nheaders;
    /* POST_REQUEST and ACCESS: the status sent (0 if none), body bytes
       sent (framing excluded) and the time from just after pre_request
       to the end of the response */
    int status;
    uint64_t sent;
    uint64_t duration_us;
    void *reserved[4];
} nw_hook_request;

/* nw_hook_ctx.flags */
#define NW_HOOK_F_RELOADING 0x01u /* a HUP's new workers are booting */
#define NW_HOOK_F_EXCEPTION 0x02u /* LOG: an exception with its traceback
                                     (Python's log.exception) */

/* What every callback gets.  Fields that do not apply to a point are 0 or
   NULL.  The struct grows only at its end: test ctx->size before reading
   a field newer than your headers. */
typedef struct nw_hook_ctx {
    /* sizeof(nw_hook_ctx) in the core */
    uint32_t size;
    /* NW_HOOK_* */
    uint32_t point;
    /* NW_HOOK_F_* */
    uint32_t flags;
    /* the core's function table */
    const nw_api *api;
    /* the settings that apply: the master's in force (pre_fork: the new
       worker's; on_reload: the new ones), the worker's own in a worker */
    const nw_config *cfg;

    /* the master: its pid; the master it replaces while it is a USR2
       ".2" master, else 0; the new master it started with USR2, else 0 */
    pid_t master_pid;
    pid_t old_master_pid;
    pid_t new_master_pid;
    /* the number of workers wanted; NWORKERS_CHANGED: the new value and
       the previous one (-1 the first time) */
    long num_workers;
    long old_num_workers;
    /* master points: worker processes running and not told to stop */
    unsigned nworkers;
    /* the listening sockets in force */
    unsigned nlisteners;
    const nw_listener *listeners;

    /* the worker the point is about (pre_fork, post_fork, child_exit,
       worker_exit, ...), or the worker running the hook; NULL at master
       points that concern no worker */
    const nw_hook_worker *worker;
    /* in a worker process: the worker itself (NULL in the master) */
    nw_worker *w;
    /* PRE_REQUEST, POST_REQUEST, ACCESS */
    const nw_hook_request *req;

    /* LOG: the level (NW_LOG_*), the line (NULL when it is below
       loglevel: not formatted), and a metric a Python hook attached
       with extra={"metric": NAME, "value": V, "mtype": "counter" |
       "gauge" | "histogram"} (NULL if none; the value as text) */
    int level;
    const char *message;
    const char *metric;
    const char *metric_value;
    const char *metric_type;

    /* the core's private state: do not touch */
    void *core;
    void *reserved[8];
} nw_hook_ctx;

/* Handed to narwhal_hook_entry; registrations go through api->hook_add. */
struct nw_hook_registry {
    /* sizeof(nw_hook_registry) in the core */
    uint32_t size;
    /* the plugin's file */
    const char *path;
    /* the settings at load time (read with api->config_*) */
    const nw_config *cfg;
    /* the core's private state: do not touch */
    void *core;
    void *reserved[4];
};

/* The descriptor narwhal_hook_info returns. */
typedef struct nw_hook_plugin {
    /* NW_HOOK_MAGIC */
    uint32_t magic;
    /* NW_ABI_MAJOR and NW_ABI_MINOR of the headers the plugin was built
       with */
    uint16_t abi_major;
    uint16_t abi_minor;
    /* sizeof(nw_hook_plugin) at the plugin's build */
    uint32_t size;
    /* NW_BUILD_FINGERPRINT */
    nw_build_fingerprint build;
    /* a short name for messages, and one line saying what it does */
    const char *name;
    const char *summary;
    /* room to grow: must be NULL */
    void *reserved[8];
} nw_hook_plugin;

typedef const nw_hook_plugin *(*nw_hook_info_fn)(void);
typedef int (*nw_hook_entry_fn)(const nw_api *api, nw_hook_registry *reg);

/* Defines narwhal_hook_info() returning this plugin's descriptor. */
#define NW_HOOK_PLUGIN(name_, summary_)                                       \
    NW_EXPORT const nw_hook_plugin *narwhal_hook_info(void);                  \
    NW_EXPORT const nw_hook_plugin *narwhal_hook_info(void)                   \
    {                                                                         \
        static const nw_hook_plugin info = {                                  \
            .magic = NW_HOOK_MAGIC,                                           \
            .abi_major = NW_ABI_MAJOR,                                        \
            .abi_minor = NW_ABI_MINOR,                                        \
            .size = sizeof(nw_hook_plugin),                                   \
            .build = NW_BUILD_FINGERPRINT,                                    \
            .name = (name_),                                                  \
            .summary = (summary_),                                            \
        };                                                                    \
        return &info;                                                         \
    }                                                                         \
    typedef int nw__hook_plugin_semicolon

NW_EXPORT int narwhal_hook_entry(const nw_api *api, nw_hook_registry *reg);

#endif /* NARWHAL_HOOK_H */
