#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <narwhal/version.h>

#include "log.h"
#include "memory.h"
#include "wsgi.h"

/* Response pieces are pulled until this many bytes are ready to write. */
#define PULL_BYTES (64 * 1024)

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
    X(CONTENT_TYPE)                                                           \
    X(CONTENT_LENGTH)

#define X(name) static PyObject *k_##name;
NW_ENVIRON_KEYS(X)
#undef X

static PyObject *k_wsgi_input;
static PyObject *k_wsgi_url_scheme;
static PyObject *template_environ;
static PyObject *v_http10, *v_http11, *v_empty, *v_http;
static PyObject *method_names[64];
static PyObject *script_name; /* from the SCRIPT_NAME environment variable */
static PyObject *str_close;

/* Common request headers, looked up without building their key. */
static struct common_header {
    const char *name;
    const char *key;
    PyObject *obj;
} common_headers[] = {
    {"host", "HTTP_HOST", NULL},
    {"user-agent", "HTTP_USER_AGENT", NULL},
    {"accept", "HTTP_ACCEPT", NULL},
    {"accept-encoding", "HTTP_ACCEPT_ENCODING", NULL},
    {"accept-language", "HTTP_ACCEPT_LANGUAGE", NULL},
    {"connection", "HTTP_CONNECTION", NULL},
    {"cookie", "HTTP_COOKIE", NULL},
    {"referer", "HTTP_REFERER", NULL},
    {"cache-control", "HTTP_CACHE_CONTROL", NULL},
    {"origin", "HTTP_ORIGIN", NULL},
    {"authorization", "HTTP_AUTHORIZATION", NULL},
    {"pragma", "HTTP_PRAGMA", NULL},
    {"x-forwarded-for", "HTTP_X_FORWARDED_FOR", NULL},
    {"x-forwarded-proto", "HTTP_X_FORWARDED_PROTO", NULL},
    {"x-forwarded-host", "HTTP_X_FORWARDED_HOST", NULL},
    {"x-real-ip", "HTTP_X_REAL_IP", NULL},
    {"x-requested-with", "HTTP_X_REQUESTED_WITH", NULL},
    {"if-none-match", "HTTP_IF_NONE_MATCH", NULL},
    {"if-modified-since", "HTTP_IF_MODIFIED_SINCE", NULL},
    {"upgrade-insecure-requests", "HTTP_UPGRADE_INSECURE_REQUESTS", NULL},
    {"sec-fetch-site", "HTTP_SEC_FETCH_SITE", NULL},
    {"sec-fetch-mode", "HTTP_SEC_FETCH_MODE", NULL},
    {"sec-fetch-dest", "HTTP_SEC_FETCH_DEST", NULL},
    {"sec-fetch-user", "HTTP_SEC_FETCH_USER", NULL},
    {"dnt", "HTTP_DNT", NULL},
    {"te", "HTTP_TE", NULL},
    {"upgrade", "HTTP_UPGRADE", NULL},
    {"expect", "HTTP_EXPECT", NULL},
    {"range", "HTTP_RANGE", NULL},
    {"x-request-id", "HTTP_X_REQUEST_ID", NULL},
};

/* ------------------------------------------------------------------------
 * Logging Python exceptions in narwhal's format.
 */

void
nw__log_py_exception(int level, const char *fmt, ...)
{
    PyObject *type, *value, *tb, *mod = NULL, *lines = NULL, *text = NULL;
    const char *trace = NULL;
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        nw__log(level, "%s", what);
        return;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    mod = PyImport_ImportModule("traceback");
    if (mod != NULL) {
        lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                    value, tb ? tb : Py_None);
    }
    if (lines != NULL) {
        PyObject *sep = PyUnicode_FromString("");
        if (sep != NULL) {
            text = PyUnicode_Join(sep, lines);
            Py_DECREF(sep);
        }
    }
    if (text != NULL) {
        trace = PyUnicode_AsUTF8(text);
    }
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
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* ------------------------------------------------------------------------
 * start_response and write
 */

