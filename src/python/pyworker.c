/* api->call_python (ABI 1.3): a worker class written in Python.  The
   plugin hands over its Python source; the core runs it once as a module
   and calls its functions with this worker's Python object (the one its
   hooks get, Gunicorn's Worker), given here what a worker loop needs:
   the app, the listeners as socket objects, the heartbeat, the stop
   requests and the request count. */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugin/api.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "python/pyworker.h"
#include "worker/worker.h"
#include "wsgi/wsgi.h"

static PyObject *driver;            /* the module made from the source */
static const char *driver_source;   /* ... and the source it came from */

static nw_worker *
this_worker(void)
{
    if (nw__hook_self == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "only a worker process has a worker loop");
    }
    return nw__hook_self;
}

static PyObject *
py_notify(PyObject *self, PyObject *noargs)
{
    nw_worker *w = this_worker();

    (void) self;
    (void) noargs;
    if (w == NULL) {
        return NULL;
    }
    nw__api.heartbeat(w);
    Py_RETURN_NONE;
}

static PyObject *
py_should_stop(PyObject *self, PyObject *noargs)
{
    nw_worker *w = this_worker();

    (void) self;
    (void) noargs;
    return w != NULL ? PyLong_FromLong(nw__api.should_stop(w)) : NULL;
}

static PyObject *
py_request_done(PyObject *self, PyObject *noargs)
{
    nw_worker *w = this_worker();

    (void) self;
    (void) noargs;
    if (w == NULL) {
        return NULL;
    }
    nw__worker_request_done(w->core);
    Py_RETURN_NONE;
}

static PyMethodDef loop_methods[] = {
    {"_notify", py_notify, METH_NOARGS, "the worker's heartbeat"},
    {"_should_stop", py_should_stop, METH_NOARGS,
     "0 (run), 1 (graceful stop) or 2 (quick stop)"},
    {"_request_done", py_request_done, METH_NOARGS,
     "count a request toward max_requests"},
    {NULL, NULL, 0, NULL},
};

/* The listeners as socket objects of their own (duplicated descriptors):
   a loop closing its sockets on stop closes only its copies. */
static PyObject *
socket_list(const nw_worker *w)
{
    PyObject *mod = PyImport_ImportModule("socket");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "socket") : NULL;
    PyObject *list = cls ? PyList_New(0) : NULL;

    for (unsigned i = 0; list != NULL && i < w->nlisteners; i++) {
        int fd = fcntl(w->listeners[i].fd, F_DUPFD_CLOEXEC, 0);
        PyObject *sock;
        if (fd < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            Py_CLEAR(list);
            break;
        }
        sock = PyObject_CallFunction(cls, "iiii", w->listeners[i].family,
                                     SOCK_STREAM, 0, fd);
        if (sock == NULL) {
            close(fd);
        }
        if (sock == NULL || PyList_Append(list, sock) < 0) {
            Py_XDECREF(sock);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(sock);
    }
    Py_XDECREF(cls);
    Py_XDECREF(mod);
    return list;
}

static int
set_owned(PyObject *o, const char *name, PyObject *v)
{
    int rc = v != NULL ? PyObject_SetAttrString(o, name, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* This worker's object, with what a worker loop needs. */
static PyObject *
loop_worker(nw_worker *w)
{
    nw_worker_core *core = w->core;
    PyObject *self = nw__py_worker_self();

    if (self == NULL) {
        return NULL;
    }
    if (set_owned(self, "wsgi", Py_NewRef(core->app != NULL ? core->app
                                                             : Py_None))
            < 0
        || set_owned(self, "sockets", socket_list(w)) < 0
        || set_owned(self, "wakeup_fd", PyLong_FromLong(w->wakeup_fd)) < 0
        || set_owned(self, "heartbeat_interval",
                     PyFloat_FromDouble(w->heartbeat_interval_ms / 1000.))
               < 0
        || set_owned(self, "max_requests",
                     PyLong_FromUnsignedLongLong(core->max_requests))
               < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* The module made from source, once. */
static PyObject *
load_driver(const char *source, const char *filename)
{
    PyObject *narwhal, *code;

    if (driver != NULL && driver_source == source) {
        return driver;
    }
    narwhal = PyImport_ImportModule("narwhal");
    if (narwhal == NULL || PyModule_AddFunctions(narwhal, loop_methods) < 0) {
        Py_XDECREF(narwhal);
        return NULL;
    }
    Py_DECREF(narwhal);
    code = Py_CompileString(source, filename, Py_file_input);
    if (code == NULL) {
        return NULL;
    }
    Py_XSETREF(driver, PyImport_ExecCodeModuleEx("_narwhal_worker_class",
                                                 code, filename));
    Py_DECREF(code);
    driver_source = driver != NULL ? source : NULL;
    return driver;
}

int
nw__api_call_python(nw_worker *w, const char *source, const char *filename,
                    const char *func)
{
    nw_worker_core *core = w->core;
    PyObject *mod = load_driver(source, filename);
    PyObject *self = mod != NULL ? loop_worker(w) : NULL;
    PyObject *r = NULL;
    long rc = 0;

    if (self != NULL) {
        /* Python runs the loop and the app alike: INT and QUIT raise
           SystemExit wherever it is, as in a Gunicorn worker */
        core->in_app = core->in_app_mark;
        r = PyObject_CallMethod(mod, func, "O", self);
        core->in_app = 0;
    }
    Py_XDECREF(self);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_SystemExit)
            && core->stop == NW_STOP_QUICK) {
            PyErr_Clear();
            return 0;
        }
        nw__log_py_exception(NW_LOG_ERROR, "Exception in worker class %s",
                             w->cls->name);
        return NW_ERROR;
    }
    if (r != Py_None) {
        rc = PyLong_AsLong(r);
        if (rc == -1 && PyErr_Occurred()) {
            nw__log_py_exception(NW_LOG_ERROR,
                                 "worker class %s: %s() returned %s, not "
                                 "an int",
                                 w->cls->name, func, Py_TYPE(r)->tp_name);
            rc = NW_ERROR;
        }
    }
    Py_DECREF(r);
    return (int) rc;
}
