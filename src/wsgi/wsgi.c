#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <narwhal/version.h>

#include "accesslog/accesslog.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "wsgi/wsgi.h"

/* ------------------------------------------------------------------------
 * Interned environ keys and constant values, made once per worker.
 */

#define NW_ENVIRON_KEYS(X)                                                    \
    X(REQUEST_METHOD)                                                         \
    X(SCRIPT_NAME)                                                            \
    X(PATH_INFO)                                                              \
    X(QUERY_STRING)                                                           \
    X(RAW_URI)                                                                \
    X(SERVER_PROTOCOL)                                                        \
    X(SERVER_NAME)                                                            \
    X(SERVER_PORT)                                                            \
    X(SERVER_SOFTWARE)                                                        \
    X(REMOTE_ADDR)                                                            \
    X(REMOTE_PORT)                                                            \
    X(PROXY_PROTOCOL)                                                         \
    X(PROXY_ADDR)                                                             \
    X(PROXY_PORT)

#define X(name) static PyObject *k_##name;
NW_ENVIRON_KEYS(X)
#undef X

static PyObject *k_wsgi_input, *k_wsgi_url_scheme;
static PyObject *k_headers[NW_HDR_COUNT];
static PyObject *v_methods[NW_METHOD_COUNT];
static PyObject *template_environ;
/* Entries the template has room for: a dict of 64 slots holds 42. */
#define TEMPLATE_ROOM 42
static PyObject *v_http10, *v_http11, *v_empty, *v_http, *v_https;
static PyObject *v_port80, *v_port443;
static PyObject *script_name; /* from the SCRIPT_NAME environment variable */
static void slots_init(void);

/* Each TCP listener's copy of the template, with its SERVER_NAME and
   SERVER_PORT, made on its first request */
#define SERVER_CACHE 16
static struct server_entry {
    const nw_listener *listener;
    PyObject *environ;
} server_cache[SERVER_CACHE];

/* ------------------------------------------------------------------------
 * Logging Python exceptions in narwhal's format.
 */

PyObject *
nw__py_traceback_text(void)
{
    PyObject *type, *value, *tb, *mod, *lines = NULL, *text = NULL;

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    mod = PyImport_ImportModule("traceback");
    if (mod != NULL) {
        lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                    value ? value : Py_None,
                                    tb ? tb : Py_None);
    }
    if (lines != NULL) {
        PyObject *sep = PyUnicode_FromString("");
        text = sep ? PyUnicode_Join(sep, lines) : NULL;
        Py_XDECREF(sep);
    }
    PyErr_Clear();
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return text;
}

void
nw__log_py_exception(int level, const char *fmt, ...)
{
    PyObject *text;
    const char *trace;
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    if (!PyErr_Occurred()) {
        nw__log(level, "%s", what);
        return;
    }
    text = nw__py_traceback_text();
    trace = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    if (trace != NULL) {
        size_t n = strlen(trace);
        /* the traceback ends with a newline the log line adds itself */
        nw__log(level, "%s\n%.*s", what,
                (int) (n > 0 && trace[n - 1] == '\n' ? n - 1 : n), trace);
    } else {
        nw__log(level, "%s (and its traceback could not be formatted)",
                what);
    }
    PyErr_Clear();
    Py_XDECREF(text);
}

/* ------------------------------------------------------------------------
 * Initialisation
 */

static PyObject *
interned(const char *s)
{
    PyObject *o = PyUnicode_InternFromString(s);
    if (o == NULL) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot intern %s", s);
    }
    return o;
}

static const char *const method_names[NW_METHOD_COUNT] = {
    [NW_METHOD_GET] = "GET",         [NW_METHOD_HEAD] = "HEAD",
    [NW_METHOD_POST] = "POST",       [NW_METHOD_PUT] = "PUT",
    [NW_METHOD_DELETE] = "DELETE",   [NW_METHOD_OPTIONS] = "OPTIONS",
    [NW_METHOD_PATCH] = "PATCH",     [NW_METHOD_CONNECT] = "CONNECT",
    [NW_METHOD_TRACE] = "TRACE",
};

int
nw__wsgi_init(int multithread, int multiprocess)
{
    PyObject *version, *errors, *sys, *sw;
    const char *sn;

    if (PyType_Ready(&nw__InputType) < 0 || nw__wsgi_response_init() != NW_OK) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot create WSGI types");
        return NW_ERROR;
    }
