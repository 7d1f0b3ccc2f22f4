#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plugin/api.h"
#include "accesslog/accesslog.h"
#include "master/arbiter.h"
#include "config/config_files.h"
#include "base/exitcodes.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "plugin/plugin.h"
#include "os/proctitle.h"
#include "python/pyhooks.h"
#include "python/python_arbiter.h"
#include "os/sockets.h"
#include "worker/worker.h"

#define LOOP_MS 1000
#define BUSY_LOOP_MS 100 /* while workers boot or wait to be replaced */
#define ABORT_GRACE_NS 1000000000ull /* SIGKILL this long after SIGABRT */
#define QUICK_STOP_MS 2000
#define MIN_BACKOFF_NS 100000000ull   /* 0.1 s */
#define MAX_BACKOFF_NS 5000000000ull  /* 5 s */

static int signal_pipe_w = -1;

/* The arbiter of this process, for the hooks' api entries and the
   Python objects (a worker keeps its copy from the fork: stale, as
   Gunicorn's copy of the Arbiter object is in a worker). */
static nw_arbiter *current;

void
nw__arbiter_attach(nw_arbiter *a)
{
    current = a;
}

nw_arbiter *
nw__arbiter_current(void)
{
    return current;
}

static const int arbiter_signals[] = {SIGHUP,  SIGQUIT, SIGINT,  SIGTERM,
                                      SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
                                      SIGWINCH, SIGCHLD};

static void
on_signal(int sig)
{
    int saved = errno;
    char b = (char) sig;
    ssize_t rc = write(signal_pipe_w, &b, 1);
    (void) rc; /* a full pipe means a wake-up is already pending */
    errno = saved;
}

static int
setup_signals(nw_arbiter *a)
{
    struct sigaction sa;

    if (pipe2(a->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        nw__log(NW_LOG_CRITICAL, "cannot create the signal pipe: %s",
                strerror(errno));
        return NW_ERROR;
    }
    signal_pipe_w = a->pipe[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(arbiter_signals) / sizeof(int); i++) {
        sigaction(arbiter_signals[i], &sa, NULL);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return NW_OK;
}

static const char *
signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, len, "SIG%s", abbrev ? abbrev : "UNKNOWN");
    return buf;
}

/* ------------------------------------------------------------------------
 * Hooks
 */

static unsigned
running_workers(const nw_arbiter *a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < a->nchildren; i++) {
        n += !a->children[i].stopping;
    }
    return n;
}

/* The master's side of a hook context. */
void
nw__arbiter_hook_ctx(const nw_arbiter *a, nw_hook_ctx *ctx,
                     const nw_settings *cfg)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg != NULL ? cfg : a->gen.settings;
    ctx->master_pid = getpid();
    ctx->old_master_pid = a->master_pid;
    ctx->new_master_pid = a->reexec_pid;
    ctx->num_workers = a->num_workers;
    ctx->old_num_workers = -1;
    ctx->nworkers = a->children != NULL ? running_workers(a) : 0;
    ctx->nlisteners = a->gen.listen.count;
    ctx->listeners = a->gen.listen.items;
    if (a->next.settings != NULL) {
        ctx->flags |= NW_HOOK_F_RELOADING;
    }
}

static void
run_master_point(nw_arbiter *a, unsigned point, const nw_settings *cfg)
{
    nw_hook_ctx ctx;

    nw__arbiter_hook_ctx(a, &ctx, cfg);
    nw__hooks_run(point, &ctx);
}

static void child_info(const nw_arbiter *a, const nw_child *c,
                       nw_hook_worker *hw);

int
nw__arbiter_worker_info(unsigned i, nw_hook_worker *hw)
{
    if (current == NULL || current->children == NULL
        || i >= current->nchildren) {
        return NW_ERROR;
    }
    child_info(current, &current->children[i], hw);
    return NW_OK;
}

