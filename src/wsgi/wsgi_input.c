#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "base/memory.h"
#include "wsgi/wsgi.h"

/* wsgi.input: read(n), read(), readline(n), readlines(hint) and iteration
   over the connection's body source.  Bytes read ahead by readline wait in
   a small buffer; large reads go straight into the result. */

#define READAHEAD 8192

typedef struct {
    PyObject_HEAD
    nw_conn *conn;
    char *buf;
    size_t off;
    size_t len;
    int eof;
} nw_Input;

PyObject *
nw__input_new(nw_conn *c)
{
    nw_Input *in = PyObject_New(nw_Input, &nw__InputType);

    if (in == NULL) {
        return NULL;
    }
    in->conn = c;
    in->buf = NULL;
    in->off = in->len = 0;
    in->eof = 0;
    return (PyObject *) in;
}

void
nw__input_reset(PyObject *input)
{
    nw_Input *in = (nw_Input *) input;
    in->off = in->len = 0;
    in->eof = 0;
}

void
nw__input_detach(PyObject *input)
{
    ((nw_Input *) input)->conn = NULL;
}

static void
input_dealloc(nw_Input *in)
{
    free(in->buf);
    PyObject_Free(in);
}

/* Up to n body bytes from the source; -1 with an exception set. */
static Py_ssize_t
source_read(nw_Input *in, char *dst, size_t n)
{
    const char *why = NULL;
    ssize_t got;

    if (in->eof || n == 0) {
        return 0;
    }
    if (in->conn == NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "wsgi.input read after its request ended");
        return -1;
    }
    got = nw__conn_read_body(in->conn, dst, n, &why);
    if (got < 0) {
        PyErr_Format(PyExc_OSError, "error reading the request body: %s",
                     why ? why : "connection lost");
        return -1;
    }
    if (got == 0) {
        in->eof = 1;
    }
    return (Py_ssize_t) got;
}

/* Read ahead into the buffer; 0 at the end of the body. */
static Py_ssize_t
fill(nw_Input *in)
{
    Py_ssize_t got;

    if (in->off > 0) {
        memmove(in->buf, in->buf + in->off, in->len - in->off);
        in->len -= in->off;
        in->off = 0;
    }
    if (in->buf == NULL) {
        in->buf = nw__xmalloc(READAHEAD);
    }
    if (in->len == READAHEAD) {
        return 1; /* full: the caller takes from it first */
    }
    got = source_read(in, in->buf + in->len, READAHEAD - in->len);
    if (got > 0) {
        in->len += (size_t) got;
    }
    return got;
}

static PyObject *
read_all(nw_Input *in)
{
    size_t cap = 16384, n = in->len - in->off;
    PyObject *out;
    const nw_request *r = in->conn ? &in->conn->http.req : NULL;

    if (r != NULL && !r->chunked && r->content_length >= 0) {
        /* +1 sees the end at once; a client's claim is not trusted with
           more than a MiB up front */
        cap = r->content_length < 1024 * 1024
                  ? (size_t) r->content_length + 1
                  : 1024 * 1024;
    }
    if (cap < n + 1) {
        cap = n + 1;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t) cap);
    if (out == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(PyBytes_AS_STRING(out), in->buf + in->off, n);
    }
    in->off = in->len = 0;
    for (;;) {
        Py_ssize_t got;
        if (n == cap) {
            cap *= 2;
            if (_PyBytes_Resize(&out, (Py_ssize_t) cap) != 0) {
                return NULL;
            }
        }
        got = source_read(in, PyBytes_AS_STRING(out) + n, cap - n);
        if (got < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (got == 0) {
            break;
        }
        n += (size_t) got;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t) n) != 0) {
        return NULL;
    }
    return out;
}

