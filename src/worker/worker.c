#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_PRCTL
#include <sys/prctl.h>
#endif

#include "accesslog/accesslog.h"
#include "base/exitcodes.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "os/privileges.h"
#include "os/proctitle.h"
#include "python/pyhooks.h"
#include "python/python.h"
#include "worker/reloader.h"
#include "os/sockets.h"
#include "worker/worker.h"
#include "wsgi/wsgi.h"

/* The signal handler reaches the worker through this. */
static nw_worker_core *self_core;

/* What hooks see of this worker. */
static unsigned self_number;
static uint64_t self_age;
static pid_t self_ppid;
static int self_booted;

void
nw__worker_hook_info(nw_hook_worker *hw)
{
    memset(hw, 0, sizeof(*hw));
    hw->size = sizeof(*hw);
    hw->status = -1;
    if (self_core == NULL) {
        return;
    }
    hw->pid = getpid();
    hw->ppid = self_ppid;
    hw->number = self_number;
    hw->age = self_age;
    hw->requests = self_core->requests;
    if (self_core->stop == NW_RUN) {
        hw->flags |= NW_HOOK_WORKER_ALIVE;
    }
    if (self_booted) {
        hw->flags |= NW_HOOK_WORKER_BOOTED;
    }
}

/* A worker-side point about this worker (the server is the master's
   state as the fork left it, as in Gunicorn). */
static void
run_self_point(unsigned point)
{
    nw_hook_ctx ctx;
    nw_hook_worker hw;

    if (!NW__HOOK_ON(point)) {
        return;
    }
    memset(&ctx, 0, sizeof(ctx));
    nw__worker_hook_info(&hw);
    if (point == NW_HOOK_WORKER_ABORT) {
        hw.flags |= NW_HOOK_WORKER_ABORTED;
        hw.flags &= ~NW_HOOK_WORKER_ALIVE;
    }
    ctx.cfg = self_core->settings;
    ctx.worker = &hw;
    ctx.master_pid = self_ppid;
    nw__hooks_run(point, &ctx);
}

static const int worker_signals[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1,
                                     SIGWINCH};

static void
on_worker_signal(int sig)
{
    int saved = errno;
    char b = (char) sig;
    ssize_t rc;

    switch (sig) {
    case SIGTERM:
        if (self_core->stop == NW_RUN) {
            self_core->stop = NW_STOP_GRACEFUL;
        }
        break;
    case SIGINT:
    case SIGQUIT:
        self_core->stop = NW_STOP_QUICK;
        if (self_core->in_app) {
            /* Gunicorn's quick exit raises SystemExit in the app: Python
               runs the handler installed by install_quit_handler() at
               its next bytecode, or when the blocked call returns EINTR */
            PyErr_SetInterruptEx(SIGINT);
        }
        break;
    default:
        break;
    }
    if (sig < (int) (sizeof(sig_atomic_t) * 8)) {
        self_core->pending |= 1 << sig;
    }
    rc = write(self_core->wake[1], &b, 1);
    (void) rc; /* a full pipe already wakes the loop */
    /* after the write: should_stop drains the pipe when this moves */
    self_core->signals++;
    errno = saved;
}

static pid_t arbiter_pid;

/* The arbiter's heartbeat timeout, handled outside the signal handler:
   worker_abort and worker_exit run, then the worker leaves, as Gunicorn's
   (whose handler runs them at a bytecode boundary). */
static void
leave_aborted(void)
{
    run_self_point(NW_HOOK_WORKER_ABORT);
    nw__log(NW_LOG_INFO, "Worker exiting (pid: %ld)", (long) getpid());
    run_self_point(NW_HOOK_WORKER_EXIT);
    _exit(1);
}