static void
child_info(const nw_arbiter *a, const nw_child *c, nw_hook_worker *hw)
{
    memset(hw, 0, sizeof(*hw));
    hw->size = sizeof(*hw);
    hw->pid = c->pid;
    hw->ppid = getpid();
    hw->number = c->number;
    hw->age = c->age;
    hw->requests = atomic_load_explicit(&a->sb.slots[c->slot].requests,
                                        memory_order_relaxed);
    hw->status = -1;
    if (!c->stopping) {
        hw->flags |= NW_HOOK_WORKER_ALIVE;
    }
    if (c->abort_ns != 0) {
        hw->flags |= NW_HOOK_WORKER_ABORTED;
    }
    if (atomic_load_explicit(&a->sb.slots[c->slot].state,
                             memory_order_acquire)
        >= NW_SLOT_READY) {
        hw->flags |= NW_HOOK_WORKER_BOOTED;
    }
}

/* The settings a child's generation runs with (the one in force if its
   generation is gone). */
static const nw_settings *
child_settings(const nw_arbiter *a, const nw_child *c)
{
    if (a->next.settings != NULL && c->generation == a->next.id) {
        return a->next.settings;
    }
    return a->gen.settings;
}

static void
run_child_point(nw_arbiter *a, unsigned point, const nw_child *c, int status)
{
    nw_hook_ctx ctx;
    nw_hook_worker hw;

    nw__arbiter_hook_ctx(a, &ctx, child_settings(a, c));
    child_info(a, c, &hw);
    hw.status = status;
    ctx.worker = &hw;
    nw__hooks_run(point, &ctx);
}

/* Every assignment of the number of workers runs nworkers_changed, as
   Gunicorn's num_workers property does (the first with old -1: None).  A
   hook that sets it again from inside nworkers_changed sets it without
   another call. */
static void
set_num_workers(nw_arbiter *a, long n, long old)
{
    static int inside;
    nw_hook_ctx ctx;

    a->num_workers = n;
    if (inside) {
        return;
    }
    inside = 1;
    nw__arbiter_hook_ctx(a, &ctx, NULL);
    ctx.num_workers = n;
    ctx.old_num_workers = old;
    nw__hooks_run(NW_HOOK_NWORKERS_CHANGED, &ctx);
    inside = 0;
}

int
nw__arbiter_set_num_workers(long n)
{
    if (current == NULL || n < 0) {
        return NW_ERROR;
    }
    set_num_workers(current, n, current->num_workers);
    return NW_OK;
}

void
nw__arbiter_init_num_workers(nw_arbiter *a)
{
    set_num_workers(a, a->gen.settings->workers, -1);
}

/* ------------------------------------------------------------------------
 * The workers
 */

static uint32_t
child_state(const nw_arbiter *a, const nw_child *c)
{
    return atomic_load_explicit(&a->sb.slots[c->slot].state,
                                memory_order_acquire);
}

/* The configuration new workers are started with. */
static nw_generation *
spawn_gen(nw_arbiter *a)
{
    return a->next.settings != NULL ? &a->next : &a->gen;
}

/* A worker that has a successor coming: an older configuration's, one
   that reached max_requests, one over max_worker_memory.  It keeps
   serving until its successors are ready. */
static int
replaceable(nw_arbiter *a, const nw_child *c)
{
    return c->generation != spawn_gen(a)->id || c->too_big
           || child_state(a, c) == NW_SLOT_RETIRING;
}

static nw_child *
find_child(nw_arbiter *a, pid_t pid)
{
    for (unsigned i = 0; i < a->nchildren; i++) {
        if (a->children[i].pid == pid) {
            return &a->children[i];
        }
    }
    return NULL;
}

static void
remove_child(nw_arbiter *a, nw_child *c)
{
    nw__py_forget_worker(c->number);
    nw__scoreboard_release(&a->sb, c->slot);
    *c = a->children[--a->nchildren];
}

/* A reaped worker: child_exit, then it is forgotten. */
static void
child_gone(nw_arbiter *a, nw_child *c, int status)
{
    run_child_point(a, NW_HOOK_CHILD_EXIT, c, status);
    remove_child(a, c);
}

