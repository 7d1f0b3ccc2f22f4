#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "accesslog/accesslog.h"
#include "conn/conn.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "worker/worker.h"
#include "wsgi/wsgi.h"

/* A keep-alive connection whose app left part of the body unread is
   drained of at most this much before the next request (Gunicorn 26). */
#define DRAIN_MAX (64 * 1024)
/* Closing with unread input makes the kernel reset the connection, which
   can destroy the response still in flight; that input is read off first,
   this much for this long at most (RFC 9112 9.6, Gunicorn 26). */
#define LINGER_BYTES (64 * 1024)
#define LINGER_MS 2000

void
nw__conn_init(nw_conn *c, nw_worker *w, const nw_conn_config *cfg,
              unsigned mode)
{
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->cfg = cfg;
    c->fd = -1;
    c->mode = mode;
    c->keepalive_class = w != NULL && w->cls != NULL
                         && (w->cls->flags & NW_WORKER_KEEPALIVE) != 0;
    nw__http_init(&c->http, &cfg->limits);
    nw__resp_init(&c->resp);
    nw__spool_init(&c->spool, cfg->spool_memory, cfg->tmp_dir);
    c->head_cap = 1024;
    c->head = nw__xmalloc(c->head_cap);
}

void
nw__conn_free(nw_conn *c)
{
    nw__http_free(&c->http);
    nw__resp_free(&c->resp);
    nw__spool_free(&c->spool);
    free(c->head);
    c->head = NULL;
}

void
nw__conn_open(nw_conn *c, int fd, const struct sockaddr *peer,
              socklen_t peerlen, const nw_listener *l)
{
    c->fd = fd;
    c->listener = l;
    memset(&c->peer, 0, sizeof(c->peer));
    if (peer != NULL && peerlen > 0 && peerlen <= sizeof(c->peer)) {
        memcpy(&c->peer, peer, peerlen);
        c->peerlen = peerlen;
    } else {
        c->peer.ss_family = (sa_family_t) (l != NULL ? l->family : AF_UNIX);
        c->peerlen = 0;
    }
    nw__http_clear(&c->http);
    /* Gunicorn trusts unix-socket peers and forwarded_allow_ips */
    c->http.trusted = c->peer.ss_family == AF_UNIX
                      || (l != NULL && l->family == AF_UNIX)
                      || nw__iplist_match(&c->cfg->forwarded_allow,
                                          (const struct sockaddr *) &c->peer);
    memset(&c->proxy, 0, sizeof(c->proxy));
    c->proxy_checked = c->cfg->proxy_mode == NW_PROXY_OFF;
    c->nrequests = 0;
    c->remote_stale = 1;
    c->continue_sent = 0;
    c->failed = 0;
    c->head_done = 0;
    nw__spool_reset(&c->spool);
}

static int
proxy_allowed(const nw_conn *c)
{
    if (c->peer.ss_family != AF_INET && c->peer.ss_family != AF_INET6) {
        return 1; /* a unix-socket peer, as Gunicorn */
    }
    return nw__iplist_match(&c->cfg->proxy_allow,
                            (const struct sockaddr *) &c->peer);
}

enum nw_http_result
nw__conn_parse_head(nw_conn *c)
{
    nw_http *h = &c->http;

    if (!c->proxy_checked) {
        size_t used = 0;
        const char *why = NULL;
        int rc = nw__proxy_parse(h->buf + h->pos, h->len - h->pos,
                                 c->cfg->proxy_mode, &c->proxy, &used, &why);
        if (rc == NW_AGAIN) {
            return NW_HTTP_NEED_MORE;
        }
        c->proxy_checked = 1;
        if (rc != NW_PROXY_NONE && !proxy_allowed(c)) {
            memset(&c->proxy, 0, sizeof(c->proxy));
            nw__http_fail(h, 403, "Request forbidden: a PROXY header from a "
                                  "peer not in proxy_allow_ips");
            return NW_HTTP_FAILED;
        }
        if (rc == NW_ERROR) {
            memset(&c->proxy, 0, sizeof(c->proxy));
            nw__http_fail(h, 400, why);
            return NW_HTTP_FAILED;
        }
        if (rc == NW_OK) {
            h->pos += used;
            h->head_start = h->pos;
        }
    }
    {
        enum nw_http_result r = nw__http_parse_head(h);
        if (r == NW_HTTP_HEAD_DONE) {
            c->head_done = 1;
        }
        return r;
    }
}