static void
on_abort(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    char b = (char) sig;
    ssize_t rc;

    (void) ctx;
    if (info != NULL && info->si_code == SI_USER
        && info->si_pid == arbiter_pid) {
        /* Nothing else is safe here (hooks, Python, the log): the app, if
           it runs, gets Python's SIGABRT handler (install_abort_handler)
           at its next bytecode or when a blocking call returns EINTR; the
           loop sees the flag through the wake-up pipe.  An app stuck in C
           gets the arbiter's SIGKILL shortly after. */
        self_core->aborting = 1;
        if (self_core->in_app) {
            PyErr_SetInterruptEx(SIGABRT);
        }
        rc = write(self_core->wake[1], &b, 1);
        (void) rc;
        self_core->signals++;
        errno = saved;
        return;
    }
    /* a real abort(): keep its default action (and core dump) */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
setup_signals(void)
{
    struct sigaction sa;
    static const int reset[] = {SIGTTIN, SIGTTOU, SIGUSR2, SIGCHLD};
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++) {
        sigaction(reset[i], &sa, NULL);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /* Gunicorn leaves HUP at its default, so `pkill -HUP gunicorn` kills
       every worker (PR #1868): a reload is the master's business */
    sigaction(SIGHUP, &sa, NULL);

    sa.sa_handler = on_worker_signal;
    /* no SA_RESTART: a blocked accept or poll returns so the loop sees the
       stop request */
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(worker_signals) / sizeof(int); i++) {
        sigaction(worker_signals[i], &sa, NULL);
    }
    sa.sa_handler = NULL;
    sa.sa_sigaction = on_abort;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGABRT, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* SIGINT's Python-level handler: quit the app with SystemExit(0). */
static PyObject *
quit_now(PyObject *self, PyObject *args)
{
    PyObject *zero = PyLong_FromLong(0);
    (void) self;
    (void) args;
    PyErr_SetObject(PyExc_SystemExit, zero);
    Py_XDECREF(zero);
    return NULL;
}

static PyMethodDef quit_def = {"narwhal_quit", quit_now, METH_VARARGS,
                               "raise SystemExit: the worker quits"};

/* SIGABRT's Python-level handler: the heartbeat timeout, in the app. */
static PyObject *
abort_now(PyObject *self, PyObject *args)
{
    (void) self;
    (void) args;
    leave_aborted();
    Py_RETURN_NONE; /* not reached */
}

static PyMethodDef abort_def = {"narwhal_abort", abort_now, METH_VARARGS,
                                "the worker timed out: worker_abort, exit"};

/* Registers fn as Python's handler for sig, then puts our C handler back:
   Python's table now names fn, so PyErr_SetInterruptEx(sig) from our
   handler makes the interpreter call it. */
static int
python_handler(int sig, PyMethodDef *def, const struct sigaction *ours)
{
    PyObject *signal_mod = PyImport_ImportModule("signal");
    PyObject *fn = PyCFunction_New(def, NULL);
    PyObject *r = NULL;

    if (signal_mod != NULL && fn != NULL) {
        r = PyObject_CallMethod(signal_mod, "signal", "iO", sig, fn);
    }
    Py_XDECREF(signal_mod);
    Py_XDECREF(fn);
    if (r == NULL) {
        nw__log_py_exception(NW_LOG_WARNING, "cannot install the %s handler",
                             def->ml_name);
        return NW_ERROR;
    }
    Py_DECREF(r);
    sigaction(sig, ours, NULL);
    return NW_OK;
}

static int
install_abort_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_abort;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return python_handler(SIGABRT, &abort_def, &sa);
}

static int
install_quit_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_worker_signal;
    sigemptyset(&sa.sa_mask);
    return python_handler(SIGINT, &quit_def, &sa);
}

void
nw__worker_request_done(nw_worker_core *core)
{
    core->requests++;
    atomic_fetch_add_explicit(&core->slot->requests, 1, memory_order_relaxed);
    if (core->requests == core->max_requests) {
        nw__log(NW_LOG_INFO,
                "Autorestarting worker after %llu requests (max_requests): "
                "it serves until its successor is ready",
                core->requests);
        atomic_store(&core->slot->state, NW_SLOT_RETIRING);
    }
}

int
nw__worker_should_stop(nw_worker *w)
{
    nw_worker_core *core = w->core;
    char drain[64];
    sig_atomic_t pending, signals = core->signals;

    if (signals == core->signals_seen) {
        /* nothing arrived: no syscall on the per-request path */
        return core->stop;
    }
    while (read(core->wake[0], drain, sizeof(drain)) > 0) {
    }
    core->signals_seen = signals;
    if (core->aborting) {
        leave_aborted();
    }
    pending = core->pending;
    if (pending != 0) {
        core->pending = 0;
        if (pending & (1 << SIGUSR1)) {
            nw__logs_reopen();
        }
        for (size_t i = 0; i < sizeof(worker_signals) / sizeof(int); i++) {
            int sig = worker_signals[i];
            if ((pending & (1 << sig)) && w->cls->on_signal != NULL) {
                w->cls->on_signal(w, sig);
            }
        }
    }
    return core->stop;
}

