/*
 * The ev worker class: a libev event loop, many connections per worker
 * process, the app called on the loop's thread.  Built only on the public
 * headers and the api table, as a third party would build it: the core's
 * event-mode connections (api->conn_*) do the HTTP, this file does the
 * waiting.
 *
 * - Accepting: the listeners sit in an epoll set of their own, added with
 *   EPOLLEXCLUSIVE (libev's epoll backend cannot ask for the flag).  The
 *   kernel makes the wake-up exclusive only for a worker waiting on that
 *   set itself, and favours workers in the order they joined a
 *   listener's queue: so a worker with no connection waits there
 *   directly (idle_wait), and with several workers each accepts one
 *   client per turn and joins again at the back (rotate).  A busy worker
 *   watches the set through libev.  With reuse_port each worker has its
 *   own socket and the kernel spreads by hash.
 * - Timeouts: one list and one ev_timer per kind (keep-alive idle, slow
 *   head, stalled body, stalled write, lingering close); a list's entries
 *   share one duration, so appending keeps it sorted by deadline and the
 *   timer only ever waits for the head (libev's "be smart about
 *   timeouts", method 4).  No scan, O(1) per change.
 * - The GIL is held while callbacks run and released only around the
 *   poll (ev_set_loop_release_cb): once per loop iteration, however many
 *   events it brings.
 * - Writing: the responses made in one loop iteration go out together at
 *   its end (an ev_check watcher of the lowest priority), so a client
 *   reading several is woken once; within FLUSH_WINDOW, and at once after
 *   an app call longer than that.
 *
 * Built a second time with NW_GTHREAD defined, this file is the gthread
 * class: the same loop holds the listeners and the connections while
 * they wait (keep-alive, slow heads and bodies, refusals), and a request
 * ready for the app goes to a pool of `threads` threads (pool.c), which
 * call the app and write the whole response, waiting for the socket
 * without the GIL, then hand the connection back.  Every api->conn_* call
 * is made with the GIL held, on whichever thread, so the core's state is
 * never touched by two threads at once.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include <narwhal/narwhal.h>

#ifdef NW_GTHREAD
#include "../gthread/pool.h"
#define CLASS_NAME "gthread"
#else
#define CLASS_NAME "ev"
#endif

/* Requests served back to back on one connection (pipelining) before the
   others get a turn. */
#define PIPELINE_BURST 16
/* Connections accepted from one listener per wake-up: small, so workers
   sharing a listener take turns. */
#define ACCEPT_BURST 8
/* Spare connection slots kept for reuse. */
#define SPARE_SLOTS 64
/* How long a lingering close may read off the client's leftovers. */
#define LINGER_SECONDS 2.0

enum tlist {
    T_IDLE,   /* kept alive, waiting for a request: keepalive */
    T_HEAD,   /* a request head due or arriving: header_timeout */
    T_BODY,   /* a body arriving: body_timeout since the last read */
    T_WRITE,  /* a response waiting for the client to read: timeout */
    T_LINGER, /* closing, reading off leftovers */
    T_FLUSH,  /* a response made this turn of the loop, to write at its end */
    T_COUNT,
    T_NONE = T_COUNT
};

typedef struct econn {
    ev_io io;                 /* first: the watcher is the connection */
    nw_conn *c;
    int fd;
    int state;                /* NW_CONN_* the core last said */
    enum tlist list;
    ev_tstamp deadline;
    struct econn *prev, *next; /* in its timeout list, or the free list */
#ifdef NW_GTHREAD
    pool_item item;           /* with a pool thread: in no list */
#endif
} econn;

struct tlist_head {
    econn *first, *last;
    ev_tstamp timeout;        /* 0: no limit */
    ev_timer timer;
};

static const nw_api *api;
static nw_worker *self;
static struct ev_loop *loop;
static void *gil;

static struct tlist_head lists[T_COUNT];
static econn *spare;
static unsigned nspare;
static unsigned nconns, max_conns;
static int stopping;             /* NW_RUN or the kind of stop */
static int done;                 /* leave the loop */