const char *
nw__conn_peer_ip(const nw_conn *c, int proxy_aware, char *buf, size_t len)
{
    if (proxy_aware && c->proxy.present && c->proxy.has_addr) {
        snprintf(buf, len, "%s", c->proxy.src_addr);
        return buf;
    }
    buf[0] = '\0';
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
    return buf;
}

static const char *
peer_ip(const nw_conn *c, char *buf, size_t len)
{
    return nw__conn_peer_ip(c, 0, buf, len);
}

void
nw__conn_hook_request(const nw_conn *c, nw_hook_request *hr, char *ip,
                      size_t iplen)
{
    const nw_http *h = &c->http;
    const nw_request *r = &h->req;
    const char *t = nw__span_ptr(h, r->url);

    memset(hr, 0, sizeof(*hr));
    hr->size = sizeof(*hr);
    hr->method = nw__span_ptr(h, r->method);
    hr->method_len = r->method.len;
    hr->uri = t;
    hr->uri_len = r->url.len;
    nw__http_split_target(t, r->url.len, &hr->path, &hr->path_len,
                          &hr->query, &hr->query_len);
    hr->http_major = r->http_major;
    hr->http_minor = r->http_minor;
    hr->remote_addr = nw__conn_peer_ip(c, 1, ip, iplen);
    hr->nheaders = r->nheaders;
    if (c->failed) {
        hr->flags |= NW_HOOK_REQ_BROKEN;
    }
}

size_t
nw__conn_refusal(nw_conn *c, char *out, size_t cap)
{
    char ip[64];
    const char *why = c->http.error_reason ? c->http.error_reason
                                           : "malformed request";
    int status = c->http.error_status ? c->http.error_status : 400;

    nw__log(NW_LOG_WARNING, "Invalid request from ip=%s: %s",
            peer_ip(c, ip, sizeof(ip)), why);
    if (c->head_done
        && (nw__hook_mask
            & (NW_HOOK_BIT(NW_HOOK_ACCESS) | NW_HOOK_BIT_ACCESSLOG))) {
        /* Gunicorn logs a request refused after its head was parsed (its
           handle_error has the request then) */
        nw__access_refused(c, status);
    }
    return nw__resp_error(status, why, out, cap);
}

int
nw__conn_need_continue(nw_conn *c)
{
    if (c->http.req.expect_continue && !c->continue_sent
        && c->http.state == NW_HTTP_BODY) {
        c->continue_sent = 1;
        return 1;
    }
    return 0;
}

int
nw__conn_spool_body(nw_conn *c)
{
    nw_http *h = &c->http;
    char tmp[16384], err[256];

    while (h->state == NW_HTTP_BODY && h->pos < h->len) {
        size_t room, got;
        char *dst = nw__spool_reserve(&c->spool, &room);

        if (dst != NULL) {
            got = nw__http_decode_body(h, dst, room);
            nw__spool_commit(&c->spool, got);
        } else {
            got = nw__http_decode_body(h, tmp, sizeof(tmp));
            if (got > 0
                && nw__spool_write(&c->spool, tmp, got, err, sizeof(err))
                       != NW_OK) {
                nw__log(NW_LOG_ERROR, "%s", err);
                nw__http_fail(h, 500, "the request body could not be "
                                      "stored");
                return NW_ERROR;
            }
        }
    }
    if (h->state == NW_HTTP_ERROR) {
        return NW_ERROR;
    }
    return h->state == NW_HTTP_BODY ? NW_AGAIN : NW_OK;
}