#define X(name)                                                               \
    if ((k_##name = interned(#name)) == NULL) {                               \
        return NW_ERROR;                                                      \
    }
    NW_ENVIRON_KEYS(X)
#undef X
    for (unsigned id = 1; id < NW_HDR_COUNT; id++) {
        if ((k_headers[id] = interned(nw__header_keys[id])) == NULL) {
            return NW_ERROR;
        }
    }
    for (unsigned m = 1; m < NW_METHOD_COUNT; m++) {
        if ((v_methods[m] = interned(method_names[m])) == NULL) {
            return NW_ERROR;
        }
    }
    k_wsgi_input = interned("wsgi.input");
    k_wsgi_url_scheme = interned("wsgi.url_scheme");
    v_http10 = interned("HTTP/1.0");
    v_http11 = interned("HTTP/1.1");
    v_empty = interned("");
    v_http = interned("http");
    v_https = interned("https");
    v_port80 = interned("80");
    v_port443 = interned("443");
    if (!k_wsgi_input || !k_wsgi_url_scheme || !v_http10 || !v_http11
        || !v_empty || !v_http || !v_https || !v_port80 || !v_port443) {
        return NW_ERROR;
    }
    sn = getenv("SCRIPT_NAME");
    script_name = sn ? PyUnicode_DecodeLatin1(sn, (Py_ssize_t) strlen(sn),
                                              NULL)
                     : (Py_INCREF(v_empty), v_empty);

    sys = PyImport_ImportModule("sys");
    errors = sys ? PyObject_GetAttrString(sys, "stderr") : NULL;
    Py_XDECREF(sys);
    version = Py_BuildValue("(ii)", 1, 0);
    sw = PyUnicode_FromString("narwhal/" NW_VERSION);
    /* room for the keys every request adds and a browser's headers, so
       that no request's copy ever grows (a resize rehashes every key) */
    template_environ = _PyDict_NewPresized(TEMPLATE_ROOM);
    if (errors == NULL || version == NULL || sw == NULL
        || template_environ == NULL || script_name == NULL) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot build the environ");
        return NW_ERROR;
    }
#define SET(key, value)                                                       \
    if (PyDict_SetItemString(template_environ, key, value) != 0) {            \
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot build the environ");    \
        return NW_ERROR;                                                      \
    }
    SET("wsgi.version", version)
    SET("wsgi.url_scheme", v_http)
    SET("wsgi.errors", errors)
    SET("wsgi.multithread", multithread ? Py_True : Py_False)
    SET("wsgi.multiprocess", multiprocess ? Py_True : Py_False)
    SET("wsgi.run_once", Py_False)
    SET("wsgi.file_wrapper", (PyObject *) &nw__FileWrapperType)
    SET("wsgi.input_terminated", Py_True)
    SET("SERVER_SOFTWARE", sw)
#undef SET
    /* Keys every request has, given a place in the template now (with the
       common value where there is one, left alone by a request that
       agrees): setting a key the copy already has only swaps its value. */
    {
        PyObject *always[][2] = {
            {k_REQUEST_METHOD, v_methods[NW_METHOD_GET]},
            {k_RAW_URI, Py_None},
            {k_SERVER_PROTOCOL, v_http11},
            {k_SCRIPT_NAME, script_name},
            {k_PATH_INFO, Py_None},
            {k_QUERY_STRING, v_empty},
            {k_REMOTE_ADDR, Py_None},
            {k_SERVER_NAME, Py_None},
            {k_SERVER_PORT, Py_None},
            {k_wsgi_input, Py_None},
        };
        for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
            if (PyDict_SetItem(template_environ, always[i][0], always[i][1])
                != 0) {
                nw__log_py_exception(NW_LOG_CRITICAL,
                                     "cannot build the environ");
                return NW_ERROR;
            }
        }
    }
    Py_DECREF(sw);
    Py_DECREF(version);
    Py_DECREF(errors);
    slots_init();
    return NW_OK;
}

/* ------------------------------------------------------------------------
 * The environ
 */

/* A header name's byte as the environ spells it: upper case, '-' as '_'. */
static inline Py_UCS1
env_char(char c)
{
    unsigned char ch = (unsigned char) c;
    return ch == '-'                    ? '_'
           : (ch >= 'a' && ch <= 'z') ? (Py_UCS1) (ch - 32)
                                      : ch;
}

/* HTTP_ + the name in env_char()s, built in place: for the names the
   parser did not know. */
static PyObject *
header_key(const char *name, size_t n)
{
    PyObject *key = PyUnicode_New((Py_ssize_t) n + 5, 127);
    Py_UCS1 *d;

    if (key == NULL) {
        return NULL;
    }
    d = PyUnicode_1BYTE_DATA(key);
    memcpy(d, "HTTP_", 5);
    for (size_t i = 0; i < n; i++) {
        d[5 + i] = env_char(name[i]);
    }
    return key;
}