typedef struct {
    PyObject_HEAD
    nw_conn *conn;
} nw_StartResponse;

typedef struct {
    PyObject_HEAD
    nw_conn *conn;
} nw_Write;

/* The bytes of a str that PEP 3333 requires to be latin-1: no copy. */
static const char *
latin1_data(PyObject *s, Py_ssize_t *len, const char *what)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                     Py_TYPE(s)->tp_name);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) != 0) {
        return NULL;
    }
#endif
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError,
                     "%s %R has characters outside latin-1 (PEP 3333)", what,
                     s);
        return NULL;
    }
    *len = PyUnicode_GET_LENGTH(s);
    return (const char *) PyUnicode_1BYTE_DATA(s);
}

static PyObject *
start_response_call(nw_StartResponse *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    nw_conn *c = self->conn;
    const char *data;
    Py_ssize_t len, n;
    char err[256];

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist,
                                     &status, &headers, &exc_info)) {
        return NULL;
    }
    if (c == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response called after its request ended");
        return NULL;
    }
    if (exc_info != Py_None) {
        if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "exc_info must be a (type, value, traceback) "
                            "tuple");
            return NULL;
        }
        if (c->resp.headers_sent) {
            /* PEP 3333: too late to change the response; re-raise */
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0);
            PyObject *v = PyTuple_GET_ITEM(exc_info, 1);
            PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? NULL : tb);
            if (tb == Py_None) {
                Py_DECREF(tb);
            }
            return NULL;
        }
        nw__resp_clear_headers(&c->resp);
    } else if (c->resp.status != 0) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without "
                        "exc_info");
        return NULL;
    }
    data = latin1_data(status, &len, "status");
    if (data == NULL) {
        return NULL;
    }
    if (nw__resp_set_status(&c->resp, data, (size_t) len, err, sizeof(err))
        != NW_OK) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError,
                     "headers must be a list of (name, value) tuples, not "
                     "%.100s",
                     Py_TYPE(headers)->tp_name);
        c->resp.status = 0;
        return NULL;
    }
    n = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        const char *name, *value;
        Py_ssize_t nlen, vlen;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "header %zd must be a (name, value) tuple, not %R",
                         i, item);
            goto fail;
        }
        name = latin1_data(PyTuple_GET_ITEM(item, 0), &nlen, "header name");
        if (name == NULL) {
            goto fail;
        }
        value = latin1_data(PyTuple_GET_ITEM(item, 1), &vlen,
                            "header value");
        if (value == NULL) {
            goto fail;
        }
        if (nw__resp_add_header(&c->resp, name, (size_t) nlen, value,
                                (size_t) vlen, err, sizeof(err))
            != NW_OK) {
            PyErr_SetString(PyExc_ValueError, err);
            goto fail;
        }
    }
    Py_INCREF(c->write_fn);
    return c->write_fn;

fail:
    nw__resp_clear_headers(&c->resp);
    c->resp.status = 0;
    return NULL;
}

static void
detached_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.StartResponse",
    .tp_basicsize = sizeof(nw_StartResponse),
    .tp_dealloc = detached_dealloc,
    .tp_call = (ternaryfunc) start_response_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "PEP 3333 start_response(status, headers, exc_info=None)",
};

static int emit_written(nw_conn *c, PyObject *data);

static PyObject *
write_call(nw_Write *self, PyObject *args, PyObject *kw)
{
    PyObject *data;
    nw_conn *c = self->conn;

    if (!PyArg_ParseTuple(args, "O:write", &data)) {
        return NULL;
    }
    if (c == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called after its request ended");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (c->resp.status == 0) {
        PyErr_SetString(PyExc_AssertionError,
                        "write() called before start_response");
        return NULL;
    }
    if (emit_written(c, data) != NW_OK) {
        PyErr_SetString(PyExc_OSError,
                        "write() failed: the client closed the connection");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyTypeObject WriteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.Write",
    .tp_basicsize = sizeof(nw_Write),
    .tp_dealloc = detached_dealloc,
    .tp_call = (ternaryfunc) write_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "PEP 3333 write(data), returned by start_response",
};

/* ------------------------------------------------------------------------
 * wsgi.file_wrapper
 */

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} nw_FileWrapper;