static int
size_arg(PyObject *arg, Py_ssize_t *size)
{
    *size = -1;
    if (arg == NULL || arg == Py_None) {
        return 0;
    }
    *size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    return (*size == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *
input_read(nw_Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size, n = 0;
    PyObject *out;

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "read() takes at most 1 argument");
        return NULL;
    }
    if (size_arg(nargs ? args[0] : NULL, &size) != 0) {
        return NULL;
    }
    if (size < 0) {
        return read_all(in);
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    if (in->len > in->off) {
        n = (Py_ssize_t) (in->len - in->off);
        if (n > size) {
            n = size;
        }
        memcpy(PyBytes_AS_STRING(out), in->buf + in->off, (size_t) n);
        in->off += (size_t) n;
    }
    while (n < size) {
        Py_ssize_t got = source_read(in, PyBytes_AS_STRING(out) + n,
                                     (size_t) (size - n));
        if (got < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (got == 0) {
            break;
        }
        n += got;
    }
    if (n != size && _PyBytes_Resize(&out, n) != 0) {
        return NULL;
    }
    return out;
}

/* One line (with its '\n'), at most size bytes when size >= 0. */
static PyObject *
readline_impl(nw_Input *in, Py_ssize_t size)
{
    PyObject *out = NULL;
    size_t have = 0;

    for (;;) {
        size_t avail = in->len - in->off;
        size_t take = avail;
        const char *nl = avail ? memchr(in->buf + in->off, '\n', avail)
                               : NULL;
        int done = 0;

        if (nl != NULL) {
            take = (size_t) (nl - (in->buf + in->off)) + 1;
            done = 1;
        }
        if (size >= 0 && have + take >= (size_t) size) {
            take = (size_t) size - have;
            done = 1;
        }
        if (take > 0) {
            if (out == NULL) {
                out = PyBytes_FromStringAndSize(in->buf + in->off,
                                                (Py_ssize_t) take);
                if (out == NULL) {
                    return NULL;
                }
            } else {
                if (_PyBytes_Resize(&out, (Py_ssize_t) (have + take)) != 0) {
                    return NULL;
                }
                memcpy(PyBytes_AS_STRING(out) + have, in->buf + in->off,
                       take);
            }
            have += take;
            in->off += take;
        }
        if (done) {
            break;
        }
        {
            Py_ssize_t got = fill(in);
            if (got < 0) {
                Py_XDECREF(out);
                return NULL;
            }
            if (got == 0) {
                break;
            }
        }
    }
    return out ? out : PyBytes_FromStringAndSize("", 0);
}

static PyObject *
input_readline(nw_Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "readline() takes at most 1 argument");
        return NULL;
    }
    if (size_arg(nargs ? args[0] : NULL, &size) != 0) {
        return NULL;
    }
    return readline_impl(in, size);
}

static PyObject *
input_readlines(nw_Input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint, total = 0;
    PyObject *lines;

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "readlines() takes at most 1 argument");
        return NULL;
    }
    if (size_arg(nargs ? args[0] : NULL, &hint) != 0) {
        return NULL;
    }
    lines = PyList_New(0);
    if (lines == NULL) {
        return NULL;
    }
    for (;;) {
        PyObject *line = readline_impl(in, -1);
        Py_ssize_t n;
        if (line == NULL) {
            Py_DECREF(lines);
            return NULL;
        }
        n = PyBytes_GET_SIZE(line);
        if (n == 0) {
            Py_DECREF(line);
            break;
        }
        if (PyList_Append(lines, line) != 0) {
            Py_DECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        Py_DECREF(line);
        total += n;
        if (hint > 0 && total >= hint) {
            break;
        }
    }
    return lines;
}

static PyObject *
input_next(nw_Input *in)
{
    PyObject *line = readline_impl(in, -1);

    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction) (void (*)(void)) input_read, METH_FASTCALL,
     "read(size=-1): up to size bytes of the body, all of it without size"},
    {"readline", (PyCFunction) (void (*)(void)) input_readline,
     METH_FASTCALL, "readline(size=-1): the next line of the body"},
    {"readlines", (PyCFunction) (void (*)(void)) input_readlines,
     METH_FASTCALL, "readlines(hint=-1): the remaining lines of the body"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject nw__InputType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "narwhal.Input",
    .tp_basicsize = sizeof(nw_Input),
    .tp_dealloc = (destructor) input_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc) input_next,
    .tp_methods = input_methods,
};
