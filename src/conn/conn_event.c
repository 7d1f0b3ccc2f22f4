/* The event-mode driver behind api->conn_*: the sequence documented in
   conn.h run as a state machine over a non-blocking socket, so an
   event-loop class only waits for readiness and calls back.  The core
   does the reads and writes itself: the partial-write bookkeeping of
   iovecs, chunk frames, sendfile segments and canned replies stays next
   to the code that made them. */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn/conn.h"
#include "log/log.h"
#include "base/memory.h"
#include "worker/worker.h"
#include "wsgi/wsgi.h"

/* Closing with unread input makes the kernel reset the connection, which
   can destroy the response in flight: that input is read off first, at
   most this much (the class bounds the time). */
#define LINGER_BYTES (64 * 1024)
/* One conn_send writes at most this much, then lets other connections
   run (the watcher stays on: the socket is still writable). */
#define SEND_BUDGET (4 * 1024 * 1024)
/* One conn_recv reads at most this many times. */
#define RECV_ROUNDS 8

/* Pulls being written wait here between responses: idle connections hold
   none, a busy one takes no malloc. */
#define OUT_POOL 64
static nw_out *out_pool[OUT_POOL];
static unsigned out_pooled;

static nw_out *
out_get(void)
{
    return out_pooled > 0 ? out_pool[--out_pooled]
                          : nw__xmalloc(sizeof(nw_out));
}

static void
out_put(nw_out *o)
{
    if (out_pooled < OUT_POOL) {
        out_pool[out_pooled++] = o;
    } else {
        free(o);
    }
}

nw_conn *
nw__econn_new(nw_worker *w)
{
    nw_worker_core *core = w->core;
    nw_conn *c = nw__xmalloc(sizeof(*c));

    nw__conn_init(c, w, &core->cfg, NW_CONN_EVENT);
    nw__http_park(&c->http);
    c->estate = NW_CONN_CLOSE;
    return c;
}

/* Between requests: the read buffer goes back to its pool and a body's
   memory is let go, so an idle connection costs little. */
static void
park(nw_conn *c)
{
    nw__http_park(&c->http);
    if (c->spool.mem != NULL) {
        size_t threshold = c->spool.threshold;
        const char *dir = c->spool.dir;
        nw__spool_free(&c->spool);
        nw__spool_init(&c->spool, threshold, dir);
    }
}

int
nw__econn_open(nw_conn *c, int fd, const struct sockaddr *peer,
               socklen_t peerlen, const nw_listener *l)
{
    nw__conn_open(c, fd, peer, peerlen, l);
    if (l != NULL && l->family != AF_UNIX) {
        /* a response can go out in several writes */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->raw_len = 0;
    c->in_request = 0;
    c->out_busy = 0;
    c->lingered = 0;
    c->estate = NW_CONN_HEAD;
    return NW_CONN_HEAD;
}

/* ------------------------------------------------------------------------
 * Writing
 */

/* Write the canned bytes: NW_OK when all are out, NW_AGAIN, NW_ERROR. */
static int
write_raw(nw_conn *c)
{
    while (c->raw_len > 0) {
        ssize_t n = send(c->fd, c->raw, c->raw_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK ? NW_AGAIN
                                                           : NW_ERROR;
        }
        c->raw += n;
        c->raw_len -= (size_t) n;
    }
    return NW_OK;
}

/* Write what the last pull gave: NW_OK when all is out, NW_AGAIN when the
   socket is full or the budget spent, NW_ERROR when the peer is gone. */
/* A small response (a head and a short body) goes out as one buffer with
   send(): the kernel then has no iovec array to import, the cheaper path
   for the most common response there is.  -2: too big, use sendmsg. */
#define SMALL_SEND 1024

static ssize_t
send_small(int fd, const struct iovec *iov, int cnt, int more)
{
    char buf[SMALL_SEND];
    size_t len = 0;

    if (cnt == 1) {
        return send(fd, iov[0].iov_base, iov[0].iov_len,
                    MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    }
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len > sizeof(buf) - len) {
            return -2;
        }
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
}

static int
write_out(nw_conn *c, size_t *budget)
{
    nw_out *o = c->out;
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    for (;;) {
        int file = o->file_fd >= 0 && c->out_iov <= o->file_iov;
        int end = file ? o->file_iov : o->niov;
        ssize_t n;

        if (*budget == 0) {
            return NW_AGAIN;
        }
        if (c->out_iov < end) {
            int cnt = end - c->out_iov;
            struct iovec *iov = o->iov + c->out_iov;

            n = send_small(c->fd, iov, cnt, file);
            if (n == -2) {
                msg.msg_iov = iov;
                msg.msg_iovlen = (size_t) (cnt > IOV_MAX ? IOV_MAX : cnt);
                n = sendmsg(c->fd, &msg,
                            MSG_NOSIGNAL | (file ? MSG_MORE : 0));
            }
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno == EAGAIN || errno == EWOULDBLOCK ? NW_AGAIN
                                                               : NW_ERROR;
            }
            *budget = (size_t) n >= *budget ? 0 : *budget - (size_t) n;
            while (c->out_iov < end && (size_t) n >= iov->iov_len) {
                n -= (ssize_t) iov->iov_len;
                iov++;
                c->out_iov++;
            }
            if (c->out_iov < end) {
                iov->iov_base = (char *) iov->iov_base + n;
                iov->iov_len -= (size_t) n;
            }
            continue;
        }
        if (!file) {
            return NW_OK;
        }
        if (o->file_len == 0) {
            o->file_fd = -1; /* the iovecs after the file are next */
            continue;
        }
        n = sendfile(c->fd, o->file_fd, &o->file_off,
                     o->file_len < *budget ? o->file_len : *budget);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK ? NW_AGAIN
                                                           : NW_ERROR;
        }
        if (n == 0) {
            nw__log(NW_LOG_WARNING, "sendfile: the file ended %zu bytes "
                                    "early (did it shrink?): closing the "
                                    "connection",
                    o->file_len);
            return NW_ERROR;
        }
        o->file_len -= (size_t) n;
        *budget = (size_t) n >= *budget ? 0 : *budget - (size_t) n;
    }
}