static int
filewrapper_init(nw_FileWrapper *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:FileWrapper", kwlist,
                                     &filelike, &blksize)) {
        return -1;
    }
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return -1;
    }
    Py_INCREF(filelike);
    Py_XSETREF(self->filelike, filelike);
    self->blksize = blksize;
    return 0;
}

static void
filewrapper_dealloc(nw_FileWrapper *self)
{
    Py_XDECREF(self->filelike);
    Py_TYPE(self)->tp_free((PyObject *) self);
}

static PyObject *
filewrapper_next(nw_FileWrapper *self)
{
    PyObject *data;

    if (self->filelike == NULL) {
        return NULL;
    }
    data = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
    if (data == NULL) {
        return NULL;
    }
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return NULL; /* StopIteration */
    }
    return data;
}

static PyObject *
filewrapper_close(nw_FileWrapper *self, PyObject *unused)
{
    if (self->filelike != NULL
        && PyObject_HasAttr(self->filelike, str_close)) {
        PyObject *r = PyObject_CallMethodNoArgs(self->filelike, str_close);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyMethodDef filewrapper_methods[] = {
    {"close", (PyCFunction) filewrapper_close, METH_NOARGS,
     "close the wrapped file"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FileWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.FileWrapper",
    .tp_basicsize = sizeof(nw_FileWrapper),
    .tp_dealloc = (destructor) filewrapper_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192)",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc) filewrapper_next,
    .tp_methods = filewrapper_methods,
    .tp_init = (initproc) filewrapper_init,
    .tp_new = PyType_GenericNew,
};

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

int
nw__wsgi_init(int multithread, int multiprocess)
{
    PyObject *version, *errors, *sys;
    const char *sn;

    if (PyType_Ready(&StartResponseType) < 0 || PyType_Ready(&WriteType) < 0
        || PyType_Ready(&FileWrapperType) < 0
        || PyType_Ready(&nw__InputType) < 0) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot create WSGI types");
        return NW_ERROR;
    }
#define X(name)                                                               \
    if ((k_##name = interned(#name)) == NULL) {                               \
        return NW_ERROR;                                                      \
    }
    NW_ENVIRON_KEYS(X)
#undef X
    k_wsgi_input = interned("wsgi.input");
    k_wsgi_url_scheme = interned("wsgi.url_scheme");
    v_http10 = interned("HTTP/1.0");
    v_http11 = interned("HTTP/1.1");
    v_empty = interned("");
    v_http = interned("http");
    str_close = interned("close");
    if (!k_wsgi_input || !k_wsgi_url_scheme || !v_http10 || !v_http11
        || !v_empty || !v_http || !str_close) {
        return NW_ERROR;
    }
    for (size_t i = 0; i < sizeof(common_headers) / sizeof(common_headers[0]);
         i++) {
        common_headers[i].obj = interned(common_headers[i].key);
        if (common_headers[i].obj == NULL) {
            return NW_ERROR;
        }
    }
#define METHOD(num, name, string)                                             \
    if ((num) < 64) {                                                         \
        method_names[num] = interned(#string);                                \
    }
    HTTP_METHOD_MAP(METHOD)
#undef METHOD
    sn = getenv("SCRIPT_NAME");
    script_name = sn ? PyUnicode_DecodeLatin1(sn, (Py_ssize_t) strlen(sn),
                                              "replace")
                     : (Py_INCREF(v_empty), v_empty);

    sys = PyImport_ImportModule("sys");
    errors = sys ? PyObject_GetAttrString(sys, "stderr") : NULL;
    Py_XDECREF(sys);
    version = Py_BuildValue("(ii)", 1, 0);
    template_environ = PyDict_New();
    if (errors == NULL || version == NULL || template_environ == NULL
        || script_name == NULL) {
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
    SET("wsgi.file_wrapper", (PyObject *) &FileWrapperType)
    SET("wsgi.input_terminated", Py_True)
#undef SET
    {
        PyObject *sw = PyUnicode_FromString("narwhal/" NW_VERSION);
        if (sw == NULL || PyDict_SetItem(template_environ, k_SERVER_SOFTWARE,
                                         sw) != 0) {
            Py_XDECREF(sw);
            return NW_ERROR;
        }
        Py_DECREF(sw);
    }
    Py_DECREF(version);
    Py_DECREF(errors);
    return NW_OK;
}

/* ------------------------------------------------------------------------
 * The environ
 */

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* urllib.parse.unquote_to_bytes(s).decode('latin-1'): invalid escapes
   stay as they are. */
static PyObject *
unquote_latin1(const char *s, size_t n)
{
    char small[1024];
    char *d;
    size_t j = 0;
    PyObject *out;

    if (memchr(s, '%', n) == NULL) {
        return PyUnicode_DecodeLatin1(s, (Py_ssize_t) n, NULL);
    }
    d = n <= sizeof(small) ? small : nw__xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n
            && (hi = hexval((unsigned char) s[i + 1])) >= 0
            && (lo = hexval((unsigned char) s[i + 2])) >= 0) {
            d[j++] = (char) (hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    out = PyUnicode_DecodeLatin1(d, (Py_ssize_t) j, NULL);
    if (d != small) {
        free(d);
    }
    return out;
}

/* HTTP_ + upper-cased name with '-' as '_', built in place. */
static PyObject *
header_key(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(common_headers) / sizeof(common_headers[0]);
         i++) {
        const char *cn = common_headers[i].name;
        if (strlen(cn) == n && strncasecmp(cn, name, n) == 0) {
            Py_INCREF(common_headers[i].obj);
            return common_headers[i].obj;
        }
    }
    {
        PyObject *key = PyUnicode_New((Py_ssize_t) n + 5, 127);
        Py_UCS1 *d;
        if (key == NULL) {
            return NULL;
        }
        d = PyUnicode_1BYTE_DATA(key);
        memcpy(d, "HTTP_", 5);
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char) name[i];
            d[5 + i] = ch == '-' ? '_'
                       : (ch >= 'a' && ch <= 'z') ? (Py_UCS1) (ch - 32)
                                                  : ch;
        }
        return key;
    }
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

static int
set_peer(nw_conn *c, PyObject *env)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;

    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) &c->peer;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 =
            (const struct sockaddr_in6 *) &c->peer;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    } else {
        /* a unix socket's peer has no address (Gunicorn: '') */
        return PyDict_SetItem(env, k_REMOTE_ADDR, v_empty);
    }
    if (set_steal(env, k_REMOTE_ADDR, PyUnicode_FromString(host)) != 0) {
        return -1;
    }
    return set_steal(env, k_REMOTE_PORT, PyUnicode_FromFormat("%u", port));
}

