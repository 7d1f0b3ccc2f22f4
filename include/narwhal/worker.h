/*
 * narwhal: the worker-class plugin ABI.
 *
 * A worker plugin is a shared object exporting exactly one function,
 * narwhal_worker_entry, which returns a static nw_worker_class.  The arbiter
 * dlopens the plugin (RTLD_NOW | RTLD_LOCAL) before forking, checks the
 * descriptor (magic, ABI major and minor, size, build fingerprint) and
 * refuses a mismatch with one line naming the file, the field, both values
 * and the fix.
 *
 *     static const nw_worker_class my_class = {
 *         NW_WORKER_CLASS_HEADER,
 *         .name = "mine", .summary = "what it does",
 *         .instance_size = sizeof(struct my_worker),
 *         .run = my_run,
 *     };
 *     NW_EXPORT const nw_worker_class *
 *     narwhal_worker_entry(const nw_api *api) { return &my_class; }
 */
#ifndef NARWHAL_WORKER_H
#define NARWHAL_WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.h"
#include "fingerprint.h"
#include "version.h"

#define NW_WORKER_MAGIC 0x6e77776bu /* "nwwk" */

/* Name of the one symbol a worker plugin exports. */
#define NW_WORKER_ENTRY_SYMBOL "narwhal_worker_entry"

#if defined(__GNUC__)
#define NW_EXPORT __attribute__((visibility("default")))
#else
#define NW_EXPORT
#endif

/* nw_worker_class.flags */
#define NW_WORKER_THREADED  0x01u /* requests run on several threads:
                                     wsgi.multithread is True */
#define NW_WORKER_ASYNC     0x02u /* many connections per thread */
#define NW_WORKER_KEEPALIVE 0x04u /* keeps client connections alive */

/* The state of one worker process.  The core allocates instance_size bytes
   (at least sizeof(nw_worker)), so a plugin can extend it:
       struct my_worker { nw_worker base; int my_state; };
   Fields are appended only by taking a reserved slot, so the size never
   changes within an ABI major. */
struct nw_worker {
    /* the core's function table */
    const nw_api *api;
    /* this worker's class */
    const nw_worker_class *cls;
    /* the effective settings, read with api->config_* */
    const nw_config *cfg;
    /* this process and the arbiter */
    pid_t pid;
    pid_t ppid;
    /* 1-based number of this worker, unique while the arbiter lives */
    unsigned number;
    /* the listening sockets to accept from */
    unsigned nlisteners;
    const nw_listener *listeners;
    /* readable when a signal arrived for this worker: poll it with the
       listeners and look at api->should_stop(); never read it yourself */
    int wakeup_fd;
    /* call api->heartbeat at least this often */
    unsigned heartbeat_interval_ms;
    /* the core's private state for this worker: do not touch */
    void *core;
    /* room to grow without changing the size */
    void *reserved[8];
};

struct nw_worker_class {
    /* NW_WORKER_MAGIC */
    uint32_t magic;
    /* NW_ABI_MAJOR and NW_ABI_MINOR of the headers the plugin was built
       with */
    uint16_t abi_major;
    uint16_t abi_minor;
    /* sizeof(nw_worker_class) at the plugin's build */
    uint32_t size;
    /* NW_BUILD_FINGERPRINT */
    nw_build_fingerprint build;
    /* the name given to -k, and one line for --help and logs */
    const char *name;
    const char *summary;
    /* NW_WORKER_* flags */
    uint32_t flags;
    /* bytes the core allocates for each worker: >= sizeof(nw_worker) */
    size_t instance_size;
    /* In the arbiter, before forking: refuse settings this class cannot
       honour.  Fill err with one sentence and return NW_ERROR.  Optional. */
    int (*check_config)(const nw_config *cfg, char *err, size_t errlen);
    /* In the worker, after fork and after the app is loaded.  NW_ERROR
       makes the worker exit with the boot-failure code.  Optional. */
    int (*init)(nw_worker *w);
    /* In the worker: serve until api->should_stop() says so.  Called
       without the GIL.  The return value is the process's exit status. */
    int (*run)(nw_worker *w);
    /* In the worker, from inside api->should_stop() (never from a signal
       handler), once for each signal the core caught.  Optional. */
    void (*on_signal)(nw_worker *w, int sig);
    /* room to grow: must be NULL */
    void *reserved[8];
};

/* The first fields of every nw_worker_class initializer. */
#define NW_WORKER_CLASS_HEADER                                                \
    .magic = NW_WORKER_MAGIC, .abi_major = NW_ABI_MAJOR,                      \
    .abi_minor = NW_ABI_MINOR, .size = sizeof(nw_worker_class),               \
    .build = NW_BUILD_FINGERPRINT

typedef const nw_worker_class *(*nw_worker_entry_fn)(const nw_api *api);

NW_EXPORT const nw_worker_class *narwhal_worker_entry(const nw_api *api);

#endif /* NARWHAL_WORKER_H */
