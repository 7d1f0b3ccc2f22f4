/*
 * libFuzzer target: request parsing and environ building.
 *
 * The first byte picks a configuration (strict defaults, the permissive
 * Gunicorn options, PROXY protocol, header_map); the rest is a stream of
 * pipelined requests, parsed on one connection as a worker would: PROXY
 * header, head, environ (embedded Python), body.  Each head is also parsed
 * a second time, fed a few bytes at a time: both ways must agree, or the
 * parser depends on how the bytes arrive (a desync).
 *
 *   ./configure --enable-fuzzing CC=clang && make fuzz
 *
 * tests/fuzz/replay.c runs the same function over the seed and regression
 * corpora in a normal build (make check).
 */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "conn/conn.h"
#include "log/log.h"
#include "python/python.h"
#include "config/settings.h"
#include "wsgi/wsgi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONFIGS 4
#define MAX_REQUESTS 8

static nw_settings settings;
static nw_conn_config configs[NCONFIGS];
static nw_conn conns[NCONFIGS];
static nw_listener listener = {-1, AF_UNIX, "unix:/fuzz"};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    char *pyargv[] = {"fuzz", NULL};

    (void) argc;
    (void) argv;
    /* refusals are logged; thousands a second would drown the output */
    nw__log_set_level(NW_LOG_CRITICAL);
    nw__settings_init(&settings);
    for (int i = 0; i < NCONFIGS; i++) {
        if (nw__conn_config_init(&configs[i], &settings, err, sizeof(err))
            != NW_OK) {
            abort();
        }
    }
    /* 1: everything Gunicorn lets you relax */
    configs[1].limits.permit_obsolete_folding = 1;
    configs[1].limits.strip_header_spaces = 1;
    configs[1].limits.permit_unconventional_method = 1;
    configs[1].limits.permit_unconventional_version = 1;
    configs[1].limits.casefold_method = 1;
    configs[1].limits.header_map = NW_HEADER_MAP_DANGEROUS;
    /* 2: PROXY protocol, small limits */
    configs[2].proxy_mode = NW_PROXY_AUTO;
    configs[2].limits.request_line = 64;
    configs[2].limits.fields = 4;
    configs[2].limits.field_size = 64;
    configs[2].limits.body = 32;
    /* 3: refuse underscores */
    configs[3].limits.header_map = NW_HEADER_MAP_REFUSE;
    if (nw__python_init(&settings, 1, pyargv) != NW_OK
        || nw__wsgi_init(0, 0) != NW_OK) {
        abort();
    }
    for (int i = 0; i < NCONFIGS; i++) {
        nw__conn_init(&conns[i], NULL, &configs[i], NW_CONN_BLOCKING);
    }
    return 0;
}

/* What a head parse decided, to compare two ways of feeding it. */
struct outcome {
    enum nw_http_result result;
    int status;
    unsigned nheaders;
    int64_t content_length;
    unsigned chunked;
    size_t consumed;
    char method[32];
    char url[64];
};

static void
describe(nw_conn *c, enum nw_http_result r, struct outcome *o)
{
    const nw_http *h = &c->http;

    memset(o, 0, sizeof(*o));
    o->result = r;
    o->status = h->error_status;
    if (r == NW_HTTP_HEAD_DONE) {
        o->nheaders = h->req.nheaders;
        o->content_length = h->req.content_length;
        o->chunked = h->req.chunked;
        o->consumed = h->head_end - h->head_start;
        memcpy(o->method, nw__span_ptr(h, h->req.method),
               h->req.method.len < 31 ? h->req.method.len : 31);
        memcpy(o->url, nw__span_ptr(h, h->req.url),
               h->req.url.len < 63 ? h->req.url.len : 63);
    }
}

/* Append up to n bytes; returns how many fitted. */
static size_t
feed(nw_http *h, const uint8_t *p, size_t n)
{
    size_t room = nw__http_room(h);
    if (n > room) {
        n = room;
    }
    memcpy(h->buf + h->len, p, n);
    h->len += n;
    return n;
}

/* Parse one head from the stream at *pos: all of it at once, or `step`
   bytes at a time. */
