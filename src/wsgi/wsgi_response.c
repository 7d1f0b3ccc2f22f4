#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accesslog/accesslog.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "wsgi/wsgi.h"

/* Response pieces are pulled until this many bytes are ready to write. */
#define PULL_BYTES (64 * 1024)

static PyObject *str_close, *str_fileno, *str_tell;

/* ------------------------------------------------------------------------
 * start_response and write
 */

/* Called through vectorcall: no argument tuple is built per call. */
typedef struct {
    PyObject_HEAD
    nw_conn *conn;
    vectorcallfunc vectorcall;
} nw_Callable;

void
nw__request_uri(const nw_conn *c, char *buf, size_t len)
{
    const nw_http *h = &c->http;
    if (h->req.url.len == 0) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%.*s",
             (int) (h->req.url.len > 200 ? 200 : h->req.url.len),
             nw__span_ptr(h, h->req.url));
}

static const char *
not_latin1(PyObject *s, Py_ssize_t *len, const char *what)
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

/* The bytes of a str that PEP 3333 requires to be latin-1: no copy.  The
   common case, an exact and compact one-byte str, is tested inline. */
static inline const char *
latin1_data(PyObject *s, Py_ssize_t *len, const char *what)
{
    if (PyUnicode_CheckExact(s) && PyUnicode_IS_COMPACT(s)
        && PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        *len = PyUnicode_GET_LENGTH(s);
        return (const char *) PyUnicode_1BYTE_DATA(s);
    }
    return not_latin1(s, len, what);
}

/* Header names an app passes on every response are the same str objects
   (constants in its code): each is checked once and its kind kept here,
   so that a response pays a pointer comparison per name instead of a
   byte-by-byte check.  The cache holds a reference to each name, so its
   address cannot come back as another string. */
#define NAME_CACHE 32
static struct {
    PyObject *name;
    enum nw_header_kind kind;
} name_cache[NAME_CACHE];

static int
header_kind(PyObject *name, const char *s, size_t n, char *err,
            size_t errlen)
{
    size_t slot = ((uintptr_t) name >> 4) % NAME_CACHE;
    int kind;

    if (name_cache[slot].name == name) {
        return (int) name_cache[slot].kind;
    }
    kind = nw__resp_header_kind(s, n, err, errlen);
    if (kind >= 0 && PyUnicode_CheckExact(name)) {
        Py_INCREF(name);
        Py_XSETREF(name_cache[slot].name, name);
        name_cache[slot].kind = (enum nw_header_kind) kind;
    }
    return kind;
}

/* The response can no longer change: its head went out, or (event mode)
   write() queued body bytes behind it. */
static int
committed(const nw_conn *c)
{
    return c->resp.headers_sent
           || (c->queued != NULL && PyList_GET_SIZE(c->queued) > 0);
}

/* start_response(status, headers, exc_info=None), by position or by
   keyword, from a vectorcall's arguments. */
static int
start_response_args(PyObject *const *args, size_t nargsf, PyObject *kwnames,
                    PyObject **out)
{
    static const char *const names[] = {"status", "headers", "exc_info"};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);

    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "start_response() takes at most 3 arguments (%zd given)",
                     nargs);
        return -1;
    }
    out[0] = out[1] = out[2] = NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int i;

        for (i = 0; i < 3; i++) {
            if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0) {
                break;
            }
        }
        if (i == 3) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() got an unexpected keyword "
                         "argument '%U'", name);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() got multiple values for argument "
                         "'%s'", names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < 2; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() missing required argument '%s'",
                         names[i]);
            return -1;
        }
    }
    if (out[2] == NULL) {
        out[2] = Py_None;
    }
    return 0;
}