static void
stop_child(nw_arbiter *a, nw_child *c, int sig)
{
    c->stopping = 1;
    if (kill(c->pid, sig) != 0 && errno == ESRCH) {
        /* gone without being reaped: Gunicorn runs worker_exit in the
           master then */
        run_child_point(a, NW_HOOK_WORKER_EXIT, c, -1);
        remove_child(a, c);
    }
}

static void
halt_with(nw_arbiter *a, const char *reason, int code)
{
    if (a->halt_code == 0) {
        a->halt_code = code;
        a->halt_reason = reason;
    }
}

static void
free_generation(nw_generation *g)
{
    if (g->settings != NULL) {
        nw__settings_free(g->settings);
        free(g->settings);
    }
    g->settings = NULL;
    g->cls = NULL;
}

/* A reload whose workers cannot boot: the running ones stay. */
static void
abort_reload(nw_arbiter *a, const char *why)
{
    nw__log(NW_LOG_ERROR,
            "Reload failed: %s; the workers of the previous configuration "
            "keep serving",
            why);
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        if (c->generation == a->next.id && !c->stopping) {
            unsigned before = a->nchildren;
            stop_child(a, c, SIGTERM);
            i -= a->nchildren < before; /* the last one moved here */
        }
    }
    nw__listen_close(&a->next.listen, &a->gen.listen, 1);
    free_generation(&a->next);
    /* the rejected configuration's hooks and logs give way to the ones in
       force again */
    nw__hooks_activate(a->gen.settings);
    {
        char lerr[512];
        nw__logs_configure(a->gen.settings, 1, lerr, sizeof(lerr));
    }
    if (a->num_workers != a->num_workers_before_reload) {
        set_num_workers(a, a->num_workers_before_reload, a->num_workers);
    }
}

/* A worker that dies before it booted makes the next spawn wait, doubling
   up to MAX_BACKOFF_NS, so a crashing app does not fork in a tight loop; a
   worker that served resets the wait. */
static void
note_death(nw_arbiter *a, const nw_child *c)
{
    if (child_state(a, c) == NW_SLOT_BOOTING) {
        a->backoff_ns = a->backoff_ns == 0 ? MIN_BACKOFF_NS
                        : a->backoff_ns * 2 > MAX_BACKOFF_NS
                            ? MAX_BACKOFF_NS
                            : a->backoff_ns * 2;
        a->spawn_after_ns = nw__monotonic_ns() + a->backoff_ns;
    } else {
        a->backoff_ns = 0;
    }
}

static void
reaped_boot_failure(nw_arbiter *a, const nw_child *c, int code)
{
    const char *reason = code == NW_EXIT_WORKER_BOOT
                             ? "Worker failed to boot."
                             : "App failed to load.";

    if (a->next.settings != NULL) {
        /* a worker of the configuration being replaced does not stop the
           server: the reload decides */
        if (c->generation == a->next.id) {
            abort_reload(a, code == NW_EXIT_WORKER_BOOT
                                ? "the new workers failed to boot"
                                : "the new workers could not load the app");
        }
    } else if (c->generation == a->gen.id && !c->stopping) {
        halt_with(a, reason, code);
    }
}

static void
reap(nw_arbiter *a)
{
    int status;
    pid_t pid;
    char name[32];

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        nw_child *c;
        if (pid == a->reexec_pid) {
            nw__log(NW_LOG_WARNING,
                    "The new master (pid:%ld) exited; USR2 can start "
                    "another",
                    (long) pid);
            a->reexec_pid = 0;
            continue;
        }
        c = find_child(a, pid);
        if (c == NULL) {
            continue; /* not a worker: an orphan we inherited */
        }
        note_death(a, c);
        if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            if (code != 0) {
                nw__log(NW_LOG_ERROR, "Worker (pid:%ld) exited with code %d.",
                        (long) pid, code);
            }
            if (code == NW_EXIT_WORKER_BOOT || code == NW_EXIT_APP_LOAD) {
                reaped_boot_failure(a, c, code);
                /* a failed reload stops workers, and one already gone is
                   removed: the table may have moved under c */
                c = find_child(a, pid);
                if (c == NULL) {
                    continue;
                }
            }
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            signal_name(sig, name, sizeof(name));
            if (sig == SIGKILL) {
                nw__log(NW_LOG_ERROR,
                        "Worker (pid:%ld) was sent SIGKILL! Perhaps out of "
                        "memory?",
                        (long) pid);
            } else {
                nw__log(sig == SIGTERM ? NW_LOG_INFO : NW_LOG_WARNING,
                        "Worker (pid:%ld) was sent %s!", (long) pid, name);
            }
        }
        child_gone(a, c, status);
    }
}