static int advance(nw_conn *c);

static int
start_linger(nw_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->lingered = 0;
    c->estate = NW_CONN_LINGER;
    return NW_CONN_LINGER;
}

/* Queue canned bytes, then go on to `then`. */
static int
send_raw(nw_conn *c, const char *p, size_t n, unsigned then)
{
    c->raw = p;
    c->raw_len = n;
    c->raw_then = then;
    c->estate = NW_CONN_WRITE;
    return nw__econn_send(c);
}

static int
refuse(nw_conn *c)
{
    size_t n;

    if (c->head_cap < 1024) {
        c->head_cap = 1024;
        c->head = nw__xrealloc(c->head, c->head_cap);
    }
    n = nw__conn_refusal(c, c->head, c->head_cap);
    /* the client may still be sending what was refused */
    return send_raw(c, c->head, n, NW_CONN_LINGER);
}

/* The response is out (or abandoned): finish the request, then keep the
   connection for the next one or close it. */
static int
end_request(nw_conn *c)
{
    nw_worker_core *core = c->w->core;
    nw_http *h = &c->http;

    if (c->out != NULL) {
        nw__out_release(c->out);
        out_put(c->out);
        c->out = NULL;
    }
    c->out_busy = 0;
    nw__wsgi_finish(c);
    c->in_request = 0;
    nw__worker_request_done(core);
    if (c->failed) {
        c->estate = NW_CONN_CLOSE;
        return NW_CONN_CLOSE;
    }
    if (!nw__conn_keepalive(c)) {
        if (h->state == NW_HTTP_BODY || h->len > h->pos) {
            return start_linger(c);
        }
        c->estate = NW_CONN_CLOSE;
        return NW_CONN_CLOSE;
    }
    nw__conn_next(c);
    if (h->len > h->pos) {
        c->estate = NW_CONN_HEAD; /* pipelined: parsed now, in order */
        return advance(c);
    }
    park(c);
    c->estate = NW_CONN_IDLE;
    return NW_CONN_IDLE;
}

int
nw__econn_send(nw_conn *c)
{
    nw_worker_core *core = c->w->core;
    size_t budget = SEND_BUDGET;
    int rc;

    if (c->raw_len > 0) {
        rc = write_raw(c);
        if (rc == NW_AGAIN) {
            return NW_CONN_WRITE;
        }
        if (rc == NW_ERROR) {
            c->estate = NW_CONN_CLOSE;
            return NW_CONN_CLOSE;
        }
        if (c->raw_then == NW_CONN_LINGER) {
            return start_linger(c);
        }
        c->estate = c->raw_then;
        return advance(c);
    }
    if (!c->in_request) {
        return c->estate;
    }
    for (;;) {
        if (c->out_busy) {
            rc = write_out(c, &budget);
            if (rc == NW_AGAIN) {
                return NW_CONN_WRITE;
            }
            if (rc == NW_ERROR) {
                /* the client went away: the iterable is closed now */
                c->failed = 1;
                return end_request(c);
            }
            c->out_busy = 0;
            if (c->out->last) {
                return end_request(c);
            }
            nw__out_release(c->out);
            if (budget == 0) {
                return NW_CONN_WRITE;
            }
        }
        core->in_app = core->in_app_mark;
        rc = nw__wsgi_pull(c, c->out);
        core->in_app = 0;
        (void) rc; /* a broken response ends with out->last */
        c->out_iov = 0;
        c->out_busy = 1;
    }
}