/* Whether key is the environ key of header hd, named name. */
static int
key_is(PyObject *key, const nw_header *hd, const char *name)
{
    const Py_UCS1 *d;

    if (hd->id != NW_HDR_OTHER) {
        return key == k_headers[hd->id];
    }
    if (PyUnicode_KIND(key) != PyUnicode_1BYTE_KIND
        || (size_t) PyUnicode_GET_LENGTH(key) != hd->name.len + 5) {
        return 0;
    }
    d = PyUnicode_1BYTE_DATA(key);
    if (memcmp(d, "HTTP_", 5) != 0) {
        return 0;
    }
    for (size_t i = 0; i < hd->name.len; i++) {
        if (d[5 + i] != env_char(name[i])) {
            return 0;
        }
    }
    return 1;
}

/* A port as a str, without the printf machinery. */
static PyObject *
port_str(unsigned port)
{
    char buf[8];
    int i = (int) sizeof(buf);

    do {
        buf[--i] = (char) ('0' + port % 10);
        port /= 10;
    } while (port != 0 && i > 0);
    return PyUnicode_DecodeLatin1(buf + i, (Py_ssize_t) sizeof(buf) - i,
                                  NULL);
}

static int
set_steal(PyObject *env, PyObject *key, PyObject *value)
{
    int rc;
    if (value == NULL) {
        return -1;
    }
    rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc;
}

/* Dotted quad, without inet_ntop's generality (a tenth of its cost). */
static size_t
ipv4_str(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *) &a->s_addr;
    size_t n = 0;

    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100) {
            out[n++] = (char) ('0' + v / 100);
            v %= 100;
            out[n++] = (char) ('0' + v / 10);
        } else if (v >= 10) {
            out[n++] = (char) ('0' + v / 10);
        }
        out[n++] = (char) ('0' + v % 10);
        out[n++] = '.';
    }
    return n - 1;
}

/* The value of a header a client repeats on every request of a
   connection (Host, User-Agent, Accept...): the string made for the last
   request is reused when the bytes are the same. */
static PyObject *
header_value(nw_conn *c, unsigned id, const char *value, size_t len)
{
    PyObject *v;

    if (id == NW_HDR_OTHER || id >= NW_CONN_HEADER_CACHE) {
        return PyUnicode_DecodeLatin1(value, (Py_ssize_t) len, NULL);
    }
    v = c->header_cache[id];
    if (v != NULL && (size_t) PyUnicode_GET_LENGTH(v) == len
        && memcmp(PyUnicode_1BYTE_DATA(v), value, len) == 0) {
        Py_INCREF(v);
        return v;
    }
    v = PyUnicode_DecodeLatin1(value, (Py_ssize_t) len, NULL);
    if (v != NULL) {
        Py_INCREF(v);
        Py_XSETREF(c->header_cache[id], v);
    }
    return v;
}

static int
set_peer(nw_conn *c, PyObject *env)
{
    char host[INET6_ADDRSTRLEN];
    size_t hlen;
    unsigned port;
    const nw_proxy_info *p = &c->proxy;

    if (p->present) {
        /* behind a PROXY-protocol front-end: the client it names */
        if (set_steal(env, k_PROXY_PROTOCOL,
                      PyUnicode_FromString(p->protocol))
            != 0) {
            return -1;
        }
        if (p->has_addr) {
            if (set_steal(env, k_REMOTE_ADDR,
                          PyUnicode_FromString(p->src_addr))
                    != 0
                || set_steal(env, k_REMOTE_PORT,
                             port_str(p->src_port))
                       != 0
                || set_steal(env, k_PROXY_ADDR,
                             PyUnicode_FromString(p->dst_addr))
                       != 0
                || set_steal(env, k_PROXY_PORT,
                             port_str(p->dst_port))
                       != 0) {
                return -1;
            }
            return 0;
        }
    }
    if (c->peer.ss_family != AF_INET && c->peer.ss_family != AF_INET6) {
        /* a unix socket's peer has no address (Gunicorn: '', no port) */
        c->remote_stale = 0;
        return PyDict_SetItem(env, k_REMOTE_ADDR, v_empty);
    }
    if (c->remote_addr == NULL || c->remote_stale) {
        if (c->peer.ss_family == AF_INET) {
            const struct sockaddr_in *s4 =
                (const struct sockaddr_in *) &c->peer;
            hlen = ipv4_str(&s4->sin_addr, host);
            port = ntohs(s4->sin_port);
        } else {
            const struct sockaddr_in6 *s6 =
                (const struct sockaddr_in6 *) &c->peer;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
            hlen = strlen(host);
            port = ntohs(s6->sin6_port);
        }
        Py_XSETREF(c->remote_addr,
                   PyUnicode_DecodeLatin1(host, (Py_ssize_t) hlen, NULL));
        Py_XSETREF(c->remote_port, port_str(port));
        if (c->remote_addr == NULL || c->remote_port == NULL) {
            Py_CLEAR(c->remote_addr);
            Py_CLEAR(c->remote_port);
            return -1;
        }
        c->remote_stale = 0;
    }
    if (PyDict_SetItem(env, k_REMOTE_ADDR, c->remote_addr) != 0) {
        return -1;
    }
    return PyDict_SetItem(env, k_REMOTE_PORT, c->remote_port);
}