static void
spawn_worker(nw_arbiter *a, nw_generation *g)
{
    int slot = nw__scoreboard_claim(&a->sb, 0);
    nw_child *c;
    pid_t pid;

    if (slot < 0) {
        nw__log(NW_LOG_ERROR,
                "cannot start another worker: all %u scoreboard slots are "
                "in use; lower --workers",
                a->sb.nslots);
        return;
    }
    a->next_number++;
    a->next_age++;
    {
        /* Gunicorn's pre_fork: the worker exists, without a pid yet */
        nw_hook_ctx ctx;
        nw_hook_worker hw;
        memset(&hw, 0, sizeof(hw));
        hw.size = sizeof(hw);
        hw.ppid = getpid();
        hw.number = a->next_number;
        hw.age = a->next_age;
        hw.status = -1;
        hw.flags = NW_HOOK_WORKER_ALIVE;
        nw__arbiter_hook_ctx(a, &ctx, g->settings);
        ctx.worker = &hw;
        nw__hooks_run(NW_HOOK_PRE_FORK, &ctx);
    }
    nw__python_before_fork();
    pid = fork();
    if (pid == 0) {
        nw_worker_spawn sp = {
            .settings = g->settings,
            .cls = g->cls,
            .api = &nw__api,
            .listeners = g->listen.items,
            .nlisteners = g->listen.count,
            .slot = &a->sb.slots[slot],
            .number = a->next_number,
            .age = a->next_age,
            .ppid = getppid(),
            .close_fds = {a->pipe[0], a->pipe[1]},
            .argc = a->argc,
            .argv = a->argv,
        };
        nw__python_after_fork_child();
        nw__worker_main(&sp);
    }
    nw__python_after_fork_parent();
    if (pid < 0) {
        nw__log(NW_LOG_ERROR, "cannot fork a worker: %s", strerror(errno));
        nw__scoreboard_release(&a->sb, (unsigned) slot);
        return;
    }
    atomic_store(&a->sb.slots[slot].pid, pid);
    c = &a->children[a->nchildren++];
    memset(c, 0, sizeof(*c));
    c->pid = pid;
    c->slot = (unsigned) slot;
    c->number = a->next_number;
    c->generation = g->id;
    c->age = a->next_age;
}

/* The old configuration goes once the new one's workers serve. */
static void
commit_reload(nw_arbiter *a)
{
    nw_generation old = a->gen;

    a->gen = a->next;
    memset(&a->next, 0, sizeof(a->next));
    nw__listen_close(&old.listen, &a->gen.listen, 1);
    free_generation(&old);
    nw__log(NW_LOG_INFO, "Reload complete: %ld worker%s of the new "
                         "configuration serving",
            a->num_workers, a->num_workers == 1 ? "" : "s");
}

/* Keep num_workers workers of the newest configuration, replace the ones
   that must go only once their successors are ready, so a reload or a
   recycle never leaves the service short of workers. */
