#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "arbiter.h"
#include "exitcodes.h"
#include "log.h"
#include "memory.h"
#include "python_arbiter.h"
#include "sockets.h"
#include "worker_core.h"

#define LOOP_MS 1000
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
halt_with(nw_arbiter *a, const char *reason, int code)
{
    if (a->halt_code == 0) {
        a->halt_code = code;
        a->halt_reason = reason;
    }
}

/* A worker that dies before it booted makes the next spawn wait, doubling
   up to MAX_BACKOFF_NS, so a crashing app does not fork in a tight loop; a
   worker that served resets the wait. */
static void
note_death(nw_arbiter *a, const nw_child *c)
{
    uint32_t state = atomic_load(&a->sb.slots[c->slot].state);

    if (state == NW_SLOT_BOOTING) {
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
reap(nw_arbiter *a)
{
    int status;
    pid_t pid;
    char name[32];

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        nw_child *c = find_child(a, pid);
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
            if (code == NW_EXIT_WORKER_BOOT) {
                halt_with(a, "Worker failed to boot.", code);
            } else if (code == NW_EXIT_APP_LOAD) {
                halt_with(a, "App failed to load.", code);
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
spawn_worker(nw_arbiter *a)
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
            .settings = a->settings,
            .cls = a->cls,
            .api = &nw__api,
            .listeners = a->listeners,
            .nlisteners = a->nlisteners,
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
    c->age = ++a->next_age;
}

static unsigned
active_children(const nw_arbiter *a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < a->nchildren; i++) {
        n += !a->children[i].retiring;
    }
    return n;
}

static void
manage_workers(nw_arbiter *a)
{
    unsigned active = active_children(a);

    while (active < (unsigned) a->num_workers && a->nchildren < a->sb.nslots
           && nw__monotonic_ns() >= a->spawn_after_ns) {
        unsigned before = a->nchildren;
        spawn_worker(a);
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
            if (!c->retiring && (oldest == NULL || c->age < oldest->age)) {
                oldest = c;
            }
        }
        if (oldest == NULL) {
            break;
        }
        oldest->retiring = 1;
        kill(oldest->pid, SIGTERM);
        active--;
    }
}

static void
murder_workers(nw_arbiter *a)
{
    uint64_t now = nw__monotonic_ns();
    uint64_t limit = (uint64_t) a->settings->timeout * 1000000000ull;

    if (limit == 0) {
        return;
    }
    for (unsigned i = 0; i < a->nchildren; i++) {
        nw_child *c = &a->children[i];
        uint64_t beat = atomic_load_explicit(&a->sb.slots[c->slot].heartbeat_ns,
                                             memory_order_relaxed);
        if (now - beat <= limit) {
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

static void
signal_children(nw_arbiter *a, int sig)
{
    for (unsigned i = 0; i < a->nchildren; i++) {
        kill(a->children[i].pid, sig);
    }
}

/* Stop every worker: SIGTERM (graceful) or SIGQUIT (quick), wait up to
   graceful_timeout, then SIGKILL.  A quick-stop signal during a graceful
   stop turns it quick. */
static void
stop_workers(nw_arbiter *a, int graceful)
{
    uint64_t deadline = nw__monotonic_ns()
                        + (uint64_t) a->settings->graceful_timeout
                              * 1000000000ull;
    struct pollfd pfd = {a->pipe[0], POLLIN, 0};

    for (unsigned i = 0; i < a->nlisteners; i++) {
        nw__listener_close(&a->listeners[i], 1);
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
        nw__log(NW_LOG_INFO, "Shutting down: Master");
        return 1;
    case SIGTTIN:
        a->num_workers++;
        return 0;
    case SIGTTOU:
        if (a->num_workers > 1) {
            a->num_workers--;
        }
        return 0;
    default:
        nw__log(NW_LOG_WARNING,
                "signal %s is not handled by this narwhal yet; ignored",
                name);
        return 0;
    }
}

int
nw__arbiter_run(nw_arbiter *a)
{
    struct pollfd pfd;

    a->children = nw__xcalloc(a->sb.nslots, sizeof(nw_child));
    a->num_workers = a->settings->workers;
    if (setup_signals(a) != NW_OK) {
        return NW_EXIT_CONFIG;
    }
    pfd.fd = a->pipe[0];
    pfd.events = POLLIN;
    manage_workers(a);
    for (;;) {
        char sigs[64];
        ssize_t n;
        int timeout = LOOP_MS;
        int rc;
        uint64_t now = nw__monotonic_ns();

        if (a->spawn_after_ns > now
            && active_children(a) < (unsigned) a->num_workers) {
            uint64_t wait_ms = (a->spawn_after_ns - now) / 1000000u + 1;
            timeout = wait_ms < LOOP_MS ? (int) wait_ms : LOOP_MS;
        }
        rc = poll(&pfd, 1, timeout);

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
            nw__log(NW_LOG_INFO, "Shutting down: Master");
            nw__log(NW_LOG_INFO, "Reason: %s", a->halt_reason);
            return a->halt_code;
        }
        murder_workers(a);
        manage_workers(a);
    }
}