static int
sockname(int fd, PyObject **name, PyObject **port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[INET6_ADDRSTRLEN];
    unsigned p;

    if (getsockname(fd, (struct sockaddr *) &ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) &ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
        p = ntohs(s6->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) &ss;
        inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
        p = ntohs(s4->sin_port);
    } else {
        return -1;
    }
    *name = PyUnicode_FromString(buf);
    *port = port_str(p);
    if (*name == NULL || *port == NULL) {
        Py_CLEAR(*name);
        Py_CLEAR(*port);
        return -1;
    }
    return 0;
}

/* The dict an environ starts as: the listener's own template (SERVER_NAME
   and SERVER_PORT already in) for a TCP listener, else the common one. */
static PyObject *
environ_template(const nw_conn *c)
{
    const nw_listener *l = c->listener;

    if (l == NULL || l->family == AF_UNIX) {
        return template_environ;
    }
    for (int i = 0; i < SERVER_CACHE; i++) {
        struct server_entry *e = &server_cache[i];
        if (e->listener == l) {
            return e->environ;
        }
        if (e->listener == NULL) {
            PyObject *name, *port, *env;
            if (sockname(l->fd, &name, &port) != 0) {
                PyErr_Clear();
                return template_environ;
            }
            env = PyDict_Copy(template_environ);
            if (env == NULL || PyDict_SetItem(env, k_SERVER_NAME, name) != 0
                || PyDict_SetItem(env, k_SERVER_PORT, port) != 0) {
                PyErr_Clear();
                Py_XDECREF(env);
                env = NULL;
            }
            Py_DECREF(name);
            Py_DECREF(port);
            if (env == NULL) {
                return template_environ;
            }
            e->listener = l;
            e->environ = env;
            return env;
        }
    }
    return template_environ;
}

/* SERVER_NAME / SERVER_PORT as Gunicorn sets them: the listening socket's
   address for TCP (what the server is, which a client cannot choose); for
   a unix socket, the Host header (port from the scheme), else empty. */
static int
set_server(nw_conn *c, PyObject *env, const char *host, size_t hlen,
           int https)
{
    const nw_listener *l = c->listener;

    if (l != NULL && l->family != AF_UNIX) {
        PyObject *name = NULL, *port = NULL;
        int rc;
        /* more listeners than the cache holds, or no address */
        if (sockname(c->fd, &name, &port) != 0) {
            PyErr_Clear();
            return PyDict_SetItem(env, k_SERVER_NAME, v_empty) == 0
                           && PyDict_SetItem(env, k_SERVER_PORT, v_empty) == 0
                       ? 0
                       : -1;
        }
        rc = PyDict_SetItem(env, k_SERVER_NAME, name) == 0
                     && PyDict_SetItem(env, k_SERVER_PORT, port) == 0
                 ? 0
                 : -1;
        Py_DECREF(name);
        Py_DECREF(port);
        return rc;
    }
    if (host != NULL && hlen > 0) {
        const char *colon = NULL;
        if (host[0] == '[') {
            const char *close = memchr(host, ']', hlen);
            if (close && (size_t) (close - host) + 1 < hlen
                && close[1] == ':') {
                colon = close + 1;
            }
        } else {
            colon = memchr(host, ':', hlen);
        }
        if (colon != NULL) {
            if (set_steal(env, k_SERVER_NAME,
                          PyUnicode_DecodeLatin1(host, colon - host, NULL))
                != 0) {
                return -1;
            }
            return set_steal(env, k_SERVER_PORT,
                             PyUnicode_DecodeLatin1(
                                 colon + 1,
                                 (Py_ssize_t) (hlen - (size_t) (colon - host)
                                               - 1),
                                 NULL));
        }
        if (set_steal(env, k_SERVER_NAME,
                      PyUnicode_DecodeLatin1(host, (Py_ssize_t) hlen, NULL))
            != 0) {
            return -1;
        }
        return PyDict_SetItem(env, k_SERVER_PORT,
                              https ? v_port443 : v_port80);
    }
    if (PyDict_SetItem(env, k_SERVER_NAME, v_empty) != 0) {
        return -1;
    }
    return PyDict_SetItem(env, k_SERVER_PORT, v_empty);
}

/* ------------------------------------------------------------------------
 * Recycling the environ (nw_environ_memo in conn.h)
 */

/* A dict's version tag changes with every change made to it, and no two
   dicts share one.  It is deprecated from Python 3.12 on, where a dict
   watcher would tell the same: there, every request builds a new environ
   (the memo is still kept, never used). */