static int accept_ep = -1;       /* the listeners' epoll set */
static int accepting;            /* the listeners are in it */
static int rotate;               /* share listeners: rotate after accepting */
/* The wake-up descriptor's entry in the accept set (never a listener's
   index): an idle worker waiting there directly hears signals too. */
#define WAKEUP_MARK 0xffffffffu
static unsigned naccepted;       /* clients accepted so far */
static ev_io accept_io;
static ev_timer accept_retry;    /* after EMFILE and friends */
static ev_io wakeup_io;
static ev_timer heartbeat;
static ev_timer graceful;
static ev_tstamp graceful_timeout;

static const char *const list_names[T_COUNT] = {
    "keep-alive idle", "header", "body", "write", "linger", "flush",
};

/* ------------------------------------------------------------------------
 * Timeout lists
 */

static void
list_unlink(econn *e)
{
    struct tlist_head *l;

    if (e->list == T_NONE) {
        return;
    }
    l = &lists[e->list];
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        l->first = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        l->last = e->prev;
    }
    e->prev = e->next = NULL;
    e->list = T_NONE;
}

/* e (in no list) at the end of list k */
static void
list_append(econn *e, enum tlist k)
{
    struct tlist_head *l = &lists[k];

    e->list = k;
    e->prev = l->last;
    e->next = NULL;
    if (l->last != NULL) {
        l->last->next = e;
    } else {
        l->first = e;
    }
    l->last = e;
}

/* Put e in list k with a deadline from now, at the end (every entry of a
   list has the same duration, so the list stays sorted). */
static void
list_put(econn *e, enum tlist k)
{
    struct tlist_head *l = &lists[k];

    list_unlink(e);
    if (l->timeout <= 0) {
        return;
    }
    e->deadline = ev_now(loop) + l->timeout;
    list_append(e, k);
    if (!ev_is_active(&l->timer)) {
        ev_timer_set(&l->timer, l->timeout, 0.);
        ev_timer_start(loop, &l->timer);
    }
}

/* The responses made in one turn of the loop are written at its end, all
   together (as h2o does): a client that reads them in one go is woken
   once instead of once per response, which costs both sides a scheduler
   wake-up each time.  Never for long: a response waits at most
   FLUSH_WINDOW plus one app call, and the response of an app call that
   took longer than that goes out at once with those waiting. */
#define FLUSH_WINDOW 100e-6
static ev_check flush_watcher; /* lowest priority: after every callback */
static int flushing;
static ev_tstamp flush_since; /* when the first waiting response was made */
static ev_tstamp call_mark;   /* when the last app call of this turn ended */

static void conn_end(econn *e);

static void
on_list_timer(struct ev_loop *lp, ev_timer *t, int revents)
{
    struct tlist_head *l = t->data;
    enum tlist k = (enum tlist) (l - lists);
    ev_tstamp now = ev_now(lp);

    (void) revents;
    /* a hundredth of a second early is on time: no second wake-up */
    while (l->first != NULL && l->first->deadline <= now + 0.01) {
        econn *e = l->first;
        api->log(NW_LOG_DEBUG, "closing a connection: %s timeout",
                 list_names[k]);
        conn_end(e);
    }
    if (l->first != NULL) {
        ev_timer_set(t, l->first->deadline - now, 0.);
        ev_timer_start(lp, t);
    }
}

/* ------------------------------------------------------------------------
 * Accepting
 */

static void
accept_resume(void)
{
    struct epoll_event ev;

    if (accepting || stopping != NW_RUN || accept_ep < 0) {
        return;
    }
    for (unsigned i = 0; i < self->nlisteners; i++) {
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.u32 = i;
        if (epoll_ctl(accept_ep, EPOLL_CTL_ADD, self->listeners[i].fd, &ev)
            != 0) {
            /* kernels before 4.5 refuse the flag */
            ev.events = EPOLLIN;
            epoll_ctl(accept_ep, EPOLL_CTL_ADD, self->listeners[i].fd, &ev);
        }
    }
    accepting = 1;
}