/* SERVER_NAME / SERVER_PORT as Gunicorn sets them: the listening socket's
   address for TCP; for a unix socket, the Host header (port from the
   scheme), else empty. */
static int
set_server(nw_conn *c, PyObject *env, const char *host, size_t hlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char name[INET6_ADDRSTRLEN];

    if (c->listener->family != AF_UNIX
        && getsockname(c->fd, (struct sockaddr *) &ss, &len) == 0) {
        unsigned port;
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) &ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, name, sizeof(name));
            port = ntohs(s6->sin6_port);
        } else {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *) &ss;
            inet_ntop(AF_INET, &s4->sin_addr, name, sizeof(name));
            port = ntohs(s4->sin_port);
        }
        if (set_steal(env, k_SERVER_NAME, PyUnicode_FromString(name)) != 0) {
            return -1;
        }
        return set_steal(env, k_SERVER_PORT,
                         PyUnicode_FromFormat("%u", port));
    }
    if (host != NULL) {
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
        return set_steal(env, k_SERVER_PORT, PyUnicode_FromString("80"));
    }
    if (PyDict_SetItem(env, k_SERVER_NAME, v_empty) != 0) {
        return -1;
    }
    return PyDict_SetItem(env, k_SERVER_PORT, v_empty);
}

/* The path of the request target: origin-form as is; absolute-form
   without its scheme and authority. */
