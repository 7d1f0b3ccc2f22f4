#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_PRCTL
#include <sys/prctl.h>
#endif

#include "exitcodes.h"
#include "log.h"
#include "memory.h"
#include "python.h"
#include "worker_core.h"
#include "wsgi.h"

/* The signal handler reaches the worker through this. */
static nw_worker_core *self_core;

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
        break;
    default:
        break;
    }
    if (sig < (int) (sizeof(sig_atomic_t) * 8)) {
        self_core->pending |= 1 << sig;
    }
    rc = write(self_core->wake[1], &b, 1);
    (void) rc; /* a full pipe already wakes the loop */
    errno = saved;
}

static pid_t arbiter_pid;

static void
on_abort(int sig, siginfo_t *info, void *ctx)
{
    (void) ctx;
    if (info != NULL && info->si_code == SI_USER && info->si_pid == arbiter_pid) {
        /* the arbiter's heartbeat timeout: leave at once, as Gunicorn's
           worker does */
        _exit(1);
    }
    /* a real abort(): keep its default action (and core dump) */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
setup_signals(void)
{
    struct sigaction sa;
    static const int reset[] = {SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2, SIGCHLD};
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++) {
        sigaction(reset[i], &sa, NULL);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

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

int
nw__worker_should_stop(nw_worker *w)
{
    nw_worker_core *core = w->core;
    char drain[64];
    sig_atomic_t pending;

    while (read(core->wake[0], drain, sizeof(drain)) > 0) {
    }
    pending = core->pending;
    if (pending != 0) {
        core->pending = 0;
        for (size_t i = 0; i < sizeof(worker_signals) / sizeof(int); i++) {
            int sig = worker_signals[i];
            if ((pending & (1 << sig)) && w->cls->on_signal != NULL) {
                w->cls->on_signal(w, sig);
            }
        }
    }
    return core->stop;
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
leave(int code, int python_up)
{
    if (python_up) {
        Py_FinalizeEx();
    }
    _exit(code);
}

void
nw__worker_main(const nw_worker_spawn *sp)
{
    const nw_settings *s = sp->settings;
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
    nw__log(NW_LOG_INFO, "Booting worker with pid: %ld", (long) getpid());

    if (nw__python_init(s, sp->argc, sp->argv) != NW_OK) {
        _exit(NW_EXIT_WORKER_BOOT);
    }
    if (nw__wsgi_init((sp->cls->flags & NW_WORKER_THREADED) != 0,
                      s->workers > 1)
        != NW_OK) {
        leave(NW_EXIT_WORKER_BOOT, 1);
    }
    rc = nw__python_load_app(s->app_module, &core.app);
    if (rc != NW_OK) {
        leave(rc, 1);
    }

    /* Gunicorn accepts any value and clamps it here: a request line of at
       most 8190 bytes, at most 32768 header fields */
    core.limits.request_line = s->limit_request_line > 0
                                       && s->limit_request_line < 8190
                                   ? (size_t) s->limit_request_line
                                   : 8190;
    core.limits.fields = s->limit_request_fields > 0
                                 && s->limit_request_fields < 32768
                             ? (unsigned) s->limit_request_fields
                             : 32768;
    core.limits.field_size = s->limit_request_field_size > 0
                                 ? (size_t) s->limit_request_field_size
                                 : 8190;
    core.client_timeout_ms = (unsigned) s->timeout * 1000u;

    w = nw__xcalloc(1, sp->cls->instance_size);
    w->api = sp->api;
    w->cls = sp->cls;
    w->cfg = s;
    w->pid = getpid();
    w->ppid = sp->ppid;
    w->number = sp->number;
    w->listeners = sp->listeners;
    w->nlisteners = sp->nlisteners;
    w->wakeup_fd = core.wake[0];
    w->heartbeat_interval_ms = heartbeat_interval_ms(s);
    w->core = &core;
    core.conn = nw__xmalloc(sizeof(nw_conn));
    nw__conn_init(core.conn, w, &core.limits);

    ts = PyEval_SaveThread();
    if (sp->cls->init != NULL && sp->cls->init(w) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Worker class %s failed to initialise",
                sp->cls->name);
        PyEval_RestoreThread(ts);
        leave(NW_EXIT_WORKER_BOOT, 1);
    }
    nw__slot_beat(core.slot);
    atomic_store(&core.slot->state, NW_SLOT_READY);
    rc = sp->cls->run(w);
    PyEval_RestoreThread(ts);

    atomic_store(&core.slot->state, NW_SLOT_STOPPING);
    nw__log(NW_LOG_INFO, "Worker exiting (pid: %ld)", (long) getpid());
    Py_CLEAR(core.app);
    leave(rc, 1);
}
