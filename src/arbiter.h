/* The arbiter: the master process's loop (signals, spawning, reaping,
   heartbeat timeouts, shutdown). */
#ifndef NW_ARBITER_H
#define NW_ARBITER_H

#include <stdint.h>
#include <sys/types.h>

#include <narwhal/worker.h>

#include "scoreboard.h"
#include "settings.h"

typedef struct nw_child {
    pid_t pid;
    unsigned slot;
    unsigned number;
    uint64_t age;        /* spawn order: the oldest retires first */
    uint64_t abort_ns;   /* when a timeout's SIGABRT was sent; 0 if not */
    unsigned retiring : 1; /* sent SIGTERM to shrink the pool */
} nw_child;

typedef struct nw_arbiter {
    nw_settings *settings;
    const nw_worker_class *cls;
    nw_listener *listeners;
    unsigned nlisteners;
    nw_scoreboard sb;
    nw_child *children;
    unsigned nchildren;
    long num_workers;
    unsigned next_number;
    uint64_t next_age;
    uint64_t spawn_after_ns;  /* crash-loop backoff: no spawn before */
    uint64_t backoff_ns;
    int pipe[2];
    int halt_code;
    const char *halt_reason;
    int argc;
    char **argv;
} nw_arbiter;

/* Run until stopped; returns the process's exit code. */
int nw__arbiter_run(nw_arbiter *a);

#endif