static void
split_target(const char *t, size_t n, const char **path, size_t *plen,
             const char **query, size_t *qlen)
{
    const char *end = t + n, *p = t, *q, *hash;

    if (n > 0 && t[0] != '/') {
        const char *scheme = memchr(t, ':', n);
        if (scheme && scheme + 2 < end && scheme[1] == '/' && scheme[2] == '/') {
            const char *slash = memchr(scheme + 3, '/',
                                       (size_t) (end - scheme - 3));
            p = slash ? slash : end;
        } else {
            p = end; /* '*' or authority-form: no path */
        }
    }
    hash = memchr(p, '#', (size_t) (end - p));
    if (hash != NULL) {
        end = hash;
    }
    q = memchr(p, '?', (size_t) (end - p));
    *path = p;
    *plen = (size_t) ((q ? q : end) - p);
    *query = q ? q + 1 : end;
    *qlen = q ? (size_t) (end - q - 1) : 0;
}

static PyObject *
build_environ(nw_conn *c)
{
    nw_http *h = &c->http;
    nw_request *r = &h->req;
    PyObject *env = PyDict_Copy(template_environ);
    const char *target = nw__span_ptr(h, r->url);
    const char *path, *query, *host = NULL;
    size_t plen, qlen, hlen = 0;
    PyObject *method;
    Py_ssize_t sn_len;

    if (env == NULL) {
        return NULL;
    }
    method = r->method_id < 64 ? method_names[r->method_id] : NULL;
    if (method != NULL) {
        if (PyDict_SetItem(env, k_REQUEST_METHOD, method) != 0) {
            goto fail;
        }
    } else if (set_steal(env, k_REQUEST_METHOD,
                         PyUnicode_DecodeLatin1(nw__span_ptr(h, r->method),
                                                r->method.len, NULL))
               != 0) {
        goto fail;
    }
    if (set_steal(env, k_RAW_URI,
                  PyUnicode_DecodeLatin1(target, r->url.len, NULL))
        != 0) {
        goto fail;
    }
    split_target(target, r->url.len, &path, &plen, &query, &qlen);
    sn_len = PyUnicode_GET_LENGTH(script_name);
    if (sn_len > 0 && (size_t) sn_len <= plen
        && memcmp(PyUnicode_1BYTE_DATA(script_name), path, (size_t) sn_len)
               == 0) {
        path += sn_len;
        plen -= (size_t) sn_len;
    }
    if (PyDict_SetItem(env, k_SCRIPT_NAME, script_name) != 0
        || set_steal(env, k_PATH_INFO, unquote_latin1(path, plen)) != 0
        || set_steal(env, k_QUERY_STRING,
                     PyUnicode_DecodeLatin1(query, (Py_ssize_t) qlen, NULL))
               != 0
        || PyDict_SetItem(env, k_SERVER_PROTOCOL,
                          r->http_minor == 0 ? v_http10 : v_http11)
               != 0) {
        goto fail;
    }

    for (unsigned i = 0; i < r->nheaders; i++) {
        const nw_header *hd = &r->headers[i];
        const char *name = nw__span_ptr(h, hd->name);
        const char *value = nw__span_ptr(h, hd->value);
        size_t nlen = hd->name.len, vlen = hd->value.len;
        PyObject *key, *val, *old;

        if (memchr(name, '_', nlen) != NULL) {
            continue; /* header_map=drop: '_' and '-' would collide */
        }
        while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t')) {
            vlen--;
        }
        if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0) {
            key = k_CONTENT_TYPE;
            Py_INCREF(key);
        } else if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
            key = k_CONTENT_LENGTH;
            Py_INCREF(key);
        } else {
            if (nlen == 4 && strncasecmp(name, "host", 4) == 0) {
                host = value;
                hlen = vlen;
            }
            key = header_key(name, nlen);
            if (key == NULL) {
                goto fail;
            }
        }
        val = PyUnicode_DecodeLatin1(value, (Py_ssize_t) vlen, NULL);
        if (val == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        old = PyDict_GetItemWithError(env, key);
        if (old != NULL) {
            /* a repeated header: values joined with ',' (Gunicorn) */
            PyObject *joined = PyUnicode_FromFormat("%U,%U", old, val);
            Py_DECREF(val);
            val = joined;
        }
        if (val == NULL || PyDict_SetItem(env, key, val) != 0) {
            Py_XDECREF(val);
            Py_DECREF(key);
            goto fail;
        }
        Py_DECREF(val);
        Py_DECREF(key);
    }
    if (set_peer(c, env) != 0 || set_server(c, env, host, hlen) != 0) {
        goto fail;
    }
    if (PyDict_SetItem(env, k_wsgi_input, c->input) != 0) {
        goto fail;
    }
    return env;