/* ------------------------------------------------------------------------
 * Reading
 */

/* Parse what is buffered and say what comes next. */
static int
advance(nw_conn *c)
{
    nw_http *h = &c->http;
    int rc;

    if (c->estate == NW_CONN_HEAD || c->estate == NW_CONN_IDLE) {
        enum nw_http_result r = nw__conn_parse_head(c);

        if (r == NW_HTTP_NEED_MORE) {
            if (nw__http_room(h) == 0) {
                nw__http_fail(h, h->line_done ? 431 : 414,
                              h->line_done ? "Request header fields too "
                                             "large"
                                           : "Request Line is too large");
                return refuse(c);
            }
            c->estate = h->len > 0 || c->nrequests == 0 ? NW_CONN_HEAD
                                                        : NW_CONN_IDLE;
            return c->estate;
        }
        if (r == NW_HTTP_FAILED) {
            return refuse(c);
        }
        c->estate = NW_CONN_BODY;
    }
    if (c->estate != NW_CONN_BODY) {
        return c->estate;
    }
    rc = nw__conn_spool_body(c);
    if (rc == NW_AGAIN) {
        /* 100 Continue only when the client waits for it: not when the
           body came with the head (as in blocking mode) */
        if (nw__conn_need_continue(c)) {
            return send_raw(c, NW_CONTINUE_LINE,
                            sizeof(NW_CONTINUE_LINE) - 1, NW_CONN_BODY);
        }
        return NW_CONN_BODY;
    }
    if (rc == NW_ERROR) {
        return refuse(c);
    }
    c->estate = NW_CONN_READY;
    return NW_CONN_READY;
}

static int
linger(nw_conn *c)
{
    char buf[4096];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return NW_CONN_LINGER;
        }
        if (n <= 0) {
            break; /* the client closed too */
        }
        c->lingered += (size_t) n;
        if (c->lingered >= LINGER_BYTES) {
            break;
        }
    }
    c->estate = NW_CONN_CLOSE;
    return NW_CONN_CLOSE;
}

int
nw__econn_recv(nw_conn *c)
{
    nw_http *h = &c->http;

    if (c->estate == NW_CONN_LINGER) {
        return linger(c);
    }
    for (int round = 0; round < RECV_ROUNDS; round++) {
        size_t room;
        ssize_t n;
        int st;

        if (c->estate != NW_CONN_HEAD && c->estate != NW_CONN_IDLE
            && c->estate != NW_CONN_BODY) {
            return c->estate;
        }
        room = nw__http_room(h);
        if (room == 0) {
            return advance(c); /* refuses the oversized head */
        }
        n = recv(c->fd, h->buf + h->len, room, 0);
        if (n == 0) {
            if (h->len > h->pos || c->estate == NW_CONN_BODY) {
                nw__log(NW_LOG_DEBUG,
                        "Ignored premature client disconnection");
            }
            c->estate = NW_CONN_CLOSE;
            return NW_CONN_CLOSE;
        }
        if (n < 0) {
            if (errno == EINTR) {
                round--;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (h->len == h->pos && c->estate == NW_CONN_IDLE) {
                    park(c);
                }
                return c->estate;
            }
            c->estate = NW_CONN_CLOSE;
            return NW_CONN_CLOSE;
        }
        h->len += (size_t) n;
        st = advance(c);
        if ((size_t) n < room || (st != NW_CONN_HEAD && st != NW_CONN_BODY)) {
            return st;
        }
    }
    return c->estate;
}

int
nw__econn_call(nw_conn *c)
{
    nw_worker_core *core = c->w->core;

    if (c->estate != NW_CONN_READY) {
        return c->estate;
    }
    core->in_app = core->in_app_mark;
    nw__wsgi_call(c, core->app);
    core->in_app = 0;
    c->in_request = 1;
    c->out = out_get();
    c->out_busy = 0;
    c->estate = NW_CONN_WRITE;
    return NW_CONN_WRITE;
}

void
nw__econn_close(nw_conn *c)
{
    if (c->in_request) {
        c->failed = 1;
        end_request(c);
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->raw_len = 0;
    c->estate = NW_CONN_CLOSE;
    nw__spool_reset(&c->spool);
    c->http.len = c->http.pos = 0;
    park(c);
}

void
nw__econn_free(nw_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        nw__econn_close(c);
    }
    nw__wsgi_release(c);
    nw__conn_free(c);
    free(c);
}