int
nw__conn_keepalive_wanted(const nw_conn *c)
{
    const nw_request *r = &c->http.req;
    const nw_worker_core *core = c->w != NULL ? c->w->core : NULL;

    return c->keepalive_class && c->cfg->keepalive_ms > 0 && r->keep_alive
           && !r->upgrade && !r->force_close && !c->failed
           && c->http.state != NW_HTTP_ERROR
           && (core == NULL || core->stop == NW_RUN);
}

int
nw__conn_keepalive(nw_conn *c)
{
    return nw__conn_keepalive_wanted(c) && !c->resp.must_close
           && c->http.state == NW_HTTP_DONE;
}

void
nw__conn_next(nw_conn *c)
{
    nw__http_reset(&c->http);
    nw__spool_reset(&c->spool);
    c->continue_sent = 0;
    c->head_done = 0;
    c->nrequests++;
}

/* ------------------------------------------------------------------------
 * Blocking I/O
 */

/* A blocked read or write gave up after SO_RCVTIMEO/SO_SNDTIMEO: the
   worker is alive, so beat; the client has been silent for `waited` ms. */
static int
client_too_slow(nw_conn *c, unsigned *waited, unsigned limit_ms, int idle)
{
    nw_worker *w = c->w;
    const nw_worker_core *core = w->core;

    nw__slot_beat(core->slot);
    *waited += w->heartbeat_interval_ms;
    if (core->stop == NW_STOP_QUICK || (idle && core->stop != NW_RUN)) {
        return 1;
    }
    return limit_ms > 0 && *waited >= limit_ms;
}

static int
write_iov(nw_conn *c, struct iovec *iov, int n, int flags)
{
    struct msghdr msg;
    unsigned waited = 0;

    memset(&msg, 0, sizeof(msg));
    while (n > 0) {
        ssize_t w;
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t) (n > IOV_MAX ? IOV_MAX : n);
        w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | flags);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if ((errno == EAGAIN || errno == EWOULDBLOCK)
                && !client_too_slow(c, &waited, c->cfg->client_timeout_ms,
                                    0)) {
                continue;
            }
            return NW_ERROR;
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
    return NW_OK;
}

int
nw__conn_write_all(nw_conn *c, struct iovec *iov, int n, int gil_held)
{
    PyThreadState *ts = NULL;
    int rc;

    if (gil_held) {
        ts = PyEval_SaveThread();
    }
    rc = write_iov(c, iov, n, 0);
    if (gil_held) {
        PyEval_RestoreThread(ts);
    }
    return rc;
}

static int
send_file(nw_conn *c, int fd, off_t off, size_t len)
{
    unsigned waited = 0;

    while (len > 0) {
        ssize_t s = sendfile(c->fd, fd, &off, len > 0x40000000 ? 0x40000000
                                                              : len);
        if (s < 0) {
            if (errno == EINTR) {
                continue;
            }
            if ((errno == EAGAIN || errno == EWOULDBLOCK)
                && !client_too_slow(c, &waited, c->cfg->client_timeout_ms,
                                    0)) {
                continue;
            }
            return NW_ERROR;
        }
        if (s == 0) {
            nw__log(NW_LOG_WARNING, "sendfile: the file ended %zu bytes "
                                    "early (did it shrink?): closing the "
                                    "connection",
                    len);
            return NW_ERROR;
        }
        waited = 0;
        len -= (size_t) s;
    }
    return NW_OK;
}

int
nw__conn_write_out(nw_conn *c, nw_out *out, int gil_held)
{
    PyThreadState *ts = NULL;
    int rc = NW_OK;

    if (out->niov == 0 && out->file_fd < 0) {
        return NW_OK;
    }
    if (gil_held) {
        ts = PyEval_SaveThread();
    }
    if (out->file_fd < 0) {
        rc = write_iov(c, out->iov, out->niov, 0);
    } else {
        /* the head (and chunk header) go in the same segment as the start
           of the file */
        if (out->file_iov > 0) {
            rc = write_iov(c, out->iov, out->file_iov, MSG_MORE);
        }
        if (rc == NW_OK) {
            rc = send_file(c, out->file_fd, out->file_off, out->file_len);
        }
        if (rc == NW_OK && out->niov > out->file_iov) {
            rc = write_iov(c, out->iov + out->file_iov,
                           out->niov - out->file_iov, 0);
        }
    }
    if (gil_held) {
        PyEval_RestoreThread(ts);
    }
    return rc;
}