/* Out of the set: the kernel wakes another worker for new clients. */
static void
accept_pause(void)
{
    if (!accepting) {
        return;
    }
    for (unsigned i = 0; i < self->nlisteners; i++) {
        epoll_ctl(accept_ep, EPOLL_CTL_DEL, self->listeners[i].fd, NULL);
    }
    accepting = 0;
}

static void on_conn_io(struct ev_loop *lp, ev_io *w, int revents);
static void drive(econn *e, int st);

static econn *
slot_get(void)
{
    econn *e = spare;

    if (e != NULL) {
        spare = e->next;
        nspare--;
        e->next = NULL;
        return e;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->c = api->conn_new(self);
    e->list = T_NONE;
    e->fd = -1;
    return e;
}

static void
slot_put(econn *e)
{
    if (nspare >= SPARE_SLOTS) {
        api->conn_free(e->c);
        free(e);
        return;
    }
    e->next = spare;
    spare = e;
    nspare++;
}

/* Accept from listener l until it is empty, the burst is spent or the
   worker is full.  1 if accept() failed for lack of descriptors. */
static int
accept_from(const nw_listener *l, int burst)
{
    for (int i = 0; i < burst; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        econn *e;
        int fd;

        if (nconns >= max_conns && lists[T_IDLE].first == NULL) {
            return 0;
        }
        fd = accept4(l->fd, (struct sockaddr *) &peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            api->log(NW_LOG_ERROR, "accept on %s failed: %s", l->url,
                     strerror(errno));
            return 1;
        }
        if (nconns >= max_conns) {
            /* make room: the oldest idle keep-alive connection goes */
            conn_end(lists[T_IDLE].first);
        }
        e = slot_get();
        if (e == NULL) {
            close(fd);
            api->log(NW_LOG_CRITICAL, CLASS_NAME " worker: out of memory");
            return 1;
        }
        e->fd = fd;
        nconns++;
        naccepted++;
        ev_io_init(&e->io, on_conn_io, fd, EV_READ);
        e->state = -1;
        drive(e, api->conn_open(e->c, fd, (struct sockaddr *) &peer, len,
                                l));
    }
    return 0;
}

static void
accept_all(int burst)
{
    struct epoll_event evs[16];
    int n = epoll_wait(accept_ep, evs, 16, 0);
    unsigned before = naccepted;
    int failed = 0;

    for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 != WAKEUP_MARK) {
            failed |= accept_from(&self->listeners[evs[i].data.u32], burst);
        }
    }
    if (rotate && naccepted != before && !failed) {
        /* The kernel wakes the first idle worker in a listener's wait
           queue, in the order they joined it: left alone, the first
           worker takes most clients.  Joining again puts this worker
           last, so the next client goes to the next idle one. */
        accept_pause();
        accept_resume();
    }
    if (failed) {
        /* no descriptor left: wait a little rather than spin */
        accept_pause();
        ev_io_stop(loop, &accept_io);
        ev_timer_set(&accept_retry, 0.5, 0.);
        ev_timer_start(loop, &accept_retry);
    } else if (nconns >= max_conns && lists[T_IDLE].first == NULL) {
        accept_pause();
    }
}

static void
on_accept(struct ev_loop *lp, ev_io *w, int revents)
{
    (void) lp;
    (void) w;
    (void) revents;
    /* sharing the listeners with other workers, one client per turn */
    accept_all(rotate ? 1 : ACCEPT_BURST);
}

static void
on_accept_retry(struct ev_loop *lp, ev_timer *t, int revents)
{
    (void) t;
    (void) revents;
    if (stopping == NW_RUN) {
        ev_io_start(lp, &accept_io);
        accept_resume();
    }
}

/* A connection closed or went idle: room to accept again? */
static void
room_made(void)
{
    if (!accepting && (nconns < max_conns || lists[T_IDLE].first != NULL)
        && !ev_is_active(&accept_retry)) {
        accept_resume();
    }
}

/* ------------------------------------------------------------------------
 * Connections
 */