static enum nw_http_result
parse_head(nw_conn *c, const uint8_t *data, size_t size, size_t *pos,
           size_t step)
{
    for (;;) {
        enum nw_http_result r = nw__conn_parse_head(c);
        size_t n;
        if (r != NW_HTTP_NEED_MORE) {
            return r;
        }
        if (*pos == size) {
            return NW_HTTP_NEED_MORE;
        }
        n = feed(&c->http, data + *pos,
                 step && size - *pos > step ? step : size - *pos);
        if (n == 0) {
            return NW_HTTP_FAILED; /* the head limit: refused with 431 */
        }
        *pos += n;
    }
}

/* The first head again, `step` bytes at a time on a fresh connection:
   it must come out the same. */
static void
check_bytewise(const nw_conn *c, const struct outcome *whole,
               const uint8_t *data, size_t size, size_t step)
{
    struct outcome bytewise;
    nw_conn tmp;
    size_t pos = 1;

    nw__conn_init(&tmp, NULL, c->cfg, NW_CONN_BLOCKING);
    nw__conn_open(&tmp, -1, (const struct sockaddr *) &c->peer, c->peerlen,
                  &listener);
    describe(&tmp, parse_head(&tmp, data, size, &pos, step), &bytewise);
    nw__conn_free(&tmp);
    if (whole->result == NW_HTTP_NEED_MORE
        || bytewise.result == NW_HTTP_NEED_MORE) {
        return;
    }
    /* a size limit may trip at another byte; nothing else may differ */
    if (whole->status == 431 || whole->status == 414
        || bytewise.status == 431 || bytewise.status == 414) {
        return;
    }
    if (memcmp(whole, &bytewise, sizeof(bytewise)) != 0) {
        abort();
    }
}

/* env may be the connection's last environ, recycled: it must equal a
   new one built for the same request (wsgi.input aside: the second build
   sees env holding the first input and makes another).  The new one is
   then finished as a served request's is, to be recycled next. */
static void
check_recycled(nw_conn *c, PyObject *env)
{
    PyObject *fresh = nw__wsgi_environ(c);
    int same;

    if (fresh == NULL) {
        abort();
    }
    if (PyDict_DelItemString(env, "wsgi.input") != 0
        || PyDict_SetItemString(env, "wsgi.input",
                                PyDict_GetItemString(fresh, "wsgi.input"))
               != 0) {
        abort();
    }
    same = PyObject_RichCompareBool(env, fresh, Py_EQ);
    if (same != 1) {
        PyObject_Print(env, stderr, 0);
        fputs("\n  !=\n", stderr);
        PyObject_Print(fresh, stderr, 0);
        fputs("\n", stderr);
        abort();
    }
    Py_DECREF(env);
    c->environ = fresh;
    nw__wsgi_environ_done(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nw_conn *c;
    struct sockaddr_in peer;
    size_t pos = 1, step;
    PyGILState_STATE gil;

    if (size < 2) {
        return 0;
    }
    c = &conns[data[0] % NCONFIGS];
    step = 1 + (size_t) (data[0] >> 4) % 7;
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer.sin_port = htons(1234);
    nw__conn_open(c, -1, (struct sockaddr *) &peer, sizeof(peer), &listener);
    gil = PyGILState_Ensure();
    for (int n = 0; n < MAX_REQUESTS; n++) {
        struct outcome whole;
        enum nw_http_result r;
        char body[4096];
        PyObject *env;

        r = parse_head(c, data, size, &pos, 0);
        if (n == 0) {
            describe(c, r, &whole);
            check_bytewise(c, &whole, data, size, step);
        }
        if (r != NW_HTTP_HEAD_DONE) {
            break;
        }
        env = nw__wsgi_environ(c);
        if (env == NULL) {
            PyErr_Clear();
        } else {
            check_recycled(c, env);
        }
        while (c->http.state == NW_HTTP_BODY) {
            if (c->http.pos == c->http.len) {
                if (pos == size) {
                    break;
                }
                pos += feed(&c->http, data + pos, size - pos);
            }
            nw__http_decode_body(&c->http, body, sizeof(body));
        }
        if (c->http.state != NW_HTTP_DONE) {
            break;
        }
        nw__conn_next(c);
    }
    nw__wsgi_finish(c);
    PyGILState_Release(gil);
    return 0;
}