/* Read more raw bytes into the parser's buffer: >0 bytes, 0 on EOF,
   NW_ERROR on error or after limit_ms of silence.  `idle`: waiting for a
   kept connection's next request, which a graceful stop ends. */
static ssize_t
fill(nw_conn *c, int gil_held, unsigned limit_ms, int idle)
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
            && !client_too_slow(c, &waited, limit_ms, idle)) {
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

static void
body_failed(nw_conn *c)
{
    nw_http *h = &c->http;
    char ip[64];

    /* a framing error or limit_request_body while the app reads: its
       response is replaced by the refusal, if none is sent yet */
    if (h->error_status != 0 && c->error_status == 0) {
        nw__log(NW_LOG_WARNING, "Invalid request from ip=%s: %s",
                peer_ip(c, ip, sizeof(ip)), h->error_reason);
        c->error_status = h->error_status;
    }
    c->resp.must_close = 1;
}

ssize_t
nw__conn_read_body(nw_conn *c, char *dst, size_t n, const char **err)
{
    nw_http *h = &c->http;
    size_t got = 0;

    if (c->mode == NW_CONN_EVENT) {
        ssize_t r = nw__spool_read(&c->spool, dst, n);
        if (r < 0) {
            *err = "the spooled request body could not be read";
        }
        return r;
    }
    if (c->spool.rpos < c->spool.size) {
        /* what came with the head, decoded before the app ran */
        return nw__spool_read(&c->spool, dst, n);
    }
    if (h->state == NW_HTTP_DONE) {
        return 0;
    }
    if (h->state != NW_HTTP_BODY) {
        *err = h->error_reason ? h->error_reason : "the request failed";
        return NW_ERROR;
    }
    if (nw__conn_need_continue(c)) {
        struct iovec iov = {(void *) NW_CONTINUE_LINE,
                            sizeof(NW_CONTINUE_LINE) - 1};
        if (nw__conn_write_all(c, &iov, 1, 1) != NW_OK) {
            c->failed = 1;
            *err = "the client closed the connection";
            return NW_ERROR;
        }
    }
    while (got < n && h->state == NW_HTTP_BODY) {
        if (h->pos == h->len) {
            ssize_t r = fill(c, 1, c->cfg->client_timeout_ms, 0);
            if (r <= 0) {
                nw__http_fail(h, 0, r == 0 ? "the client closed the "
                                             "connection before the end of "
                                             "the body"
                                           : "the connection failed");
                c->failed = 1;
                *err = h->error_reason;
                return NW_ERROR;
            }
        }
        got += nw__http_decode_body(h, dst + got, n - got);
        if (h->state == NW_HTTP_ERROR) {
            body_failed(c);
            *err = h->error_reason;
            return NW_ERROR;
        }
    }
    return (ssize_t) got;
}

static void
send_refusal(nw_conn *c)
{
    char buf[1024];
    struct iovec iov;

    iov.iov_base = buf;
    iov.iov_len = nw__conn_refusal(c, buf, sizeof(buf));
    nw__conn_write_all(c, &iov, 1, 0);
}

/* The body bytes that came with the head are decoded before the app runs
   (into the spool's memory), so a framing error or limit_request_body
   among them is refused before the app sees the request.  The rest is
   read on demand. */
static int
prefetch_body(nw_conn *c)
{
    nw_http *h = &c->http;

    while (h->state == NW_HTTP_BODY && h->pos < h->len) {
        size_t room;
        char *dst = nw__spool_reserve(&c->spool, &room);
        if (dst == NULL) {
            break;
        }
        nw__spool_commit(&c->spool, nw__http_decode_body(h, dst, room));
    }
    return h->state == NW_HTTP_ERROR ? NW_ERROR : NW_OK;
}

/* Read until the head is parsed: 1 when it is, 0 when the connection
   ended or failed (already answered if it was a bad request). */
static int
read_head(nw_conn *c)
{
    nw_http *h = &c->http;
    int idle = c->nrequests > 0 && h->pos == h->len;
    unsigned limit = idle ? c->cfg->keepalive_ms : c->cfg->client_timeout_ms;

    for (;;) {
        enum nw_http_result r = nw__conn_parse_head(c);
        ssize_t n;

        if (r == NW_HTTP_HEAD_DONE) {
            return 1;
        }
        if (r == NW_HTTP_NEED_MORE && nw__http_room(h) == 0) {
            nw__http_fail(h, h->line_done ? 431 : 414,
                          h->line_done ? "Request header fields too large"
                                       : "Request Line is too large");
            r = NW_HTTP_FAILED;
        }
        if (r == NW_HTTP_FAILED) {
            send_refusal(c);
            return 0;
        }
        n = fill(c, 0, limit, idle);
        if (n <= 0) {
            /* closed before or in the middle of a request: nothing to
               answer (Gunicorn: "Ignored premature client disconnection") */
            if (h->len > h->pos) {
                nw__log(NW_LOG_DEBUG,
                        "Ignored premature client disconnection");
            }
            return 0;
        }
        /* a request has begun: the client timeout applies now */
        limit = c->cfg->client_timeout_ms;
        idle = 0;
    }
}

/* Before the next keep-alive request: read what the app left of the body,
   up to DRAIN_MAX (GIL held). */
static int
drain_body(nw_conn *c)
{
    char buf[16384];
    size_t total = 0;
    const char *err = NULL;

    if (c->http.req.expect_continue && !c->continue_sent) {
        return 0; /* the client waits for 100 Continue: it sent nothing */
    }
    while (c->http.state == NW_HTTP_BODY && total < DRAIN_MAX) {
        ssize_t n = nw__conn_read_body(c, buf, sizeof(buf), &err);
        if (n <= 0) {
            break;
        }
        total += (size_t) n;
    }
    return c->http.state == NW_HTTP_DONE;
}

static void
close_lingering(nw_conn *c)
{
    nw_http *h = &c->http;
    char buf[4096];
    size_t total = 0;
    int waited = 0;

    if (h->state == NW_HTTP_BODY || h->state == NW_HTTP_ERROR
        || h->len > h->pos) {
        shutdown(c->fd, SHUT_WR);
        while (total < LINGER_BYTES && waited < LINGER_MS) {
            struct pollfd pfd = {c->fd, POLLIN, 0};
            ssize_t n;
            if (poll(&pfd, 1, 100) == 0) {
                waited += 100;
                continue;
            }
            n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
                break; /* the client closed too */
            }
            total += n > 0 ? (size_t) n : 0;
        }
    }
    close(c->fd);
    c->fd = -1;
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

    nw__conn_open(c, fd, peer, peerlen, l);
    /* Blocked calls wake up at each heartbeat interval, so a slow client
       costs the client its connection, not the worker its life.  (Set per
       connection: a socket inherits these from its listener when the
       connection is made, and connections queued before a worker could
       set them on the listener, or made before narwhal started on an
       inherited socket, would block for ever.) */
    set_timeouts(fd, w->heartbeat_interval_ms);
    if (c->keepalive_class && l->family != AF_UNIX) {
        /* responses go out in several writes on a kept connection */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    while (read_head(c)) {
        int again;

        if (c->http.state == NW_HTTP_BODY && prefetch_body(c) != NW_OK) {
            send_refusal(c);
            break;
        }
        served++;
        gil = PyGILState_Ensure();
        core->in_app = core->in_app_mark;
        nw__wsgi_call(c, core->app);
        for (;;) {
            nw_out out;
            int rc = nw__wsgi_pull(c, &out);
            int wrc = nw__conn_write_out(c, &out, 1);
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
        again = nw__conn_keepalive_wanted(c) && !c->resp.must_close
                && (c->http.state == NW_HTTP_DONE || drain_body(c));
        PyGILState_Release(gil);
        nw__worker_request_done(core);
        if (!again) {
            break;
        }
        nw__conn_next(c);
    }
    close_lingering(c);
    return served;
}