fail:
    Py_DECREF(env);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Calling the app and pulling the response
 */

/* A fresh object when the app kept the previous one (refcount > 1). */
static int
ensure_objects(nw_conn *c)
{
    if (c->start_response != NULL && Py_REFCNT(c->start_response) > 1) {
        ((nw_StartResponse *) c->start_response)->conn = NULL;
        Py_CLEAR(c->start_response);
    }
    if (c->write_fn != NULL && Py_REFCNT(c->write_fn) > 1) {
        ((nw_Write *) c->write_fn)->conn = NULL;
        Py_CLEAR(c->write_fn);
    }
    if (c->input != NULL && Py_REFCNT(c->input) > 1) {
        nw__input_detach(c->input);
        Py_CLEAR(c->input);
    }
    if (c->start_response == NULL) {
        nw_StartResponse *sr = PyObject_New(nw_StartResponse,
                                            &StartResponseType);
        if (sr == NULL) {
            return NW_ERROR;
        }
        sr->conn = c;
        c->start_response = (PyObject *) sr;
    }
    if (c->write_fn == NULL) {
        nw_Write *wr = PyObject_New(nw_Write, &WriteType);
        if (wr == NULL) {
            return NW_ERROR;
        }
        wr->conn = c;
        c->write_fn = (PyObject *) wr;
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

static void
request_uri(const nw_conn *c, char *buf, size_t len)
{
    const nw_http *h = &c->http;
    snprintf(buf, len, "%.*s", (int) (h->req.url.len > 200 ? 200 : h->req.url.len),
             nw__span_ptr(h, h->req.url));
}

int
nw__wsgi_call(nw_conn *c, PyObject *app)
{
    PyObject *args;
    char uri[256];

    nw__resp_reset(&c->resp);
    c->phase = NW_WSGI_IDLE;
    c->failed = 0;
    c->error_status = 0;
    c->index = 0;
    if (ensure_objects(c) != NW_OK) {
        goto error;
    }
    c->environ = build_environ(c);
    if (c->environ == NULL) {
        goto error;
    }
    args = PyTuple_Pack(2, c->environ, c->start_response);
    if (args == NULL) {
        goto error;
    }
    c->result = PyObject_Call(app, args, NULL);
    Py_DECREF(args);
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
    request_uri(c, uri, sizeof(uri));
    nw__log_py_exception(NW_LOG_ERROR, "Error handling request %s", uri);
    c->error_status = 500;
    c->phase = NW_WSGI_FINISH;
    return NW_ERROR;
}

/* The next non-empty bytes of the result: 1 with *chunk set, 0 at the
   end, -1 on an exception. */
static int
next_chunk(nw_conn *c, PyObject **chunk)
{
    for (;;) {
        PyObject *item;
        if (c->iter == NULL) {
            if (c->index >= PySequence_Fast_GET_SIZE(c->result)) {
                return 0;
            }
            item = PySequence_Fast_GET_ITEM(c->result, c->index);
            c->index++;
            Py_INCREF(item);
        } else {
            item = PyIter_Next(c->iter);
            if (item == NULL) {
                return PyErr_Occurred() ? -1 : 0;
            }
        }
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError,
                         "the response body must be an iterable of bytes, "
                         "got %.100s",
                         Py_TYPE(item)->tp_name);
            Py_DECREF(item);
            return -1;
        }
        if (PyBytes_GET_SIZE(item) == 0) {
            Py_DECREF(item);
            continue;
        }
        *chunk = item;
        return 1;
    }
}