/* With --reload, an app that fails to load is not the end (as Gunicorn):
   the worker serves this 500 until the fix reloads it. */
static PyObject *
reload_fail_app(void)
{
    PyObject *mod = PyImport_ImportModule("narwhal");
    PyObject *app = mod != NULL
                        ? PyObject_CallMethod(
                              mod, "_fail_app", "s",
                              "Internal Server Error: the app failed to "
                              "load (its traceback is in narwhal's error "
                              "log). Fix it: --reload restarts the worker "
                              "when the file changes.\n")
                        : NULL;

    if (app == NULL) {
        nw__log_py_exception(NW_LOG_ERROR, "reload: no stand-in app");
    } else {
        nw__log(NW_LOG_WARNING, "reload: the app failed to load; answering "
                                "500 until a watched file changes");
    }
    Py_XDECREF(mod);
    return app;
}

static unsigned
heartbeat_interval_ms(const nw_settings *s)
{
    /* often enough that a timeout of t seconds never fires on a live
       worker, and at most once a second */
    if (s->timeout <= 0 || s->timeout >= 2) {
        return 1000;
    }
    return 500;
}

static void __attribute__((noreturn))
leave(int code, int py)
{
    if (py) {
        nw__logs_python_off();
        Py_FinalizeEx();
    }
    _exit(code);
}

/* A worker that fails to boot once Python runs: as Gunicorn's spawn_worker
   (its finally), the exit is logged and worker_exit runs. */
static void __attribute__((noreturn))
boot_failed(int code)
{
    nw__log(NW_LOG_INFO, "Worker exiting (pid: %ld)", (long) getpid());
    run_self_point(NW_HOOK_WORKER_EXIT);
    leave(code, 1);
}

static int
set_owner(const nw_settings *s)
{
    uid_t uid = s->source[NW_S_user] != NW_SRC_DEFAULT ? (uid_t) s->user
                                                       : (uid_t) -1;
    gid_t gid = s->source[NW_S_group] != NW_SRC_DEFAULT ? (gid_t) s->group
                                                        : (gid_t) -1;
    char err[256];

    if (nw__set_owner(uid, gid, s->initgroups, err, sizeof(err)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s; run narwhal as root to use -u/-g",
                err);
        return NW_ERROR;
    }
    return NW_OK;
}

/* With reuse_port each worker listens on its own SO_REUSEPORT copy of the
   TCP sockets, so the kernel balances connections over the workers. */
static const nw_listener *
own_listeners(const nw_worker_spawn *sp)
{
    nw_listener *mine;
    char err[256];

    if (!sp->settings->reuse_port) {
        return sp->listeners;
    }
    mine = nw__xcalloc(sp->nlisteners ? sp->nlisteners : 1,
                       sizeof(nw_listener));
    for (unsigned i = 0; i < sp->nlisteners; i++) {
        if (sp->listeners[i].family == AF_UNIX) {
            mine[i] = sp->listeners[i];
        } else if (nw__listener_clone(&sp->listeners[i],
                                      (int) sp->settings->backlog, &mine[i],
                                      err, sizeof(err))
                   != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: %s", err);
            return NULL;
        } else {
            /* the arbiter's bound socket is only a reservation */
            close(sp->listeners[i].fd);
        }
    }
    return mine;
}