#if PY_VERSION_HEX < 0x030C0000
#define ENVIRON_RECYCLING 1
static uint64_t
dict_tag(PyObject *d)
{
    return ((PyDictObject *) d)->ma_version_tag;
}
#else
#define ENVIRON_RECYCLING 0
#endif

/* The key of each memo slot, and its value in the template. */
static PyObject *slot_key[NW_ENV_SLOTS], *slot_default[NW_ENV_SLOTS];

static void
slots_init(void)
{
    slot_key[NW_ENV_METHOD] = k_REQUEST_METHOD;
    slot_key[NW_ENV_RAW_URI] = k_RAW_URI;
    slot_key[NW_ENV_PROTOCOL] = k_SERVER_PROTOCOL;
    slot_key[NW_ENV_SCHEME] = k_wsgi_url_scheme;
    slot_key[NW_ENV_SCRIPT_NAME] = k_SCRIPT_NAME;
    slot_key[NW_ENV_PATH_INFO] = k_PATH_INFO;
    slot_key[NW_ENV_QUERY] = k_QUERY_STRING;
    slot_key[NW_ENV_INPUT] = k_wsgi_input;
    slot_default[NW_ENV_METHOD] = v_methods[NW_METHOD_GET];
    slot_default[NW_ENV_RAW_URI] = Py_None;
    slot_default[NW_ENV_PROTOCOL] = v_http11;
    slot_default[NW_ENV_SCHEME] = v_http;
    slot_default[NW_ENV_SCRIPT_NAME] = script_name;
    slot_default[NW_ENV_PATH_INFO] = Py_None;
    slot_default[NW_ENV_QUERY] = v_empty;
    slot_default[NW_ENV_INPUT] = Py_None;
}

/* Which of REMOTE_ADDR, REMOTE_PORT and the PROXY_ keys set_peer sets. */
static unsigned
peer_shape(const nw_conn *c)
{
    int inet = c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6;
    return (c->proxy.present ? 4u : 0u) | (c->proxy.has_addr ? 2u : 0u)
           | (inet ? 1u : 0u);
}

/* The kept environ, when it has the keys this request's has (the same
   template, peer keys and header keys in the same order): then only
   values differ.  Else it is freed. */
static PyObject *
take_spare(nw_conn *c, const PyObject *tmpl, unsigned shape)
{
    nw_environ_memo *m = &c->env_memo;
    const nw_request *r = &c->http.req;
    PyObject *env = m->env;
    unsigned n = 0;

    if (env == NULL) {
        return NULL;
    }
    m->env = NULL;
    if (m->tmpl != tmpl || m->peer_shape != shape
        || m->nheaders > NW_ENV_MEMO_HEADERS) {
        goto unfit;
    }
    for (unsigned i = 0; i < r->nheaders; i++) {
        const nw_header *hd = &r->headers[i];
        if (hd->flags & NW_HDRF_DROP) {
            continue;
        }
        if (n == m->nheaders
            || !key_is(m->hkey[n], hd, nw__span_ptr(&c->http, hd->name))) {
            goto unfit;
        }
        n++;
    }
    if (n == m->nheaders) {
        return env;
    }
unfit:
    Py_DECREF(env);
    return NULL;
}

static int
same_text(PyObject *v, const char *s, size_t n)
{
    return PyUnicode_CheckExact(v) && PyUnicode_KIND(v) == PyUnicode_1BYTE_KIND
           && (size_t) PyUnicode_GET_LENGTH(v) == n
           && memcmp(PyUnicode_1BYTE_DATA(v), s, n) == 0;
}

/* env[slot's key] = v, unless it is already */
static int
put_obj(nw_environ_memo *m, PyObject *env, enum nw_env_slot slot, PyObject *v)
{
    if (m->value[slot] == v) {
        return 0;
    }
    if (PyDict_SetItem(env, slot_key[slot], v) != 0) {
        return -1;
    }
    m->value[slot] = v;
    return 0;
}

/* env[slot's key] = s decoded as latin-1, unless it is that already */
static int
put_text(nw_environ_memo *m, PyObject *env, enum nw_env_slot slot,
         const char *s, size_t n)
{
    PyObject *v;
    int rc;

    if (same_text(m->value[slot], s, n)) {
        return 0;
    }
    v = PyUnicode_DecodeLatin1(s, (Py_ssize_t) n, NULL);
    if (v == NULL) {
        return -1;
    }
    rc = PyDict_SetItem(env, slot_key[slot], v);
    Py_DECREF(v); /* env holds it */
    if (rc == 0) {
        m->value[slot] = v;
    }
    return rc;
}

/* PATH_INFO: urllib.parse.unquote_to_bytes(path).decode('latin-1'), where
   invalid escapes stay as they are */