static void
out_reset(nw_out *out)
{
    out->niov = 0;
    out->nrefs = 0;
    out->bytes = 0;
    out->last = 0;
}

void
nw__out_release(nw_out *out)
{
    for (int i = 0; i < out->nrefs; i++) {
        Py_DECREF(out->refs[i]);
    }
    out->nrefs = 0;
    out->niov = 0;
    out->bytes = 0;
}

static void
out_add(nw_out *out, const void *p, size_t n)
{
    out->iov[out->niov].iov_base = (void *) p;
    out->iov[out->niov].iov_len = n;
    out->niov++;
    out->bytes += n;
}

static int
out_full(const nw_out *out)
{
    return out->niov + 4 > NW_OUT_IOV || out->nrefs + 1 >= NW_OUT_REFS
           || out->bytes >= PULL_BYTES;
}

/* Put the response head into out. */
static void
add_head(nw_conn *c, nw_out *out)
{
    const nw_request *r = &c->http.req;
    size_t n;

    nw__resp_frame(&c->resp, r->http_major > 1 || r->http_minor >= 1,
                   r->method_id == HTTP_HEAD, 0);
    n = nw__resp_head(&c->resp, r->http_major, r->http_minor, c->head,
                      c->head_cap);
    if (n > c->head_cap) {
        c->head_cap = n + 256;
        c->head = nw__xrealloc(c->head, c->head_cap);
        n = nw__resp_head(&c->resp, r->http_major, r->http_minor, c->head,
                          c->head_cap);
    }
    out_add(out, c->head, n);
    c->resp.headers_sent = 1;
}

/* Add one chunk (a new reference, stolen) with its framing. */
static void
add_chunk(nw_conn *c, nw_out *out, PyObject *chunk)
{
    nw_resp *r = &c->resp;
    size_t n = (size_t) PyBytes_GET_SIZE(chunk);

    if (r->no_body) {
        Py_DECREF(chunk);
        return;
    }
    if (r->content_length >= 0) {
        uint64_t left = (uint64_t) r->content_length - r->sent;
        if (n > left) {
            /* never more than Content-Length: the excess would be read as
               the next response */
            if (left == 0 || !r->must_close) {
                nw__log(NW_LOG_WARNING,
                        "response body longer than its Content-Length (%lld):"
                        " the excess is dropped",
                        (long long) r->content_length);
            }
            n = (size_t) left;
            r->must_close = 1;
            if (n == 0) {
                Py_DECREF(chunk);
                return;
            }
        }
    }
    if (r->chunked) {
        char *frame = out->frames[out->nrefs];
        out_add(out, frame, nw__resp_chunk_header(n, frame));
        out_add(out, PyBytes_AS_STRING(chunk), n);
        out_add(out, "\r\n", 2);
    } else {
        out_add(out, PyBytes_AS_STRING(chunk), n);
    }
    out->refs[out->nrefs++] = chunk;
    r->sent += n;
}

static void
finish_body(nw_conn *c, nw_out *out)
{
    nw_resp *r = &c->resp;

    if (r->chunked) {
        out_add(out, "0\r\n\r\n", 5);
    }
    if (!r->no_body && r->content_length >= 0
        && r->sent < (uint64_t) r->content_length) {
        char uri[256];
        request_uri(c, uri, sizeof(uri));
        nw__log(NW_LOG_WARNING,
                "response to %s shorter than its Content-Length (%llu of "
                "%lld bytes): closing the connection",
                uri, (unsigned long long) r->sent,
                (long long) r->content_length);
        r->must_close = 1;
        c->failed = 1;
    }
    out->last = 1;
    c->phase = NW_WSGI_DONE;
}