void
nw__worker_main(const nw_worker_spawn *sp)
{
    const nw_settings *s = sp->settings;
    const nw_listener *listeners;
    nw_worker_core core;
    nw_worker *w;
    PyThreadState *ts;
    int rc;

    memset(&core, 0, sizeof(core));
    core.slot = sp->slot;
    self_core = &core;
    if (sp->close_fds[0] >= 0) {
        close(sp->close_fds[0]);
        close(sp->close_fds[1]);
    }
    if (pipe2(core.wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        nw__log(NW_LOG_CRITICAL, "cannot create the worker's pipe: %s",
                strerror(errno));
        _exit(NW_EXIT_WORKER_BOOT);
    }
    arbiter_pid = sp->ppid;
    setup_signals();
#ifdef HAVE_PRCTL
    /* If the arbiter dies (even by SIGKILL), its workers stop too. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != sp->ppid) {
        _exit(0);
    }
    nw__proctitle_set("narwhal: worker [%s]", nw__proc_name(s));
    nw__log(NW_LOG_INFO, "Booting worker with pid: %ld", (long) getpid());
    core.settings = s;
    self_number = sp->number;
    self_age = sp->age;
    self_ppid = sp->ppid;
    nw__hooks_activate(s);
    {
        char err[512];
        if (nw__access_setup(s, err, sizeof(err)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: access_log_format: %s", err);
            _exit(NW_EXIT_WORKER_BOOT);
        }
    }
    /* Gunicorn's post_fork: still the master's user and group */
    run_self_point(NW_HOOK_POST_FORK);

    /* As Gunicorn: the worker's user and group are taken after post_fork,
       before the app is loaded */
    if (set_owner(s) != NW_OK) {
        _exit(NW_EXIT_WORKER_BOOT);
    }
    listeners = own_listeners(sp);
    if (listeners == NULL) {
        _exit(NW_EXIT_WORKER_BOOT);
    }
    if (nw__python_init(s, sp->argc, sp->argv) != NW_OK) {
        _exit(NW_EXIT_WORKER_BOOT);
    }
    install_quit_handler();
    install_abort_handler();
    core.in_app_mark = (sp->cls->flags & NW_WORKER_THREADED) == 0;
    if (nw__wsgi_init((sp->cls->flags & NW_WORKER_THREADED) != 0,
                      s->workers > 1)
        != NW_OK) {
        boot_failed(NW_EXIT_WORKER_BOOT);
    }
    core.app = nw__python_preloaded_app();
    if (core.app != NULL) {
        Py_INCREF(core.app);
    } else {
        rc = nw__python_load_app(s->app_module, &core.app);
        if (rc != NW_OK && s->reload) {
            core.app = reload_fail_app();
        }
        if (core.app == NULL) {
            boot_failed(rc);
        }
    }
    if (nw__reloader_start(&core, s) != NW_OK) {
        boot_failed(NW_EXIT_WORKER_BOOT);
    }
    if (s->max_requests > 0) {
        /* spread the recycling of workers started together */
        srandom((unsigned) getpid() ^ (unsigned) time(NULL));
        core.max_requests = (unsigned long long) s->max_requests
                            + (s->max_requests_jitter > 0
                                   ? (unsigned long long) random()
                                         % ((unsigned long long)
                                                s->max_requests_jitter
                                            + 1)
                                   : 0);
    }

    {
        char err[512];
        if (nw__conn_config_init(&core.cfg, s, err, sizeof(err)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: %s", err);
            boot_failed(NW_EXIT_WORKER_BOOT);
        }
    }

    w = nw__xcalloc(1, sp->cls->instance_size);
    w->api = sp->api;
    w->cls = sp->cls;
    w->cfg = s;
    w->pid = getpid();
    w->ppid = sp->ppid;
    w->number = sp->number;
    w->listeners = listeners;
    w->nlisteners = sp->nlisteners;
    w->wakeup_fd = core.wake[0];
    w->heartbeat_interval_ms = heartbeat_interval_ms(s);
    w->core = &core;
    nw__hook_self = w;
    core.conn = nw__xmalloc(sizeof(nw_conn));
    nw__conn_init(core.conn, w, &core.cfg, NW_CONN_BLOCKING);
    run_self_point(NW_HOOK_POST_WORKER_INIT);
    /* as Gunicorn: booted once post_worker_init has run */
    self_booted = 1;

    ts = PyEval_SaveThread();
    if (sp->cls->init != NULL && sp->cls->init(w) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Worker class %s failed to initialise",
                sp->cls->name);
        PyEval_RestoreThread(ts);
        boot_failed(NW_EXIT_WORKER_BOOT);
    }
    nw__slot_beat(core.slot);
    atomic_store(&core.slot->state, NW_SLOT_READY);
    rc = sp->cls->run(w);
    PyEval_RestoreThread(ts);

    atomic_store(&core.slot->state, NW_SLOT_STOPPING);
    if (core.stop == NW_STOP_QUICK) {
        run_self_point(NW_HOOK_WORKER_INT);
    }
    nw__log(NW_LOG_INFO, "Worker exiting (pid: %ld)", (long) getpid());
    run_self_point(NW_HOOK_WORKER_EXIT);
    Py_CLEAR(core.app);
    leave(rc, 1);
}