static int
put_path(nw_environ_memo *m, PyObject *env, const char *path, size_t n)
{
    char small[1024];
    char *d;
    int rc;

    if (memchr(path, '%', n) == NULL) {
        return put_text(m, env, NW_ENV_PATH_INFO, path, n);
    }
    d = n <= sizeof(small) ? small : nw__xmalloc(n);
    rc = put_text(m, env, NW_ENV_PATH_INFO, d, nw__http_unquote(path, n, d));
    if (d != small) {
        free(d);
    }
    return rc;
}

/* One header into a kept environ, which has its key already (the n-th of
   the memo, see take_spare): a value the client repeats is left as it is. */
static int
put_header_again(nw_conn *c, PyObject *env, unsigned n, const nw_header *hd,
                 const char *value)
{
    nw_environ_memo *m = &c->env_memo;
    PyObject *val;

    if (same_text(m->hvalue[n], value, hd->value.len)) {
        return 0;
    }
    val = header_value(c, hd->id, value, hd->value.len);
    if (val == NULL || PyDict_SetItem(env, m->hkey[n], val) != 0) {
        Py_XDECREF(val);
        return -1;
    }
    Py_DECREF(val); /* env holds it */
    m->hvalue[n] = val;
    return 0;
}

/* One header into a new environ, noted as the n-th of the memo; a repeated
   one is joined to the first and makes the memo unknown (*n past the
   end). */
static int
put_header_new(nw_conn *c, PyObject *env, unsigned *n, const nw_header *hd,
               const char *value)
{
    nw_environ_memo *m = &c->env_memo;
    PyObject *key, *val, *old;
    int rc;

    if (hd->id != NW_HDR_OTHER) {
        key = Py_NewRef(k_headers[hd->id]);
    } else {
        key = header_key(nw__span_ptr(&c->http, hd->name), hd->name.len);
        if (key == NULL) {
            return -1;
        }
    }
    val = header_value(c, hd->id, value, hd->value.len);
    old = val != NULL ? PyDict_GetItemWithError(env, key) : NULL;
    if (val == NULL || (old == NULL && PyErr_Occurred())) {
        Py_XDECREF(val);
        Py_DECREF(key);
        return -1;
    }
    if (old != NULL) {
        /* a repeated header: values joined with ',' (Gunicorn) */
        PyObject *joined = PyUnicode_FromFormat("%U,%U", old, val);
        Py_DECREF(val);
        val = joined;
        *n = NW_ENV_MEMO_HEADERS + 1;
    } else if (*n < NW_ENV_MEMO_HEADERS) {
        m->hkey[*n] = key; /* env holds both from here on */
        m->hvalue[*n] = val;
        (*n)++;
    } else {
        *n = NW_ENV_MEMO_HEADERS + 1;
    }
    rc = val != NULL ? PyDict_SetItem(env, key, val) : -1;
    Py_XDECREF(val);
    Py_DECREF(key);
    return rc;
}

/* The request's headers: into the kept environ (recycled), which has the
   same keys, or into a new one. */
static int
put_headers(nw_conn *c, PyObject *env, int recycled, const char **host,
            size_t *hlen)
{
    nw_http *h = &c->http;
    const nw_request *r = &h->req;
    unsigned n = 0;

    for (unsigned i = 0; i < r->nheaders; i++) {
        const nw_header *hd = &r->headers[i];
        const char *value = nw__span_ptr(h, hd->value);

        if (hd->flags & NW_HDRF_DROP) {
            continue; /* header_map=drop */
        }
        if (hd->id == NW_HDR_HOST) {
            *host = value;
            *hlen = hd->value.len;
        }
        if (recycled ? put_header_again(c, env, n++, hd, value)
                     : put_header_new(c, env, &n, hd, value)) {
            return -1;
        }
    }
    if (!recycled) {
        c->env_memo.nheaders = n;
    }
    return 0;
}

