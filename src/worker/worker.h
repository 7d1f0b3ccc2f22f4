/* The core's private state of a worker process (nw_worker.core). */
#ifndef NW_WORKER_CORE_H
#define NW_WORKER_CORE_H

#include <Python.h>
#include <signal.h>

#include <narwhal/worker.h>

#include "conn/conn.h"
#include "os/scoreboard.h"
#include "config/settings.h"

typedef struct nw_worker_core {
    const nw_settings *settings;
    nw_slot *slot;
    nw_conn *conn;              /* the blocking classes' one connection */
    PyObject *app;              /* the WSGI callable */
    nw_conn_config cfg;         /* what connections need of the settings */
    unsigned long long requests;
    unsigned long long max_requests; /* with its jitter; 0: no limit */
    volatile sig_atomic_t stop; /* NW_RUN, NW_STOP_GRACEFUL, NW_STOP_QUICK */
    volatile sig_atomic_t pending; /* bit per signal caught, not handled */
    volatile sig_atomic_t signals; /* signals caught (wraps) */
    sig_atomic_t signals_seen;     /* ... when the pipe was last drained */
    volatile sig_atomic_t in_app; /* Python app code may be running */
    /* what in_app is set to around an app call: 1 when the app runs on
       the worker's main thread, the only one the quit and abort handlers
       can interrupt; 0 for a threaded class, whose main thread must not
       get their SystemExit (in a hook, say) */
    sig_atomic_t in_app_mark;
    volatile sig_atomic_t aborting; /* the arbiter's heartbeat SIGABRT */
    int wake[2];                /* self-pipe: signal handler -> loop */
} nw_worker_core;

/* What the arbiter hands a freshly forked worker. */
typedef struct nw_worker_spawn {
    const nw_settings *settings;
    const nw_worker_class *cls;
    const nw_api *api;
    const nw_listener *listeners;
    unsigned nlisteners;
    nw_slot *slot;
    unsigned number;
    uint64_t age;               /* spawn order */
    pid_t ppid;
    int close_fds[2];           /* the arbiter's own pipe, closed here */
    int argc;
    char **argv;
} nw_worker_spawn;

/* Run a worker to its end; never returns. */
void nw__worker_main(const nw_worker_spawn *sp) __attribute__((noreturn));

/* api->should_stop */
int nw__worker_should_stop(nw_worker *w);

/* After every request a worker class served: counts it, and past
   max_requests marks the worker retiring (the arbiter starts its
   successor, then stops it). */
void nw__worker_request_done(nw_worker_core *core);

#endif
