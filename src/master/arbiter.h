/* The arbiter: the master process's loop (signals, spawning, reaping,
   heartbeat timeouts, reloads, re-execution, shutdown). */
#ifndef NW_ARBITER_H
#define NW_ARBITER_H

#include <stdint.h>
#include <sys/types.h>

#include <narwhal/hook.h>
#include <narwhal/worker.h>

#include "os/pidfile.h"
#include "os/scoreboard.h"
#include "config/settings.h"

/* The listening sockets of one configuration, with the bind strings they
   came from (a reload reuses a socket whose string did not change). */
typedef struct nw_listen_set {
    nw_listener *items;
    char **specs;
    unsigned count;
    unsigned owned : 1; /* bound here: a unix socket's file is ours */
} nw_listen_set;

/* One configuration: settings, the worker class, the sockets.  A reload
   builds the next one next to the running one and swaps them only once
   the new workers are ready. */
typedef struct nw_generation {
    nw_settings *settings;
    const nw_worker_class *cls;
    nw_listen_set listen;
    unsigned id;
} nw_generation;

typedef struct nw_child {
    pid_t pid;
    unsigned slot;
    unsigned number;
    unsigned generation;
    uint64_t age;          /* spawn order: the oldest retires first */
    uint64_t abort_ns;     /* when a timeout's SIGABRT was sent; 0 if not */
    unsigned stopping : 1; /* told to stop (TERM or QUIT) */
    unsigned too_big : 1;  /* over max_worker_memory: to be replaced */
    unsigned replace : 1;  /* manage_workers: to go once successors serve */
} nw_child;

typedef struct nw_arbiter {
    nw_generation gen;      /* in force */
    nw_generation next;     /* a reload's, while its workers boot */
    unsigned last_generation; /* ids are never reused: a failed reload's
                                 workers must not pass for the next's */
    nw_scoreboard sb;
    nw_child *children;
    unsigned nchildren;
    long num_workers;
    long num_workers_before_reload; /* restored if the reload fails */
    int reload_pending;     /* a HUP came while a reload's workers booted */
    unsigned next_number;
    uint64_t next_age;
    uint64_t spawn_after_ns; /* crash-loop backoff: no spawn before */
    uint64_t backoff_ns;
    int pipe[2];
    int halt_code;
    const char *halt_reason;
    /* re-execution (USR2) */
    pid_t reexec_pid;       /* the new master we started */
    pid_t master_pid;       /* the old master, while we are its ".2" */
    int systemd;            /* sockets came from systemd */
    char *exec_path;        /* the binary to re-execute */
    char *start_cwd;
    int argc;
    char **argv;            /* a copy: the original argv holds the title */
    nw_pidfile pidfile;
    const char *master_name; /* "Master", or "Master.2" */
    unsigned logged_workers; /* the worker count last logged */
} nw_arbiter;

/* Run until stopped; returns the process's exit code. */
int nw__arbiter_run(nw_arbiter *a);

/* The arbiter of this process (the hooks' api entries and the Python
   objects read it); attached by main before any hook runs. */
void nw__arbiter_attach(nw_arbiter *a);
nw_arbiter *nw__arbiter_current(void);

/* The master's side of a hook context, with cfg (NULL: the settings in
   force). */
void nw__arbiter_hook_ctx(const nw_arbiter *a, nw_hook_ctx *ctx,
                          const nw_settings *cfg);

/* The i-th worker process of this master, as hooks see it: NW_ERROR past
   the last (and in a worker). */
int nw__arbiter_worker_info(unsigned i, nw_hook_worker *hw);

/* The first assignment of num_workers (nworkers_changed with old None),
   and later ones from api->set_num_workers / server.num_workers. */
void nw__arbiter_init_num_workers(nw_arbiter *a);
int nw__arbiter_set_num_workers(long n);

/* Open the sockets of a configuration: inherited ones (systemd's
   LISTEN_FDS, NARWHAL_FD / GUNICORN_FD after USR2) or the bind list,
   reusing those of `keep` whose bind string did not change. */
int nw__listen_open(nw_arbiter *a, nw_settings *s,
                    nw_listen_set *out, const nw_listen_set *keep);
void nw__listen_close(nw_listen_set *set, const nw_listen_set *keep,
                      int unlink_unix);

/* reexec.c: USR2 and what a re-executed master finds. */
pid_t nw__reexec(nw_arbiter *a);
int nw__inherited_fds(nw_arbiter *a, int **fds, unsigned *n);
void nw__maybe_promote(nw_arbiter *a);
const char *nw__exec_path(const char *argv0);

#endif