static PyObject *
build_environ(nw_conn *c)
{
    nw_http *h = &c->http;
    nw_request *r = &h->req;
    nw_environ_memo *m = &c->env_memo;
    PyObject *tmpl = environ_template(c);
    unsigned shape = peer_shape(c);
    PyObject *env = take_spare(c, tmpl, shape);
    int recycled = env != NULL;
    const char *target = nw__span_ptr(h, r->url);
    const char *path, *query, *host = NULL, *sn;
    size_t plen, qlen, hlen = 0, sn_len;
    int rc;

    if (!recycled) {
        env = PyDict_Copy(tmpl);
        if (env == NULL) {
            return NULL;
        }
        m->tmpl = tmpl;
        m->peer_shape = shape;
        memcpy(m->value, slot_default, sizeof(m->value));
    }
    /* what the memo says env holds is true from here on, whatever fails */
    m->built = env;
    rc = r->method_id != NW_METHOD_OTHER
             ? put_obj(m, env, NW_ENV_METHOD, v_methods[r->method_id])
             : put_text(m, env, NW_ENV_METHOD, nw__span_ptr(h, r->method),
                        r->method.len);
    if (rc != 0 || put_text(m, env, NW_ENV_RAW_URI, target, r->url.len) != 0) {
        goto fail;
    }
    if (r->http_major == 1 && r->http_minor <= 1) {
        rc = put_obj(m, env, NW_ENV_PROTOCOL,
                     r->http_minor == 1 ? v_http11 : v_http10);
    } else {
        char proto[32];
        int n = snprintf(proto, sizeof(proto), "HTTP/%u.%u", r->http_major,
                         r->http_minor);
        rc = put_text(m, env, NW_ENV_PROTOCOL, proto, (size_t) n);
    }
    if (rc != 0
        || put_headers(c, env, recycled, &host, &hlen) != 0
        || put_obj(m, env, NW_ENV_SCHEME,
                   r->scheme == NW_SCHEME_HTTPS ? v_https : v_http)
               != 0) {
        goto fail;
    }

    /* SCRIPT_NAME: the environment variable, or the header of a trusted
       front-end (forwarder_headers); the path must start with it */
    nw__http_split_target(target, r->url.len, &path, &plen, &query, &qlen);
    if (r->has_script_name) {
        sn = nw__span_ptr(h, r->script_name);
        sn_len = r->script_name.len;
    } else {
        sn = (const char *) PyUnicode_1BYTE_DATA(script_name);
        sn_len = (size_t) PyUnicode_GET_LENGTH(script_name);
    }
    if (sn_len > 0) {
        if (sn_len > plen || memcmp(sn, path, sn_len) != 0) {
            char uri[256];
            nw__request_uri(c, uri, sizeof(uri));
            nw__log(NW_LOG_ERROR,
                    "Error handling request %s: the path does not start "
                    "with SCRIPT_NAME '%.*s'",
                    uri, (int) (sn_len > 200 ? 200 : sn_len), sn);
            c->error_status = 500;
            Py_DECREF(env);
            return NULL;
        }
        path += sn_len;
        plen -= sn_len;
    }
    rc = r->has_script_name
             ? put_text(m, env, NW_ENV_SCRIPT_NAME, sn, sn_len)
             : put_obj(m, env, NW_ENV_SCRIPT_NAME, script_name);
    if (rc != 0 || put_path(m, env, path, plen) != 0
        || put_text(m, env, NW_ENV_QUERY, query, qlen) != 0) {
        goto fail;
    }
    /* the peer's keys change with the connection only */
    if ((!recycled || c->remote_stale || c->proxy.present)
        && set_peer(c, env) != 0) {
        goto fail;
    }
    if (tmpl == template_environ
        && set_server(c, env, host, hlen, r->scheme == NW_SCHEME_HTTPS) != 0) {
        goto fail;
    }
    if (put_obj(m, env, NW_ENV_INPUT, c->input) != 0) {
        goto fail;
    }
#if ENVIRON_RECYCLING
    m->tag = dict_tag(env);
#endif
    return env;

fail:
    Py_DECREF(env);
    return NULL;
}

void
nw__wsgi_environ_done(nw_conn *c)
{
    PyObject *env = c->environ;
    nw_environ_memo *m = &c->env_memo;

    if (env == NULL) {
        return;
    }
    c->environ = NULL;
#if ENVIRON_RECYCLING
    /* nothing else holds it and nothing changed it since build_environ */
    if (Py_REFCNT(env) == 1 && m->env == NULL && m->built == env
        && m->nheaders <= NW_ENV_MEMO_HEADERS && dict_tag(env) == m->tag) {
        m->env = env;
        return;
    }
#endif
    (void) m;
    Py_DECREF(env);
}

/* ------------------------------------------------------------------------
 * Calling the app
 */

/* A fresh object when the app kept the previous one (refcount > 1). */
static int
ensure_objects(nw_conn *c)
{
    if (c->start_response != NULL && Py_REFCNT(c->start_response) > 1) {
        nw__wsgi_callable_detach(c->start_response);
        Py_CLEAR(c->start_response);
    }
    if (c->write_fn != NULL && Py_REFCNT(c->write_fn) > 1) {
        nw__wsgi_callable_detach(c->write_fn);
        Py_CLEAR(c->write_fn);
    }
    if (c->input != NULL
        && Py_REFCNT(c->input)
               > 1 + (c->env_memo.env != NULL
                      && c->env_memo.value[NW_ENV_INPUT] == c->input)) {
        /* (a kept environ holds one reference) */
        nw__input_detach(c->input);
        Py_CLEAR(c->input);
    }
    if (c->start_response == NULL) {
        c->start_response = nw__start_response_new(c);
        if (c->start_response == NULL) {
            return NW_ERROR;
        }
    }
    if (c->write_fn == NULL) {
        c->write_fn = nw__write_new(c);
        if (c->write_fn == NULL) {
            return NW_ERROR;
        }
    }
    if (c->input == NULL) {
        c->input = nw__input_new(c);
        if (c->input == NULL) {
            return NW_ERROR;
        }
    } else {
        nw__input_reset(c->input);
    }
    return NW_OK;
}

