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

#include "api.h"
#include "arbiter.h"
#include "config_files.h"
#include "exitcodes.h"
#include "log.h"
#include "memory.h"
#include "plugin.h"
#include "proctitle.h"
#include "python_arbiter.h"
#include "sockets.h"
#include "worker_core.h"

#define LOOP_MS 1000
#define BUSY_LOOP_MS 100 /* while workers boot or wait to be replaced */
#define ABORT_GRACE_NS 1000000000ull /* SIGKILL this long after SIGABRT */
#define QUICK_STOP_MS 2000
#define MIN_BACKOFF_NS 100000000ull   /* 0.1 s */
#define MAX_BACKOFF_NS 5000000000ull  /* 5 s */

static int signal_pipe_w = -1;

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
    nw__scoreboard_release(&a->sb, c->slot);
    *c = a->children[--a->nchildren];
}

static void
stop_child(nw_child *c, int sig)
{
    c->stopping = 1;
    kill(c->pid, sig);
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
            stop_child(c, SIGTERM);
        }
    }
    nw__listen_close(&a->next.listen, &a->gen.listen, 1);
    free_generation(&a->next);
    a->num_workers = a->gen.settings->workers;
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
        remove_child(a, c);
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
    c->age = ++a->next_age;
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

    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        if (c->stopping) {
            continue;
        }
        if (replaceable(a, c)) {
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
        stop_child(oldest, SIGTERM);
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
        if (!c->stopping && replaceable(a, c)) {
            if (child_state(a, c) == NW_SLOT_RETIRING) {
                nw__log(NW_LOG_INFO,
                        "Worker (pid:%ld) retires: its successor is ready",
                        (long) c->pid);
            }
            stop_child(c, SIGTERM);
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
        stop_child(&a->children[i], sig);
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
                remove_child(a, c);
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
        nw__log(NW_LOG_WARNING,
                "HUP ignored: the previous reload's workers are still "
                "booting");
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
    if (a->gen.settings->workers != s->workers) {
        a->num_workers = s->workers;
    }
    nw__log_set_level(nw__log_level_from_name(s->loglevel));
    nw__log_reopen(s->errorlog);
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
        a->num_workers++;
        return 0;
    case SIGTTOU:
        if (a->num_workers > 1) {
            a->num_workers--;
        }
        return 0;
    case SIGUSR1:
        nw__log_reopen(a->gen.settings->errorlog);
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
            a->num_workers = 0;
            for (unsigned i = 0; i < a->nchildren; i++) {
                if (!a->children[i].stopping) {
                    stop_child(&a->children[i], SIGTERM);
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
    a->num_workers = a->gen.settings->workers;
    a->last_generation = a->gen.id;
    if (setup_signals(a) != NW_OK) {
        return NW_EXIT_CONFIG;
    }
    pfd.fd = a->pipe[0];
    pfd.events = POLLIN;
    manage_workers(a);
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
    }
}