static void
manage_workers(nw_arbiter *a)
{
    nw_generation *g = spawn_gen(a);
    unsigned active = 0, ready = 0, waiting = 0;

    /* a worker's state moves under us (one reaching max_requests turns
       RETIRING any time): which ones are to be replaced is read once, so
       a worker counted here as a ready successor is never also stopped
       below as a retiring one (which left none serving) */
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        c->replace = !c->stopping && replaceable(a, c);
        if (c->stopping) {
            continue;
        }
        if (c->replace) {
            waiting++;
        } else {
            active++;
            ready += child_state(a, c) == NW_SLOT_READY;
        }
    }
    while (active < (unsigned) a->num_workers && a->nchildren < a->sb.nslots
           && nw__monotonic_ns() >= a->spawn_after_ns) {
        unsigned before = a->nchildren;
        spawn_worker(a, g);
        if (a->nchildren == before) {
            break;
        }
        active++;
    }
    /* too many: the oldest go first */
    while (active > (unsigned) a->num_workers) {
        nw_child *oldest = NULL;
        for (unsigned i = 0; i < a->nchildren; i++) {
            nw_child *c = &a->children[i];
            if (!c->stopping && !replaceable(a, c)
                && (oldest == NULL || c->age < oldest->age)) {
                oldest = c;
            }
        }
        if (oldest == NULL) {
            break;
        }
        stop_child(a, oldest, SIGTERM);
        active--;
    }
    if (ready < (unsigned) a->num_workers) {
        return;
    }
    if (a->next.settings != NULL) {
        commit_reload(a);
    }
    if (waiting == 0) {
        return;
    }
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        if (!c->stopping && c->replace) {
            unsigned before = a->nchildren;
            if (child_state(a, c) == NW_SLOT_RETIRING) {
                nw__log(NW_LOG_INFO,
                        "Worker (pid:%ld) retires: its successor is ready",
                        (long) c->pid);
            }
            stop_child(a, c, SIGTERM);
            i -= a->nchildren < before; /* gone already: the last moved here */
        }
    }
}

static void
murder_workers(nw_arbiter *a)
{
    uint64_t now = nw__monotonic_ns();
    uint64_t limit = (uint64_t) a->gen.settings->timeout * 1000000000ull;

    if (limit == 0) {
        return;
    }
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        uint64_t beat = atomic_load_explicit(&a->sb.slots[c->slot].heartbeat_ns,
                                             memory_order_relaxed);
        /* a worker may beat after `now` was read: newer than now is alive
           (the unsigned difference would wrap and kill it) */
        if (beat >= now || now - beat <= limit) {
            continue;
        }
        if (c->abort_ns == 0) {
            nw__log(NW_LOG_CRITICAL, "WORKER TIMEOUT (pid:%ld)", (long) c->pid);
            c->abort_ns = now;
            kill(c->pid, SIGABRT);
        } else if (now - c->abort_ns >= ABORT_GRACE_NS) {
            kill(c->pid, SIGKILL);
        }
    }
}

/* Resident memory of a process, in bytes; 0 if it cannot be read. */
static unsigned long long
rss_of(pid_t pid)
{
    char path[64], buf[128];
    unsigned long long size, resident;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/statm", (long) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    return resident * (unsigned long long) sysconf(_SC_PAGESIZE);
}

/* max_worker_memory, sampled here once a loop so that the request path
   pays nothing for it (Gunicorn #3581). */
static void
check_memory(nw_arbiter *a)
{
    unsigned long long limit =
        (unsigned long long) a->gen.settings->max_worker_memory << 20;

    if (limit == 0) {
        return;
    }
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        unsigned long long rss;
        if (c->stopping || c->too_big || child_state(a, c) != NW_SLOT_READY) {
            continue;
        }
        rss = rss_of(c->pid);
        if (rss > limit) {
            nw__log(NW_LOG_INFO,
                    "Worker (pid:%ld) uses %llu MiB, more than "
                    "max_worker_memory (%lld MiB): replacing it",
                    (long) c->pid, rss >> 20,
                    a->gen.settings->max_worker_memory);
            c->too_big = 1;
        }
    }
}

static void
signal_children(nw_arbiter *a, int sig)
{
    for (unsigned i = 0; i < a->nchildren; i++) {
        unsigned before = a->nchildren;
        stop_child(a, &a->children[i], sig);
        if (a->nchildren < before) {
            i--; /* the last one moved into this place */
        }
    }
}

/* Stop every worker: SIGTERM (graceful) or SIGQUIT (quick), wait up to
   graceful_timeout, then SIGKILL.  A quick-stop signal during a graceful
   stop turns it quick. */