static void
add_error(nw_conn *c, nw_out *out, int status)
{
    size_t need = 1024;

    if (c->head_cap < need) {
        c->head_cap = need;
        c->head = nw__xrealloc(c->head, need);
    }
    out_add(out, c->head, nw__resp_error(status, "", c->head, c->head_cap));
    c->resp.headers_sent = 1;
    c->resp.must_close = 1;
    c->resp.status = status;
    out->last = 1;
    c->phase = NW_WSGI_DONE;
}

int
nw__wsgi_pull(nw_conn *c, nw_out *out)
{
    PyObject *chunk;
    int rc;
    char uri[256];

    out_reset(out);
    if (c->phase == NW_WSGI_DONE) {
        out->last = 1;
        return NW_OK;
    }
    if (!c->resp.headers_sent) {
        if (c->error_status == 0 && c->phase == NW_WSGI_BODY
            && c->pending == NULL) {
            rc = next_chunk(c, &c->pending);
            if (rc < 0) {
                request_uri(c, uri, sizeof(uri));
                nw__log_py_exception(NW_LOG_ERROR,
                                     "Error handling request %s", uri);
                c->error_status = 500;
            } else if (rc == 0) {
                c->phase = NW_WSGI_FINISH;
            }
        }
        if (c->error_status == 0 && c->resp.status == 0) {
            request_uri(c, uri, sizeof(uri));
            nw__log(NW_LOG_ERROR,
                    "Error handling request %s: the app returned without "
                    "calling start_response",
                    uri);
            c->error_status = 500;
        }
        if (c->error_status != 0) {
            Py_CLEAR(c->pending);
            add_error(c, out, c->error_status);
            return NW_OK;
        }
        add_head(c, out);
    }
    if (c->pending != NULL) {
        add_chunk(c, out, c->pending);
        c->pending = NULL;
    }
    while (c->phase == NW_WSGI_BODY && !out_full(out)) {
        rc = next_chunk(c, &chunk);
        if (rc < 0) {
            request_uri(c, uri, sizeof(uri));
            nw__log_py_exception(NW_LOG_ERROR, "Error handling request %s",
                                 uri);
            c->failed = 1;
            c->resp.must_close = 1;
            out->last = 1;
            c->phase = NW_WSGI_DONE;
            return NW_ERROR;
        }
        if (rc == 0) {
            c->phase = NW_WSGI_FINISH;
            break;
        }
        add_chunk(c, out, chunk);
    }
    if (c->phase == NW_WSGI_FINISH) {
        finish_body(c, out);
    }
    return NW_OK;
}

/* write(): in the blocking classes, the head (once) and data go out now. */
static int
emit_written(nw_conn *c, PyObject *data)
{
    nw_out out;
    int rc;

    out_reset(&out);
    if (!c->resp.headers_sent) {
        add_head(c, &out);
    }
    Py_INCREF(data);
    add_chunk(c, &out, data);
    rc = out.niov > 0 ? nw__conn_write_all(c, out.iov, out.niov, 1) : NW_OK;
    nw__out_release(&out);
    if (rc != NW_OK) {
        c->failed = 1;
        c->resp.must_close = 1;
    }
    return rc;
}

void
nw__wsgi_finish(nw_conn *c)
{
    Py_CLEAR(c->pending);
    Py_CLEAR(c->iter);
    if (c->result != NULL) {
        /* PEP 3333: close() is called whatever happened */
        if (PyObject_HasAttr(c->result, str_close)) {
            PyObject *r = PyObject_CallMethodNoArgs(c->result, str_close);
            if (r == NULL) {
                char uri[256];
                request_uri(c, uri, sizeof(uri));
                nw__log_py_exception(NW_LOG_ERROR,
                                     "Error closing the response to %s", uri);
            }
            Py_XDECREF(r);
        }
        Py_CLEAR(c->result);
    }
    Py_CLEAR(c->environ);
    c->phase = NW_WSGI_IDLE;
}
