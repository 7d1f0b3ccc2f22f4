#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "memory.h"
#include "worker_core.h"
#include "wsgi.h"

void
nw__conn_init(nw_conn *c, nw_worker *w, const nw_http_limits *limits)
{
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->fd = -1;
    nw__http_init(&c->http, limits);
    nw__resp_init(&c->resp);
    c->head_cap = 1024;
    c->head = nw__xmalloc(c->head_cap);
}

void
nw__conn_free(nw_conn *c)
{
    nw__http_free(&c->http);
    nw__resp_free(&c->resp);
    free(c->head);
    c->head = NULL;
}

/* A blocked read or write gave up after SO_RCVTIMEO/SO_SNDTIMEO: the
   worker is alive, so beat; the client has been silent for `waited` ms. */
static int
client_too_slow(nw_conn *c, unsigned *waited)
{
    nw_worker *w = c->w;
    const nw_worker_core *core = w->core;

    nw__slot_beat(core->slot);
    *waited += w->heartbeat_interval_ms;
    if (core->stop == NW_STOP_QUICK) {
        return 1;
    }
    return core->client_timeout_ms > 0 && *waited >= core->client_timeout_ms;
}

int
nw__conn_write_all(nw_conn *c, struct iovec *iov, int n, int gil_held)
{
    struct msghdr msg;
    unsigned waited = 0;
    PyThreadState *ts = NULL;
    int rc = NW_OK;

    if (gil_held) {
        ts = PyEval_SaveThread();
    }
    memset(&msg, 0, sizeof(msg));
    while (n > 0) {
        ssize_t w;
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t) (n > IOV_MAX ? IOV_MAX : n);
        w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if ((errno == EAGAIN || errno == EWOULDBLOCK)
                && !client_too_slow(c, &waited)) {
                continue;
            }
            rc = NW_ERROR;
            break;
        }
        waited = 0;
        /* skip what was written */
        while (n > 0 && (size_t) w >= iov->iov_len) {
            w -= (ssize_t) iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *) iov->iov_base + w;
            iov->iov_len -= (size_t) w;
        }
    }
    if (gil_held) {
        PyEval_RestoreThread(ts);
    }
    return rc;
}

ssize_t
nw__conn_fill(nw_conn *c, int gil_held)
{
    nw_http *h = &c->http;
    size_t room = nw__http_room(h);
    unsigned waited = 0;
    PyThreadState *ts = NULL;
    ssize_t n;

    if (room == 0) {
        return NW_ERROR;
    }
    if (gil_held) {
        ts = PyEval_SaveThread();
    }
    for (;;) {
        n = recv(c->fd, h->buf + h->len, room, 0);
        if (n >= 0) {
            h->len += (size_t) n;
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno == EAGAIN || errno == EWOULDBLOCK)
            && !client_too_slow(c, &waited)) {
            continue;
        }
        n = NW_ERROR;
        break;
    }
    if (gil_held) {
        PyEval_RestoreThread(ts);
    }
    return n;
}

static int
send_continue(nw_conn *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec iov = {(void *) line, sizeof(line) - 1};

    c->continue_sent = 1;
    return nw__conn_write_all(c, &iov, 1, 1);
}

ssize_t
nw__conn_read_body(nw_conn *c, char *dst, size_t n, const char **err)
{
    nw_http *h = &c->http;
    size_t got = 0;

    if (h->state == NW_HTTP_DONE) {
        return 0;
    }
    if (h->state != NW_HTTP_BODY) {
        *err = h->error_reason;
        return NW_ERROR;
    }
    if (h->req.expect_continue && !c->continue_sent
        && send_continue(c) != NW_OK) {
        *err = "the client closed the connection";
        return NW_ERROR;
    }
    while (got < n && h->state == NW_HTTP_BODY) {
        if (h->pos == h->len) {
            ssize_t r = nw__conn_fill(c, 1);
            if (r <= 0) {
                h->state = NW_HTTP_ERROR;
                h->error_reason = r == 0 ? "the client closed the "
                                           "connection before the end of "
                                           "the body"
                                         : "the connection failed";
                *err = h->error_reason;
                return NW_ERROR;
            }
        }
        got += nw__http_decode_body(h, dst + got, n - got);
        if (h->state == NW_HTTP_ERROR) {
            *err = h->error_reason;
            return NW_ERROR;
        }
    }
    return (ssize_t) got;
}