static void
stop_workers(nw_arbiter *a, int graceful)
{
    uint64_t deadline = nw__monotonic_ns()
                        + (uint64_t) a->gen.settings->graceful_timeout
                              * 1000000000ull;
    struct pollfd pfd = {a->pipe[0], POLLIN, 0};
    /* a unix socket's file stays while another master uses it (USR2),
       and systemd's are systemd's */
    int unlink_unix = a->reexec_pid == 0 && a->master_pid == 0
                      && !a->systemd;

    run_master_point(a, NW_HOOK_STOPPING, NULL);
    nw__listen_close(&a->gen.listen, NULL, unlink_unix);
    if (a->next.settings != NULL) {
        nw__listen_close(&a->next.listen, NULL, unlink_unix);
    }
    signal_children(a, graceful ? SIGTERM : SIGQUIT);
    while (a->nchildren > 0 && nw__monotonic_ns() < deadline) {
        char sigs[64];
        ssize_t n;
        if (poll(&pfd, 1, 100) > 0) {
            n = read(a->pipe[0], sigs, sizeof(sigs));
            for (ssize_t i = 0; i < n; i++) {
                if (graceful && (sigs[i] == SIGINT || sigs[i] == SIGQUIT)) {
                    uint64_t quick = nw__monotonic_ns()
                                     + QUICK_STOP_MS * 1000000ull;
                    graceful = 0;
                    signal_children(a, SIGQUIT);
                    if (quick < deadline) {
                        deadline = quick;
                    }
                }
            }
        }
        reap(a);
    }
    if (a->nchildren > 0) {
        signal_children(a, SIGKILL);
        while (a->nchildren > 0) {
            int status;
            pid_t pid = waitpid(-1, &status, 0);
            nw_child *c;
            if (pid < 0) {
                break;
            }
            c = find_child(a, pid);
            if (c != NULL) {
                child_gone(a, c, status);
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * HUP: a new configuration, its workers, then the old ones go
 */

/* Errors the config readers print go to the log, line by line. */
static void
log_lines(int level, const char *text)
{
    while (text != NULL && *text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t) (nl - text) : strlen(text);
        if (n > 0) {
            nw__log(level, "%.*s", (int) n, text);
        }
        text = nl ? nl + 1 : NULL;
    }
}

static int
same_list(const nw_strlist *x, const nw_strlist *y)
{
    if (x->count != y->count) {
        return 0;
    }
    for (size_t i = 0; i < x->count; i++) {
        if (strcmp(x->items[i], y->items[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static void
reload(nw_arbiter *a)
{
    nw_settings *s;
    char *errors = NULL;
    size_t errlen = 0;
    FILE *err;
    char path[4096], why[1024];
    int rc;

    nw__log(NW_LOG_INFO, "Hang up: %s", a->master_name);
    if (a->next.settings != NULL) {
        /* as Gunicorn, which queues its signals: this HUP may carry a
           newer configuration than the one booting, so it is not lost but
           done once that reload settles (several coalesce: each reads the
           files as they are then) */
        nw__log(NW_LOG_INFO, "HUP deferred: the previous reload's workers "
                             "are still booting; reloading again once they "
                             "serve or fail");
        a->reload_pending = 1;
        return;
    }
    s = nw__xcalloc(1, sizeof(*s));
    nw__settings_init(s);
    err = open_memstream(&errors, &errlen);
    rc = nw__config_load(s, a->argc, a->argv, err, err);
    fclose(err);
    if (rc >= 0) {
        log_lines(NW_LOG_ERROR, errors);
        nw__log(NW_LOG_ERROR, "Reload failed: the configuration did not "
                              "load; the running workers keep serving");
        free(errors);
        nw__settings_free(s);
        free(s);
        return;
    }
    log_lines(NW_LOG_WARNING, errors);
    free(errors);
    {
        char aerr[512];
        if (nw__access_check(s, aerr, sizeof(aerr)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: access_log_format: %s", aerr);
            nw__log(NW_LOG_ERROR, "Reload failed: the configuration did not "
                                  "load; the running workers keep serving");
            nw__settings_free(s);
            free(s);
            return;
        }
    }
    a->next.settings = s;
    a->next.id = ++a->last_generation;
    if (nw__plugin_find(s->worker_class, s, path, sizeof(path), why,
                        sizeof(why))
            != NW_OK
        || nw__plugin_load(path, &nw__api, &a->next.cls, why, sizeof(why))
               != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", why);
        free_generation(&a->next);
        nw__log(NW_LOG_ERROR, "Reload failed: the worker class did not "
                              "load; the running workers keep serving");
        return;
    }
    if (nw__listen_open(a, s, &a->next.listen, &a->gen.listen) != NW_OK) {
        free_generation(&a->next);
        nw__log(NW_LOG_ERROR, "Reload failed: cannot listen as configured; "
                              "the running workers keep serving");
        return;
    }
    if (s->preload_app) {
        nw__log(NW_LOG_WARNING,
                "The app was loaded before forking (preload_app): a reload "
                "restarts the workers with the new configuration but not "
                "the app's code; send USR2, then TERM to the old master, to "
                "load new code");
    }
    if (!same_list(&a->gen.settings->hook_plugins, &s->hook_plugins)) {
        nw__log(NW_LOG_WARNING,
                "hook_plugins changed: plugins are loaded at start only; "
                "restart narwhal (or send USR2) to load them");
    }
    {
        char lerr[512];
        nw__logs_configure(s, 1, lerr, sizeof(lerr));
    }
    nw__hooks_activate(s);
    /* as Gunicorn's setup(): the number of workers is the configuration's
       again (TTIN/TTOU changes end here), nworkers_changed on every
       reload, before on_reload */
    a->num_workers_before_reload = a->num_workers;
    set_num_workers(a, s->workers, a->num_workers);
    /* Gunicorn's on_reload sees the new configuration, its sockets open,
       before its workers start */
    {
        nw_hook_ctx ctx;
        nw__arbiter_hook_ctx(a, &ctx, s);
        if (a->next.listen.count > 0) {
            ctx.nlisteners = a->next.listen.count;
            ctx.listeners = a->next.listen.items;
        }
        nw__hooks_run(NW_HOOK_ON_RELOAD, &ctx);
    }
}

/* ------------------------------------------------------------------------
 * Signals
 */

static int
handle_signal(nw_arbiter *a, int sig)
{
    char name[32];
    const char *abbrev;

    if (sig == SIGCHLD) {
        reap(a);
        return 0;
    }
    abbrev = sigabbrev_np(sig);
    snprintf(name, sizeof(name), "%s", abbrev ? abbrev : "?");
    for (char *p = name; *p; p++) {
        *p = (char) (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
    nw__log(NW_LOG_INFO, "Handling signal: %s", name);
    switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        stop_workers(a, sig == SIGTERM);
        nw__log(NW_LOG_INFO, "Shutting down: %s", a->master_name);
        return 1;
    case SIGHUP:
        reload(a);
        return 0;
    case SIGTTIN:
        set_num_workers(a, a->num_workers + 1, a->num_workers);
        return 0;
    case SIGTTOU:
        if (a->num_workers > 1) {
            set_num_workers(a, a->num_workers - 1, a->num_workers);
        }
        return 0;
    case SIGUSR1:
        nw__logs_reopen();
        for (unsigned i = 0; i < a->nchildren; i++) {
            kill(a->children[i].pid, SIGUSR1);
        }
        return 0;
    case SIGUSR2:
        if (a->reexec_pid != 0) {
            nw__log(NW_LOG_WARNING, "USR2 signal ignored. Child exists.");
        } else if (a->master_pid != 0) {
            nw__log(NW_LOG_WARNING, "USR2 signal ignored. Parent exists.");
        } else {
            a->reexec_pid = nw__reexec(a);
        }
        return 0;
    case SIGWINCH:
        if (a->gen.settings->daemon) {
            nw__log(NW_LOG_INFO, "graceful stop of workers");
            set_num_workers(a, 0, a->num_workers);
            for (unsigned i = 0; i < a->nchildren; i++) {
                if (!a->children[i].stopping) {
                    unsigned before = a->nchildren;
                    stop_child(a, &a->children[i], SIGTERM);
                    i -= a->nchildren < before;
                }
            }
        } else {
            nw__log(NW_LOG_DEBUG, "SIGWINCH ignored. Not daemonized");
        }
        return 0;
    default:
        return 0;
    }
}

/* enable_backlog_metric (Gunicorn 24.1): the clients waiting in the TCP
   listeners' accept queues, once a second, as a debug line whose metric
   the statsd plugin sends as the histogram gunicorn.backlog. */
static void
report_backlog(nw_arbiter *a)
{
    static uint64_t next_ns;
    uint64_t now = nw__monotonic_ns();
    long total = -1;
    char value[32];

    if (now < next_ns) {
        return;
    }
    next_ns = now + 1000000000u;
    for (unsigned i = 0; i < a->gen.listen.count; i++) {
        long n = nw__listener_backlog(&a->gen.listen.items[i]);
        if (n >= 0) {
            total = (total < 0 ? 0 : total) + n;
        }
    }
    if (total >= 0) {
        snprintf(value, sizeof(value), "%ld", total);
        nw__log_ex(NW_LOG_DEBUG, 0, "gunicorn.backlog", value, "histogram",
                   "socket backlog: %ld", total);
    }
}

/* After each pass: the worker count when it changed (Gunicorn logs it and
   its statsd logger makes it the gunicorn.workers gauge), then the tick
   point. */
static void
tick(nw_arbiter *a)
{
    unsigned n = running_workers(a);

    if (n != a->logged_workers) {
        a->logged_workers = n;
        nw__log(NW_LOG_DEBUG, "%u workers", n);
    }
    if (a->gen.settings->enable_backlog_metric) {
        report_backlog(a);
    }
    if (nw__hooks_any(NW_HOOK_TICK, NULL)) {
        run_master_point(a, NW_HOOK_TICK, NULL);
    }
}

/* Poll briefly while something waits on the workers' state. */
static int
loop_timeout(nw_arbiter *a)
{
    uint64_t now = nw__monotonic_ns();

    if (a->next.settings != NULL) {
        return BUSY_LOOP_MS;
    }
    for (unsigned i = 0; i < a->nchildren; i++) {
        const nw_child *c = &a->children[i];
        uint32_t st = child_state(a, c);
        if (!c->stopping
            && (st == NW_SLOT_BOOTING || st == NW_SLOT_RETIRING
                || c->too_big)) {
            return BUSY_LOOP_MS;
        }
    }
    if (a->spawn_after_ns > now) {
        uint64_t wait_ms = (a->spawn_after_ns - now) / 1000000u + 1;
        return wait_ms < LOOP_MS ? (int) wait_ms : LOOP_MS;
    }
    return LOOP_MS;
}

int
nw__arbiter_run(nw_arbiter *a)
{
    struct pollfd pfd;

    a->children = nw__xcalloc(a->sb.nslots, sizeof(nw_child));
    a->last_generation = a->gen.id;
    a->logged_workers = (unsigned) -1;
    if (setup_signals(a) != NW_OK) {
        return NW_EXIT_CONFIG;
    }
    pfd.fd = a->pipe[0];
    pfd.events = POLLIN;
    /* Gunicorn's when_ready: sockets bound, before the first fork */
    run_master_point(a, NW_HOOK_WHEN_READY, NULL);
    manage_workers(a);
    tick(a);
    for (;;) {
        char sigs[64];
        ssize_t n;
        int rc = poll(&pfd, 1, loop_timeout(a));

        if (rc > 0 && (n = read(a->pipe[0], sigs, sizeof(sigs))) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (handle_signal(a, sigs[i])) {
                    return NW_EXIT_OK;
                }
            }
        }
        reap(a);
        if (a->halt_code != 0) {
            stop_workers(a, 1);
            nw__log(NW_LOG_INFO, "Shutting down: %s", a->master_name);
            nw__log(NW_LOG_INFO, "Reason: %s", a->halt_reason);
            return a->halt_code;
        }
        nw__maybe_promote(a);
        murder_workers(a);
        check_memory(a);
        manage_workers(a);
        if (a->reload_pending && a->next.settings == NULL) {
            a->reload_pending = 0;
            reload(a);
        }
        tick(a);
    }
}