void
nw__wsgi_release(nw_conn *c)
{
    nw__wsgi_finish(c);
    if (c->start_response != NULL) {
        nw__wsgi_callable_detach(c->start_response);
        Py_CLEAR(c->start_response);
    }
    if (c->write_fn != NULL) {
        nw__wsgi_callable_detach(c->write_fn);
        Py_CLEAR(c->write_fn);
    }
    if (c->input != NULL) {
        nw__input_detach(c->input);
        Py_CLEAR(c->input);
    }
    Py_CLEAR(c->queued);
    Py_CLEAR(c->env_memo.env);
    Py_CLEAR(c->remote_addr);
    Py_CLEAR(c->remote_port);
    for (int i = 0; i < NW_CONN_HEADER_CACHE; i++) {
        Py_CLEAR(c->header_cache[i]);
    }
}

static void
start_request(nw_conn *c)
{
    nw__resp_reset(&c->resp);
    c->phase = NW_WSGI_IDLE;
    c->failed = 0;
    c->use_file = 0;
    c->cut_short = 0;
    c->error_status = 0;
    c->index = 0;
    c->queued_pos = 0;
}

PyObject *
nw__wsgi_environ(nw_conn *c)
{
    start_request(c);
    if (ensure_objects(c) != NW_OK) {
        return NULL;
    }
    return build_environ(c);
}

int
nw__wsgi_call(nw_conn *c, PyObject *app)
{
    PyObject *args[2];

    start_request(c);
    if ((nw__hook_mask & NW_REQUEST_HOOKS)
        && nw__request_begin(c) != NW_OK) {
        /* a pre_request hook failed (its traceback is logged): a 500, as
           Gunicorn's handle_error, and post_request still runs */
        c->error_status = 500;
        c->resp.must_close = 1;
        c->phase = NW_WSGI_FINISH;
        return NW_ERROR;
    }
    if (ensure_objects(c) != NW_OK) {
        goto error;
    }
    c->environ = build_environ(c);
    if (c->environ == NULL) {
        goto error;
    }
    args[0] = c->environ;
    args[1] = c->start_response;
    c->result = PyObject_Vectorcall(app, args, 2, NULL);
    if (c->result == NULL) {
        goto error;
    }
    if (!PyList_CheckExact(c->result) && !PyTuple_CheckExact(c->result)) {
        c->iter = PyObject_GetIter(c->result);
        if (c->iter == NULL) {
            goto error;
        }
    }
    c->phase = NW_WSGI_BODY;
    return NW_OK;

error:
    if (nw__app_quit(c)) {
        c->phase = NW_WSGI_DONE;
        return NW_ERROR;
    }
    if (c->error_status != 0 || c->failed) {
        /* the request was refused while the app read its body, the
           client left, or it cannot be served: that, not a 500 */
        if (PyErr_Occurred()) {
            char uri[256];
            nw__request_uri(c, uri, sizeof(uri));
            nw__log_py_exception(NW_LOG_DEBUG, "Error handling request %s",
                                 uri);
        }
    } else {
        char uri[256];
        nw__request_uri(c, uri, sizeof(uri));
        nw__log_py_exception(NW_LOG_ERROR, "Error handling request %s", uri);
        c->error_status = 500;
    }
    if (c->resp.headers_sent) {
        /* write() already sent the head: all that is left is to close */
        c->failed = 1;
        c->resp.must_close = 1;
        c->phase = NW_WSGI_DONE;
    } else if (c->error_status == 500 && !c->failed && c->queued != NULL
               && PyList_GET_SIZE(c->queued) > 0) {
        /* event mode: write() queued bytes, which committed the response
           as surely as sending them: the head and those bytes go out,
           then the connection closes without a last chunk, as in
           blocking mode */
        c->error_status = 0;
        c->cut_short = 1;
        c->resp.must_close = 1;
        c->phase = NW_WSGI_FINISH;
    } else {
        c->phase = NW_WSGI_FINISH;
    }
    return NW_ERROR;
}

int
nw__app_quit(nw_conn *c)
{
    char uri[256];

    if (!PyErr_ExceptionMatches(PyExc_SystemExit)) {
        return 0;
    }
    PyErr_Clear();
    nw__request_uri(c, uri, sizeof(uri));
    nw__log(NW_LOG_INFO, "Request %s interrupted: the worker is quitting",
            uri);
    c->failed = 1;
    c->resp.must_close = 1;
    return 1;
}