static void
loop_done(void)
{
    done = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void
conn_end(econn *e)
{
    list_unlink(e);
    ev_io_stop(loop, &e->io);
    api->conn_close(e->c);
    e->fd = -1;
    nconns--;
    slot_put(e);
    if (stopping == NW_RUN) {
        room_made();
    } else if (nconns == 0) {
        loop_done();
    }
}

static void
watch(econn *e, int events)
{
    if (ev_is_active(&e->io)) {
        if ((e->io.events & (EV_READ | EV_WRITE)) == events) {
            return;
        }
        ev_io_stop(loop, &e->io);
    }
    ev_io_modify(&e->io, events);
    ev_io_start(loop, &e->io);
}

static void on_flush(struct ev_loop *lp, ev_check *w, int revents);

#ifdef NW_GTHREAD
/* ------------------------------------------------------------------------
 * gthread: the requests run on the pool's threads
 */

static ev_async pool_done; /* a thread handed connections back */
static unsigned nbusy;     /* connections with the pool, queued or running */
static int write_wait_ms;  /* the timeout setting: a client not reading */

static econn *
item_conn(pool_item *it)
{
    return (econn *) ((char *) it - offsetof(econn, item));
}

/* On a pool thread, without the GIL: wait until fd takes more.  0 when
   the client read nothing for write_wait_ms. */
static int
wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;

    do {
        n = poll(&p, 1, write_wait_ms);
    } while (n < 0 && errno == EINTR);
    return n != 0;
}

/* On a pool thread: the ready request, and those pipelined behind it, to
   the end of their responses.  Returns what the connection waits for
   next, for the loop. */
static int
serve_ready(pool_item *it)
{
    econn *e = item_conn(it);
    int st = NW_CONN_READY;

    api->gil_acquire(NULL);
    for (int burst = 0; st == NW_CONN_READY && burst < PIPELINE_BURST;
         burst++) {
        api->conn_call(e->c);
        st = api->conn_send(e->c);
        while (st == NW_CONN_WRITE) {
            void *ts = api->gil_release();
            int ok = wait_writable(e->fd);
            api->gil_acquire(ts);
            if (!ok) {
                api->log(NW_LOG_DEBUG, "closing a connection: %s timeout",
                         list_names[T_WRITE]);
                /* the loop closes it, which ends the response */
                st = NW_CONN_CLOSE;
                break;
            }
            st = api->conn_send(e->c);
        }
    }
    api->gil_release();
    return st;
}

static void
notify_loop(void)
{
    ev_async_send(loop, &pool_done);
}

static void
to_pool(econn *e)
{
    list_unlink(e);
    if (ev_is_active(&e->io)) {
        ev_io_stop(loop, &e->io);
    }
    e->state = NW_CONN_READY;
    nbusy++;
    pool_push(&e->item);
}

static void
on_pool_done(struct ev_loop *lp, ev_async *w, int revents)
{
    pool_item *it = pool_take_done();

    (void) lp;
    (void) w;
    (void) revents;
    while (it != NULL) {
        econn *e = item_conn(it);
        it = it->next;
        nbusy--;
        e->state = -1; /* a new wait: a new deadline */
        drive(e, e->item.result);
    }
}
#endif