static PyObject *
start_response_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames)
{
    nw_Callable *self = (nw_Callable *) callable;
    PyObject *argv[3], *status, *headers, *exc_info;
    nw_conn *c = self->conn;
    const char *data;
    Py_ssize_t len, n;
    char err[256];

    if (start_response_args(args, nargsf, kwnames, argv) != 0) {
        return NULL;
    }
    status = argv[0];
    headers = argv[1];
    exc_info = argv[2];
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
        if (committed(c)) {
            /* PEP 3333: too late to change the response; re-raise */
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0);
            PyObject *v = PyTuple_GET_ITEM(exc_info, 1);
            PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(t);
            Py_INCREF(v);
            if (tb == Py_None) {
                tb = NULL;
            } else {
                Py_INCREF(tb);
            }
            PyErr_Restore(t, v, tb);
            return NULL;
        }
        nw__resp_clear_headers(&c->resp);
    } else if (c->resp.status != 0) {
        PyErr_SetString(PyExc_AssertionError,
                        "Response headers already set! (start_response "
                        "called a second time without exc_info)");
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
        PyObject *name_obj;
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        int kind;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "header %zd must be a (name, value) tuple, not %R",
                         i, item);
            goto fail;
        }
        name_obj = PyTuple_GET_ITEM(item, 0);
        name = latin1_data(name_obj, &nlen, "header name");
        if (name == NULL) {
            goto fail;
        }
        value = latin1_data(PyTuple_GET_ITEM(item, 1), &vlen,
                            "header value");
        if (value == NULL) {
            goto fail;
        }
        kind = header_kind(name_obj, name, (size_t) nlen, err, sizeof(err));
        if (kind < 0
            || nw__resp_add_header_kind(&c->resp, name, (size_t) nlen,
                                        (enum nw_header_kind) kind, value,
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
callable_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.StartResponse",
    .tp_basicsize = sizeof(nw_Callable),
    .tp_dealloc = callable_dealloc,
    .tp_vectorcall_offset = offsetof(nw_Callable, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "PEP 3333 start_response(status, headers, exc_info=None)",
};

static int emit_written(nw_conn *c, PyObject *data);

static PyObject *
write_call(PyObject *callable, PyObject *const *args, size_t nargsf,
           PyObject *kwnames)
{
    nw_conn *c = ((nw_Callable *) callable)->conn;
    PyObject *data;

    if (PyVectorcall_NARGS(nargsf) != 1
        || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError,
                        "write() takes exactly one argument (data)");
        return NULL;
    }
    data = args[0];
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
    .tp_basicsize = sizeof(nw_Callable),
    .tp_dealloc = callable_dealloc,
    .tp_vectorcall_offset = offsetof(nw_Callable, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "PEP 3333 write(data), returned by start_response",
};

static PyObject *
callable_new(PyTypeObject *type, vectorcallfunc call, nw_conn *c)
{
    nw_Callable *o = PyObject_New(nw_Callable, type);
    if (o != NULL) {
        o->conn = c;
        o->vectorcall = call;
    }
    return (PyObject *) o;
}

PyObject *
nw__start_response_new(nw_conn *c)
{
    return callable_new(&StartResponseType, start_response_call, c);
}

PyObject *
nw__write_new(nw_conn *c)
{
    return callable_new(&WriteType, write_call, c);
}

void
nw__wsgi_callable_detach(PyObject *callable)
{
    ((nw_Callable *) callable)->conn = NULL;
}

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
    if ((PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0)
        || data == Py_None) {
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

static PyMemberDef filewrapper_members[] = {
    {"filelike", T_OBJECT, offsetof(nw_FileWrapper, filelike), READONLY,
     "the wrapped file"},
    {"blksize", T_PYSSIZET, offsetof(nw_FileWrapper, blksize), READONLY,
     "bytes per read when not sent with sendfile()"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject nw__FileWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.FileWrapper",
    .tp_basicsize = sizeof(nw_FileWrapper),
    .tp_dealloc = (destructor) filewrapper_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192): sent with "
              "sendfile() when filelike is a regular file",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc) filewrapper_next,
    .tp_methods = filewrapper_methods,
    .tp_members = filewrapper_members,
    .tp_init = (initproc) filewrapper_init,
    .tp_new = PyType_GenericNew,
};

/* The file segment a file_wrapper result stands for, when sendfile() can
   send it: a regular file with a fileno(), from its current position
   (tell(), which counts Python's read buffer) to its end or
   Content-Length.  0 when it cannot (then it is iterated). */
static int
file_segment(nw_conn *c, int *fd, off_t *off, size_t *len)
{
    nw_FileWrapper *fw = (nw_FileWrapper *) c->result;
    PyObject *r;
    struct stat st;
    long long pos;
    int n;

    if (!c->cfg->sendfile || fw->filelike == NULL
        || !PyObject_HasAttr(fw->filelike, str_fileno)) {
        return 0;
    }
    r = PyObject_CallMethodNoArgs(fw->filelike, str_fileno);
    if (r == NULL) {
        PyErr_Clear(); /* io.BytesIO and friends: no fd */
        return 0;
    }
    n = (int) PyLong_AsLong(r);
    Py_DECREF(r);
    if (n < 0 || PyErr_Occurred() || fstat(n, &st) != 0
        || !S_ISREG(st.st_mode)) {
        PyErr_Clear();
        return 0;
    }
    pos = -1;
    if (PyObject_HasAttr(fw->filelike, str_tell)) {
        r = PyObject_CallMethodNoArgs(fw->filelike, str_tell);
        if (r != NULL) {
            pos = PyLong_AsLongLong(r);
            Py_DECREF(r);
        }
        if (PyErr_Occurred()) {
            PyErr_Clear();
            pos = -1;
        }
    }
    if (pos < 0) {
        pos = (long long) lseek(n, 0, SEEK_CUR);
        if (pos < 0) {
            return 0;
        }
    }
    *fd = n;
    *off = (off_t) pos;
    *len = st.st_size > (off_t) pos ? (size_t) (st.st_size - pos) : 0;
    if (c->resp.content_length >= 0
        && (uint64_t) *len > (uint64_t) c->resp.content_length) {
        *len = (size_t) c->resp.content_length;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Pulling the response
 */

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
    out->file_iov = 0;
    out->nrefs = 0;
    out->bytes = 0;
    out->file_fd = -1;
    out->file_off = 0;
    out->file_len = 0;
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
    out->file_fd = -1;
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
    return out->niov + 6 > NW_OUT_IOV || out->nrefs + 1 >= NW_OUT_REFS
           || out->bytes >= PULL_BYTES;
}

/* Put the response head into out. */
static void
add_head(nw_conn *c, nw_out *out)
{
    const nw_request *r = &c->http.req;
    int http11 = r->http_major > 1
                 || (r->http_major == 1 && r->http_minor >= 1);
    size_t n;

    nw__resp_frame(&c->resp, http11, r->method_id == NW_METHOD_HEAD,
                   nw__conn_keepalive_wanted(c));
    /* the highest version we speak that the client understands */
    n = nw__resp_head(&c->resp, 1, http11, c->head, c->head_cap);
    if (n > c->head_cap) {
        c->head_cap = n + 256;
        c->head = nw__xrealloc(c->head, c->head_cap);
        n = nw__resp_head(&c->resp, 1, http11, c->head, c->head_cap);
    }
    out_add(out, c->head, n);
    c->resp.headers_sent = 1;
}

/* How many of n body bytes may go out: never more than Content-Length, the
   excess would be read as the next response. */
static size_t
clamp_to_length(nw_conn *c, size_t n)
{
    nw_resp *r = &c->resp;
    uint64_t left;

    if (r->content_length < 0) {
        return n;
    }
    left = (uint64_t) r->content_length - r->sent;
    if (n > left) {
        if (c->result != NULL && Py_TYPE(c->result) == &nw__FileWrapperType) {
            return (size_t) left; /* a file sent in part: a range */
        }
        if (!r->must_close) {
            char uri[256];
            nw__request_uri(c, uri, sizeof(uri));
            nw__log(NW_LOG_WARNING,
                    "response to %s longer than its Content-Length (%lld): "
                    "the excess is dropped and the connection closed",
                    uri, (long long) r->content_length);
        }
        r->must_close = 1;
        return (size_t) left;
    }
    return n;
}

/* Add one chunk (a new reference, stolen) with its framing. */
static void
add_chunk(nw_conn *c, nw_out *out, PyObject *chunk)
{
    nw_resp *r = &c->resp;
    size_t n = (size_t) PyBytes_GET_SIZE(chunk);

    if (r->no_body) {
        if (!r->body_dropped) {
            r->body_dropped = 1;
            nw__log(NW_LOG_DEBUG, "response without a body (HEAD, 1xx, "
                                  "204 or 304): the app's body bytes are "
                                  "dropped");
        }
        Py_DECREF(chunk);
        return;
    }
    n = clamp_to_length(c, n);
    if (n == 0) {
        Py_DECREF(chunk);
        return;
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
        nw__request_uri(c, uri, sizeof(uri));
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
    /* a refused body says why, as a refused head does; a 500 says
       nothing of the app's insides */
    out_add(out, c->head,
            nw__resp_error(status,
                           status == c->http.error_status
                                   && c->http.error_reason != NULL
                               ? c->http.error_reason
                               : "",
                           c->head, c->head_cap));
    c->resp.headers_sent = 1;
    c->resp.must_close = 1;
    c->resp.status = status;
    out->last = 1;
    c->phase = NW_WSGI_DONE;
}

/* The whole file_wrapper response in one pull: head, the file segment for
   sendfile(), the chunked trailer. */
static void
add_file(nw_conn *c, nw_out *out, int fd, off_t off, size_t len)
{
    nw_resp *r = &c->resp;

    if (len > 0) {
        if (r->chunked) {
            char *frame = out->frames[0];
            out_add(out, frame, nw__resp_chunk_header(len, frame));
        }
        out->file_iov = out->niov;
        out->file_fd = fd;
        out->file_off = off;
        out->file_len = len;
        out->bytes += len;
        r->sent += len;
        if (r->chunked) {
            out_add(out, "\r\n", 2);
        }
    }
    if (out->file_fd < 0) {
        out->file_iov = out->niov;
    }
    finish_body(c, out);
}

/* event mode: the bytes the app gave write(), in order */
static void
add_queued(nw_conn *c, nw_out *out)
{
    if (c->queued == NULL) {
        return;
    }
    while (c->queued_pos < PyList_GET_SIZE(c->queued) && !out_full(out)) {
        PyObject *item = PyList_GET_ITEM(c->queued, c->queued_pos);
        c->queued_pos++;
        Py_INCREF(item);
        add_chunk(c, out, item);
    }
    if (c->queued_pos == PyList_GET_SIZE(c->queued)) {
        PyList_SetSlice(c->queued, 0, PY_SSIZE_T_MAX, NULL);
        c->queued_pos = 0;
    }
}

static int
queued_left(const nw_conn *c)
{
    return c->queued != NULL && c->queued_pos < PyList_GET_SIZE(c->queued);
}

/* The head is out and the response broke: all that is left is to close
   (without a last chunk, so the client knows). */
static int
broken(nw_conn *c, nw_out *out)
{
    c->failed = 1;
    c->resp.must_close = 1;
    out->last = 1;
    c->phase = NW_WSGI_DONE;
    return NW_ERROR;
}

static void
log_error(nw_conn *c)
{
    char uri[256];
    nw__request_uri(c, uri, sizeof(uri));
    nw__log_py_exception(NW_LOG_ERROR, "Error handling request %s", uri);
}

static int pull(nw_conn *c, nw_out *out);

int
nw__wsgi_pull(nw_conn *c, nw_out *out)
{
    int rc;

    /* write() called from inside the iteration queues its bytes, so they
       go out in order with the chunks already pulled */
    c->pulling = 1;
    rc = pull(c, out);
    c->pulling = 0;
    return rc;
}

static int
pull(nw_conn *c, nw_out *out)
{
    PyObject *chunk;
    int rc;

    out_reset(out);
    if (c->phase == NW_WSGI_DONE) {
        out->last = 1;
        return NW_OK;
    }
    if (c->failed && !c->resp.headers_sent) {
        /* the client went away while the app read the body */
        out->last = 1;
        c->phase = NW_WSGI_DONE;
        return NW_ERROR;
    }
    if (!c->resp.headers_sent) {
        int fd = -1;
        off_t off = 0;
        size_t len = 0;
        int use_file = c->error_status == 0 && c->phase == NW_WSGI_BODY
                       && c->resp.status != 0 && !queued_left(c)
                       && Py_TYPE(c->result) == &nw__FileWrapperType
                       && file_segment(c, &fd, &off, &len);

        if (c->error_status == 0 && c->phase == NW_WSGI_BODY && !use_file
            && c->pending == NULL) {
            /* the first chunk before the head: a generator app calls
               start_response in its first next(), and an error there can
               still be a 500 */
            rc = next_chunk(c, &c->pending);
            if (rc < 0) {
                if (nw__app_quit(c)) {
                    return broken(c, out);
                }
                log_error(c);
                if (c->resp.headers_sent) {
                    return broken(c, out);
                }
                c->error_status = 500;
            } else if (rc == 0) {
                c->phase = NW_WSGI_FINISH;
            }
        }
        if (!c->resp.headers_sent) {
            if (c->error_status == 0 && c->resp.status == 0) {
                char uri[256];
                nw__request_uri(c, uri, sizeof(uri));
                nw__log(NW_LOG_ERROR,
                        "Error handling request %s: the app returned "
                        "without calling start_response",
                        uri);
                c->error_status = 500;
            }
            if (c->error_status != 0) {
                Py_CLEAR(c->pending);
                if (c->queued != NULL) {
                    PyList_SetSlice(c->queued, 0, PY_SSIZE_T_MAX, NULL);
                    c->queued_pos = 0;
                }
                add_error(c, out, c->error_status);
                return NW_OK;
            }
            add_head(c, out);
            if (use_file) {
                c->use_file = 1;
                if (c->resp.no_body) {
                    finish_body(c, out);
                } else {
                    add_file(c, out, fd, off, len);
                }
                return NW_OK;
            }
        }
    }
    for (;;) {
        add_queued(c, out);
        if (queued_left(c)) {
            return NW_OK; /* out is full */
        }
        if (c->pending != NULL) {
            if (out_full(out)) {
                return NW_OK;
            }
            add_chunk(c, out, c->pending);
            c->pending = NULL;
        }
        if (c->phase != NW_WSGI_BODY || out_full(out)) {
            break;
        }
        if (c->resp.content_length >= 0
            && c->resp.sent >= (uint64_t) c->resp.content_length
            && Py_TYPE(c->result) == &nw__FileWrapperType) {
            /* a file sent up to its Content-Length (a range): done */
            c->phase = NW_WSGI_FINISH;
            continue;
        }
        rc = next_chunk(c, &chunk);
        if (rc < 0) {
            if (!nw__app_quit(c)) {
                log_error(c);
            }
            return broken(c, out);
        }
        if (rc == 0) {
            c->phase = NW_WSGI_FINISH;
            continue; /* write() calls made during that next() first */
        }
        c->pending = chunk;
    }
    if (c->phase == NW_WSGI_FINISH && c->pending == NULL
        && !queued_left(c)) {
        if (c->cut_short) {
            return broken(c, out);
        }
        finish_body(c, out);
    }
    return NW_OK;
}

/* write(): the blocking classes send the head (once) and the data now;
   the event classes queue the data for their next pulls. */
static int
emit_written(nw_conn *c, PyObject *data)
{
    nw_out out;
    int rc;

    if (c->failed) {
        return NW_ERROR;
    }
    if (PyBytes_GET_SIZE(data) == 0) {
        return NW_OK;
    }
    if (c->mode == NW_CONN_EVENT || c->pulling) {
        if (c->queued == NULL) {
            c->queued = PyList_New(0);
            if (c->queued == NULL) {
                return NW_ERROR;
            }
        }
        return PyList_Append(c->queued, data) == 0 ? NW_OK : NW_ERROR;
    }
    out_reset(&out);
    if (!c->resp.headers_sent) {
        add_head(c, &out);
    }
    Py_INCREF(data);
    add_chunk(c, &out, data);
    rc = nw__conn_write_out(c, &out, 1);
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
    if (c->queued != NULL) {
        PyList_SetSlice(c->queued, 0, PY_SSIZE_T_MAX, NULL);
        c->queued_pos = 0;
    }
    if (c->result != NULL) {
        /* PEP 3333: close() is called whatever happened (lists and tuples
           have none: no failed lookup, and its exception, per request) */
        PyObject *close = NULL;
        if (!PyList_CheckExact(c->result) && !PyTuple_CheckExact(c->result)
            && PyObject_HasAttr(c->result, str_close)) {
            close = PyObject_GetAttr(c->result, str_close);
            if (close == NULL) {
                char uri[256];
                nw__request_uri(c, uri, sizeof(uri));
                nw__log_py_exception(NW_LOG_ERROR,
                                     "Error closing the response to %s", uri);
            }
        }
        if (close != NULL) {
            PyObject *r = PyObject_CallNoArgs(close);
            Py_DECREF(close);
            if (r == NULL) {
                char uri[256];
                nw__request_uri(c, uri, sizeof(uri));
                nw__log_py_exception(NW_LOG_ERROR,
                                     "Error closing the response to %s", uri);
            }
            Py_XDECREF(r);
        }
        Py_CLEAR(c->result);
    }
    if (c->req_active) {
        nw__request_end(c);
    }
    nw__wsgi_environ_done(c);
    c->phase = NW_WSGI_IDLE;
}

int
nw__wsgi_response_init(void)
{
    if (PyType_Ready(&StartResponseType) < 0 || PyType_Ready(&WriteType) < 0
        || PyType_Ready(&nw__FileWrapperType) < 0) {
        return NW_ERROR;
    }
    str_close = PyUnicode_InternFromString("close");
    str_fileno = PyUnicode_InternFromString("fileno");
    str_tell = PyUnicode_InternFromString("tell");
    if (!str_close || !str_fileno || !str_tell) {
        return NW_ERROR;
    }
    return NW_OK;
}