static const char *
peer_ip(const nw_conn *c, char *buf, size_t len)
{
    if (c->peer.ss_family == AF_INET) {
        return inet_ntop(AF_INET,
                         &((const struct sockaddr_in *) &c->peer)->sin_addr,
                         buf, (socklen_t) len);
    }
    if (c->peer.ss_family == AF_INET6) {
        return inet_ntop(AF_INET6,
                         &((const struct sockaddr_in6 *) &c->peer)->sin6_addr,
                         buf, (socklen_t) len);
    }
    return "";
}

/* A refused request: the canned response, then the connection closes so
   nothing behind it is read as a request. */
static void
refuse(nw_conn *c)
{
    char buf[1024], ip[64];
    struct iovec iov;
    const char *why = c->http.error_reason ? c->http.error_reason
                                           : "malformed request";

    nw__log(NW_LOG_WARNING, "Invalid request from ip=%s: %s",
            peer_ip(c, ip, sizeof(ip)), why);
    iov.iov_base = buf;
    iov.iov_len = nw__resp_error(c->http.error_status, why, buf, sizeof(buf));
    nw__conn_write_all(c, &iov, 1, 0);
}

/* Read until the head is parsed: 1 when it is, 0 when the connection
   ended or failed (already answered if it was a bad request). */
static int
read_head(nw_conn *c)
{
    nw_http *h = &c->http;

    for (;;) {
        enum nw_http_result r = nw__http_parse_head(h);
        ssize_t n;

        if (r == NW_HTTP_HEAD_DONE) {
            return 1;
        }
        if (r == NW_HTTP_FAILED) {
            refuse(c);
            return 0;
        }
        if (nw__http_room(h) == 0) {
            h->state = NW_HTTP_ERROR;
            h->error_status = h->req.nheaders > 0 ? 431 : 414;
            h->error_reason = "request head is too large";
            refuse(c);
            return 0;
        }
        n = nw__conn_fill(c, 0);
        if (n <= 0) {
            /* closed before or in the middle of a request: nothing to
               answer (Gunicorn: "Ignored premature client disconnection") */
            if (h->len > 0) {
                nw__log(NW_LOG_DEBUG,
                        "Ignored premature client disconnection");
            }
            return 0;
        }
    }
}

static void
set_timeouts(int fd, unsigned ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t) (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int
nw__serve_connection(nw_worker *w, int fd, const struct sockaddr *peer,
                     socklen_t peerlen, const nw_listener *l)
{
    nw_worker_core *core = w->core;
    nw_conn *c = core->conn;
    PyGILState_STATE gil;
    int served = 0;

    c->fd = fd;
    c->listener = l;
    memset(&c->peer, 0, sizeof(c->peer));
    if (peer != NULL && peerlen <= sizeof(c->peer)) {
        memcpy(&c->peer, peer, peerlen);
        c->peerlen = peerlen;
    } else {
        c->peer.ss_family = (sa_family_t) l->family;
    }
    c->http.len = c->http.pos = 0;
    nw__http_reset(&c->http);
    c->continue_sent = 0;
    /* Blocked calls wake up at each heartbeat interval, so a slow client
       costs the client its connection, not the worker its life. */
    set_timeouts(fd, w->heartbeat_interval_ms);

    if (read_head(c)) {
        served = 1;
        gil = PyGILState_Ensure();
        core->in_app = 1;
        nw__wsgi_call(c, core->app);
        for (;;) {
            nw_out out;
            int rc = nw__wsgi_pull(c, &out);
            int wrc = out.niov > 0 ? nw__conn_write_all(c, out.iov, out.niov,
                                                        1)
                                   : NW_OK;
            int last = out.last;
            nw__out_release(&out);
            if (wrc != NW_OK) {
                c->failed = 1;
                break;
            }
            if (last || rc != NW_OK) {
                break;
            }
        }
        nw__wsgi_finish(c);
        core->in_app = 0;
        PyGILState_Release(gil);
        nw__worker_request_done(core);
    }
    close(fd);
    c->fd = -1;
    return served;
}