/* Act on what the core says the connection waits for. */
static void
drive(econn *e, int st)
{
    int burst = 0;

#ifdef NW_GTHREAD
    if (st == NW_CONN_READY) {
        to_pool(e);
        return;
    }
#endif
    while (st == NW_CONN_READY) {
        if (++burst > PIPELINE_BURST) {
            /* other connections first: come back when writable, which a
               socket with nothing queued is at once */
            list_unlink(e);
            e->state = st;
            watch(e, EV_WRITE);
            return;
        }
        if (!flushing) {
            /* the call started when the last one of this turn ended, or
               when the loop woke: one clock read per request */
            ev_tstamp t0 = call_mark > 0 ? call_mark : ev_now(loop), t1;
            api->conn_call(e->c);
            t1 = call_mark = ev_time();
            if (lists[T_FLUSH].first == NULL) {
                flush_since = t1;
            }
            list_unlink(e);
            list_append(e, T_FLUSH); /* no deadline: flushed this turn */
            e->state = NW_CONN_WRITE;
            if (t1 - t0 > FLUSH_WINDOW || t1 - flush_since > FLUSH_WINDOW) {
                on_flush(loop, &flush_watcher, 0);
            }
            return;
        }
        api->conn_call(e->c);
        st = api->conn_send(e->c);
        e->state = -1; /* what follows is a new wait: a new deadline */
    }
    switch (st) {
    case NW_CONN_CLOSE:
        conn_end(e);
        return;
    case NW_CONN_IDLE:
        if (e->state != st) {
            list_put(e, T_IDLE);
        }
        watch(e, EV_READ);
        break;
    case NW_CONN_HEAD:
        /* the deadline counts from the first time: slowloris's bytes do
           not move it */
        if (e->state != st) {
            list_put(e, T_HEAD);
        }
        watch(e, EV_READ);
        break;
    case NW_CONN_BODY:
        list_put(e, T_BODY);
        watch(e, EV_READ);
        break;
    case NW_CONN_WRITE:
        list_put(e, T_WRITE);
        watch(e, EV_WRITE);
        break;
    case NW_CONN_LINGER:
        if (e->state != st) {
            list_put(e, T_LINGER);
        }
        watch(e, EV_READ);
        break;
    default:
        conn_end(e);
        return;
    }
    e->state = st;
    if (st == NW_CONN_IDLE && stopping != NW_RUN) {
        conn_end(e);
    } else if (st == NW_CONN_IDLE && !accepting) {
        room_made();
    }
}

static void
on_flush(struct ev_loop *lp, ev_check *w, int revents)
{
    (void) lp;
    (void) w;
    flushing = 1;
    while (lists[T_FLUSH].first != NULL) {
        econn *e = lists[T_FLUSH].first;
        list_unlink(e);
        e->state = -1;
        drive(e, api->conn_send(e->c));
    }
    flushing = 0;
    if (revents & EV_CHECK) {
        call_mark = 0; /* the turn is over */
    }
}

static void
on_conn_io(struct ev_loop *lp, ev_io *w, int revents)
{
    econn *e = (econn *) w;

    (void) lp;
    if (e->state == NW_CONN_WRITE || e->state == NW_CONN_READY) {
        if (revents & EV_WRITE) {
            drive(e, e->state == NW_CONN_READY ? NW_CONN_READY
                                               : api->conn_send(e->c));
        }
        return;
    }
    drive(e, api->conn_recv(e->c));
}

/* ------------------------------------------------------------------------
 * Worker duties
 */

static void
on_heartbeat(struct ev_loop *lp, ev_timer *t, int revents)
{
    (void) lp;
    (void) t;
    (void) revents;
    api->heartbeat(self);
}

static void
on_graceful_timeout(struct ev_loop *lp, ev_timer *t, int revents)
{
    (void) t;
    (void) revents;
    api->log(NW_LOG_INFO, "graceful_timeout: closing %u connection(s) "
                          "still open",
             nconns);
    (void) lp;
    loop_done();
}

static void
begin_stop(int how)
{
    stopping = how;
    if (how == NW_STOP_QUICK) {
        loop_done();
        return;
    }
    /* graceful: serve what already waits in the backlog (Gunicorn
       #3397), accept nothing more, close the idle connections, let the
       requests in flight finish within graceful_timeout */
    if (accepting) {
        accept_all(max_conns);
    }
    accept_pause();
    ev_io_stop(loop, &accept_io);
    ev_timer_stop(loop, &accept_retry);
    while (lists[T_IDLE].first != NULL) {
        conn_end(lists[T_IDLE].first);
    }
    if (nconns == 0) {
        loop_done();
        return;
    }
    ev_timer_set(&graceful, graceful_timeout, 0.);
    ev_timer_start(loop, &graceful);
}

static void
on_wakeup(struct ev_loop *lp, ev_io *w, int revents)
{
    int st = api->should_stop(self);

    (void) lp;
    (void) w;
    (void) revents;
    if (st != NW_RUN && (stopping == NW_RUN || st == NW_STOP_QUICK)
        && st != stopping) {
        begin_stop(st);
    }
}

static void
release_gil(struct ev_loop *lp)
{
    (void) lp;
    gil = api->gil_release();
}

static void
acquire_gil(struct ev_loop *lp)
{
    (void) lp;
    api->gil_acquire(gil);
}

static int
setting(const nw_config *cfg, const char *name, long long dflt)
{
    long long v;
    if (api->config_int(cfg, name, &v) != NW_OK) {
        return (int) dflt;
    }
    return v > 0x7fffffff ? 0x7fffffff : (int) v;
}

static int
evw_init(nw_worker *w)
{
    const nw_config *cfg = w->cfg;
    int v;

    if (ev_version_major() != EV_VERSION_MAJOR
        || ev_version_minor() < EV_VERSION_MINOR) {
        api->log(NW_LOG_ERROR,
                 CLASS_NAME " worker: built with libev %d.%d, running with "
                            "%d.%d: rebuild the plugin",
                 EV_VERSION_MAJOR, EV_VERSION_MINOR, ev_version_major(),
                 ev_version_minor());
        return NW_ERROR;
    }
    if (!NW_API_HAS(api, conn_free)) {
        api->log(NW_LOG_ERROR,
                 CLASS_NAME " worker: this narwhal has no event-mode "
                            "connections (ABI 1.1): upgrade narwhal");
        return NW_ERROR;
    }
    self = w;
    v = setting(cfg, "worker_connections", 1000);
    max_conns = v > 0 ? (unsigned) v : 1;
    {
        int reuse = 0;
        api->config_bool(cfg, "reuse_port", &reuse);
        /* with reuse_port the kernel spreads clients over the workers'
           own sockets */
        rotate = !reuse && setting(cfg, "workers", 1) > 1;
    }
    lists[T_IDLE].timeout = setting(cfg, "keepalive", 2);
    lists[T_HEAD].timeout = setting(cfg, "header_timeout", 20);
    lists[T_BODY].timeout = setting(cfg, "body_timeout", 30);
    lists[T_WRITE].timeout = setting(cfg, "timeout", 30);
    lists[T_LINGER].timeout = LINGER_SECONDS;
    v = setting(cfg, "graceful_timeout", 30);
    /* a little before the arbiter's own deadline, so the worker leaves
       by itself */
    graceful_timeout = v > 1 ? v - 0.5 : (v > 0 ? v * 0.75 : 0.);

    loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (loop == NULL) {
        loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    }
    if (loop == NULL) {
        api->log(NW_LOG_ERROR,
                 CLASS_NAME " worker: cannot create the event loop");
        return NW_ERROR;
    }
    accept_ep = epoll_create1(EPOLL_CLOEXEC);
    if (accept_ep < 0) {
        api->log(NW_LOG_ERROR, CLASS_NAME " worker: epoll_create1: %s",
                 strerror(errno));
        return NW_ERROR;
    }
    for (int k = 0; k < T_COUNT; k++) {
        ev_init(&lists[k].timer, on_list_timer);
        lists[k].timer.data = &lists[k];
    }
    {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u32 = WAKEUP_MARK;
        if (epoll_ctl(accept_ep, EPOLL_CTL_ADD, w->wakeup_fd, &ev) != 0) {
            api->log(NW_LOG_ERROR, CLASS_NAME " worker: epoll_ctl: %s",
                     strerror(errno));
            return NW_ERROR;
        }
    }
    ev_io_init(&accept_io, on_accept, accept_ep, EV_READ);
    ev_init(&accept_retry, on_accept_retry);
    ev_io_init(&wakeup_io, on_wakeup, w->wakeup_fd, EV_READ);
    ev_timer_init(&heartbeat, on_heartbeat,
                  w->heartbeat_interval_ms / 1000.,
                  w->heartbeat_interval_ms / 1000.);
    ev_init(&graceful, on_graceful_timeout);
    ev_check_init(&flush_watcher, on_flush);
    ev_set_priority(&flush_watcher, EV_MINPRI);
#ifdef NW_GTHREAD
    {
        char err[256];
        long long ms = (long long) lists[T_WRITE].timeout * 1000;
        v = setting(cfg, "threads", 1);
        write_wait_ms = lists[T_WRITE].timeout <= 0 ? -1
                        : ms > 0x7fffffff               ? 0x7fffffff
                                                        : (int) ms;
        ev_async_init(&pool_done, on_pool_done);
        if (pool_start(v > 0 ? (unsigned) v : 1, serve_ready, notify_loop,
                       err, sizeof(err))
            != NW_OK) {
            api->log(NW_LOG_ERROR, CLASS_NAME " worker: %s", err);
            return NW_ERROR;
        }
    }
#endif
    return NW_OK;
}

/* A worker with no connection waits on the accept set itself, not on
   libev's epoll set that contains it: only a direct waiter makes the
   kernel's EPOLLEXCLUSIVE wake-up exclusive (nested, every worker's set
   is woken and the one already running wins), so idle workers take
   clients strictly in turn.  Up to the next timer (the heartbeat, the
   accept retry); libev then runs what is due. */
static int
idle(void)
{
    return rotate && accepting && stopping == NW_RUN && nconns == 0
           && ev_pending_count(loop) == 0;
}

static void
idle_wait(void)
{
    struct epoll_event ev;
    ev_tstamp t = ev_timer_remaining(loop, &heartbeat);
    int ms;

    if (ev_is_active(&accept_retry)) {
        ev_tstamp r = ev_timer_remaining(loop, &accept_retry);
        t = r < t ? r : t;
    }
    ms = t <= 0 ? 0 : (int) (t * 1000.) + 1;
    gil = api->gil_release();
    (void) epoll_wait(accept_ep, &ev, 1, ms);
    api->gil_acquire(gil);
}

static int
ev_worker_run(nw_worker *w)
{
    /* run() is called without the GIL: it is held while callbacks run
       and released only around the poll */
    api->gil_acquire(NULL);
    ev_set_loop_release_cb(loop, release_gil, acquire_gil);

    ev_io_start(loop, &accept_io);
#ifdef NW_GTHREAD
    ev_async_start(loop, &pool_done);
#else
    ev_check_start(loop, &flush_watcher);
#endif
    accept_resume();
    ev_io_start(loop, &wakeup_io);
    ev_timer_start(loop, &heartbeat);
    api->heartbeat(w);
    if (api->should_stop(w) == NW_RUN) {
        while (!done) {
            if (idle()) {
                /* then run what is ready without blocking in libev's set,
                   so an idle worker keeps waiting where the wake-up is
                   exclusive even if another took the client */
                idle_wait();
                ev_run(loop, EVRUN_NOWAIT);
            } else {
                ev_run(loop, EVRUN_ONCE);
            }
        }
    }
    /* what is left (a quick stop, or graceful_timeout) closes now */
    stopping = stopping != NW_RUN ? stopping : NW_STOP_QUICK;
    for (int k = 0; k < T_COUNT; k++) {
        while (lists[k].first != NULL) {
            conn_end(lists[k].first);
        }
    }
#ifdef NW_GTHREAD
    {
        /* handed back but not yet seen: close them too */
        pool_item *it = pool_take_done();
        while (it != NULL) {
            econn *e = item_conn(it);
            it = it->next;
            nbusy--;
            conn_end(e);
        }
    }
    if (nbusy == 0) {
        gil = api->gil_release();
        pool_stop();
        api->gil_acquire(gil);
    } else {
        /* a quick stop, or graceful_timeout: requests still in the app
           are abandoned with the process, as Gunicorn's gthread does */
        api->log(NW_LOG_INFO, "leaving %u request(s) still in the app",
                 nbusy);
    }
#endif
    api->gil_release();
    return 0;
}

static const nw_worker_class ev_class = {
    NW_WORKER_CLASS_HEADER,
    .name = CLASS_NAME,
#ifdef NW_GTHREAD
    .summary = "a pool of threads runs the requests; an event loop holds "
               "the idle keep-alive connections",
    .flags = NW_WORKER_THREADED | NW_WORKER_KEEPALIVE,
#else
    .summary = "libev event loop: many keep-alive connections per process",
    .flags = NW_WORKER_ASYNC | NW_WORKER_KEEPALIVE,
#endif
    .instance_size = sizeof(nw_worker),
    .init = evw_init,
    .run = ev_worker_run,
};

NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
    return &ev_class;
}
