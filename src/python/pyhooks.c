/* The built-in `narwhal` module and the built-in hook that calls the
   config file's Python hooks with Gunicorn's signatures; Python's
   logging when a logconfig setting hands the logs to it. */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>
#include <unistd.h>

#include "master/arbiter.h"
#include "conn/conn.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "os/proctitle.h"
#include "python/pyhooks.h"
#include "python/pyworker.h"
#include "python/pyhooks_py.h"
#include "python/python.h"
#include "wsgi/wsgi.h"

/* The context of the master point being run, for server.* */
static const nw_hook_ctx *running;

/* The built-in narwhal module (a new reference): found in sys.modules
   without the import machinery, as hooks on the request path call this
   for every request. */
static PyObject *
narwhal_module(void)
{
    PyObject *m = PyDict_GetItemString(PyImport_GetModuleDict(), "narwhal");

    if (m != NULL) {
        Py_INCREF(m);
        return m;
    }
    return PyImport_ImportModule("narwhal");
}

/* ------------------------------------------------------------------------
 * The module's C functions
 */

static PyObject *
py_log(PyObject *self, PyObject *args)
{
    int level, exc;
    const char *msg, *metric, *value, *mtype;

    (void) self;
    if (!PyArg_ParseTuple(args, "ispzzz", &level, &msg, &exc, &metric,
                          &value, &mtype)) {
        return NULL;
    }
    nw__log_ex(level, exc ? NW_HOOK_F_EXCEPTION : 0, metric, value, mtype,
               "%s", msg);
    Py_RETURN_NONE;
}

static PyObject *
str_or_none(const char *s)
{
    if (s == NULL) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t) strlen(s), "replace");
}

static PyObject *
list_of(const nw_strlist *l)
{
    PyObject *list = PyList_New((Py_ssize_t) l->count);

    for (size_t i = 0; list != NULL && i < l->count; i++) {
        PyObject *v = str_or_none(l->items[i]);
        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t) i, v);
    }
    return list;
}

static PyObject *
setting_value(const nw_settings *s, const nw_setting_def *d)
{
    switch (d->type) {
    case NW_T_INT:
    case NW_T_DURATION:
        return PyLong_FromLongLong(*NW_SETTING_CPTR(s, d, long long));
    case NW_T_BOOL:
        return PyBool_FromLong(*NW_SETTING_CPTR(s, d, int));
    case NW_T_STR:
    case NW_T_CHOICE:
        return str_or_none(*NW_SETTING_CPTR(s, d, char *));
    case NW_T_LIST:
    case NW_T_CSV:
        return list_of(NW_SETTING_CPTR(s, d, nw_strlist));
    case NW_T_DICT: {
        const nw_strmap *m = NW_SETTING_CPTR(s, d, nw_strmap);
        PyObject *dict = PyDict_New();
        for (size_t i = 0; dict != NULL && i < m->count; i++) {
            PyObject *v = str_or_none(m->values[i]);
            if (v == NULL || PyDict_SetItemString(dict, m->keys[i], v) < 0) {
                Py_XDECREF(v);
                Py_CLEAR(dict);
                break;
            }
            Py_DECREF(v);
        }
        return dict;
    }
    case NW_T_CALLABLE:
    case NW_T_PYOBJ: {
        PyObject *o = NW_SETTING_CPTR(s, d, nw_pyref)->obj;
        if (o == NULL) {
            Py_RETURN_NONE;
        }
        Py_INCREF(o);
        return o;
    }
    }
    Py_RETURN_NONE;
}

/* Settings a Config object may still read: a reload frees the settings
   it replaces, and a Python object kept by a hook can outlive them. */
static int
settings_alive(const nw_settings *s, unsigned long serial)
{
    nw_arbiter *a = nw__arbiter_current();

    if (!((running != NULL && running->cfg == s)
          || (nw__hook_self != NULL && nw__hook_self->cfg == s)
          || (a != NULL && (a->gen.settings == s || a->next.settings == s)))) {
        return 0;
    }
    return s->serial == serial;
}

static PyObject *
py_setting(PyObject *self, PyObject *args)
{
    PyObject *cap;
    const char *name;
    const nw_settings *s;
    const nw_setting_def *d;

    (void) self;
    if (!PyArg_ParseTuple(args, "Os", &cap, &name)) {
        return NULL;
    }
    s = PyCapsule_GetPointer(cap, "narwhal.settings");
    if (s == NULL) {
        return NULL;
    }
    if (!settings_alive(s, (unsigned long) (uintptr_t) PyCapsule_GetContext(
                               cap))) {
        /* a hook kept server.cfg across reloads: those settings are gone */
        PyErr_SetString(PyExc_ReferenceError,
                        "these settings were replaced by a reload: read "
                        "server.cfg again");
        return NULL;
    }
    if (strcmp(name, "app_module") == 0 || strcmp(name, "app_uri") == 0) {
        return str_or_none(s->app_module);
    }
    d = nw__setting_find(name);
    if (d == NULL) {
        PyErr_SetString(PyExc_KeyError, name);
        return NULL;
    }
    return setting_value(s, d);
}

/* The settings that apply where this runs: the point's, the master's in
   force, or this worker's. */
static const nw_settings *
current_settings(void)
{
    nw_arbiter *a = nw__arbiter_current();

    if (running != NULL && running->cfg != NULL) {
        return running->cfg;
    }
    if (nw__hook_self != NULL) {
        return nw__hook_self->cfg;
    }
    return a != NULL ? a->gen.settings : NULL;
}

static PyObject *
config_object(const nw_settings *s)
{
    /* one object per settings in force: hooks on the request path do not
       build one per call */
    static PyObject *cached;
    static const nw_settings *cached_for;
    static unsigned long cached_serial;
    PyObject *mod, *cls, *cap, *obj = NULL;

    if (s == NULL) {
        Py_RETURN_NONE;
    }
    if (cached != NULL && cached_for == s && cached_serial == s->serial) {
        return Py_NewRef(cached);
    }
    mod = narwhal_module();
    cls = mod ? PyObject_GetAttrString(mod, "Config") : NULL;
    cap = PyCapsule_New((void *) s, "narwhal.settings", NULL);
    if (cap != NULL
        && PyCapsule_SetContext(cap, (void *) (uintptr_t) s->serial) != 0) {
        Py_CLEAR(cap);
    }
    if (cls != NULL && cap != NULL) {
        obj = PyObject_CallOneArg(cls, cap);
    }
    Py_XDECREF(cap);
    Py_XDECREF(cls);
    Py_XDECREF(mod);
    if (obj != NULL) {
        Py_XSETREF(cached, Py_NewRef(obj));
        cached_for = s;
        cached_serial = s->serial;
    }
    return obj;
}

static PyObject *worker_object(PyObject *mod, const nw_hook_worker *hw,
                               const nw_settings *cfg);

/* server.WORKERS: {pid: Worker} of the master's workers now. */
static PyObject *
workers_dict(void)
{
    PyObject *mod = narwhal_module();
    PyObject *dict = mod ? PyDict_New() : NULL;
    nw_hook_worker hw;

    for (unsigned i = 0;
         dict != NULL && nw__hook_self == NULL
         && nw__arbiter_worker_info(i, &hw) == NW_OK;
         i++) {
        PyObject *w = worker_object(mod, &hw, current_settings());
        PyObject *pid = PyLong_FromLong(hw.pid);
        if (w == NULL || pid == NULL || PyDict_SetItem(dict, pid, w) < 0) {
            Py_CLEAR(dict);
        }
        Py_XDECREF(w);
        Py_XDECREF(pid);
    }
    Py_XDECREF(mod);
    return dict;
}

static PyObject *
py_server(PyObject *self, PyObject *arg)
{
    nw_arbiter *a = nw__arbiter_current();
    const nw_settings *s = current_settings();
    const char *key;

    (void) self;
    key = PyUnicode_AsUTF8(arg);
    if (key == NULL) {
        return NULL;
    }
    if (strcmp(key, "cfg") == 0) {
        return config_object(s);
    }
    if (strcmp(key, "workers") == 0) {
        return workers_dict();
    }
    if (strcmp(key, "pid") == 0) {
        /* a worker's copy of the server names its master (post_fork too,
           before the worker is set up) */
        if (running != NULL && running->master_pid != 0) {
            return PyLong_FromLong((long) running->master_pid);
        }
        return PyLong_FromLong(nw__hook_self != NULL
                                   ? (long) nw__hook_self->ppid
                                   : (long) getpid());
    }
    if (strcmp(key, "master_pid") == 0) {
        return PyLong_FromLong(a != NULL ? (long) a->master_pid : 0);
    }
    if (strcmp(key, "reexec_pid") == 0) {
        return PyLong_FromLong(a != NULL ? (long) a->reexec_pid : 0);
    }
    if (strcmp(key, "num_workers") == 0) {
        if (running != NULL && running->point == NW_HOOK_NWORKERS_CHANGED) {
            return PyLong_FromLong(running->num_workers);
        }
        return PyLong_FromLong(a != NULL ? a->num_workers
                               : s != NULL ? (long) s->workers
                                           : 0);
    }
    if (strcmp(key, "listeners") == 0) {
        const nw_listener *l = NULL;
        unsigned n = 0;
        PyObject *list;
        if (nw__hook_self != NULL) {
            l = nw__hook_self->listeners;
            n = nw__hook_self->nlisteners;
        } else if (running != NULL && running->listeners != NULL) {
            l = running->listeners;
            n = running->nlisteners;
        } else if (a != NULL) {
            l = a->gen.listen.items;
            n = a->gen.listen.count;
        }
        list = PyList_New(n);
        for (unsigned i = 0; list != NULL && i < n; i++) {
            PyObject *v = str_or_none(l[i].url);
            if (v == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, v);
        }
        return list;
    }
    if (s == NULL) {
        Py_RETURN_NONE;
    }
    if (strcmp(key, "proc_name") == 0) {
        return str_or_none(nw__proc_name(s));
    }
    if (strcmp(key, "timeout") == 0) {
        return PyLong_FromLongLong(s->timeout);
    }
    if (strcmp(key, "pidfile") == 0) {
        return str_or_none(s->pidfile);
    }
    if (strcmp(key, "app") == 0) {
        PyObject *mod = narwhal_module();
        PyObject *cfg = config_object(s);
        PyObject *wsgi = nw__python_preloaded_app();
        PyObject *r = NULL;
        if (mod != NULL && cfg != NULL) {
            r = PyObject_CallMethod(mod, "Application", "OsO", cfg,
                                    s->app_module ? s->app_module : "",
                                    wsgi ? wsgi : Py_None);
        }
        Py_XDECREF(cfg);
        Py_XDECREF(mod);
        return r;
    }
    PyErr_SetString(PyExc_KeyError, key);
    return NULL;
}

static PyObject *
py_set_num_workers(PyObject *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);

    (void) self;
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (nw__api_set_num_workers(n) != NW_OK) {
        PyErr_SetString(PyExc_ValueError,
                        "num_workers can be set in the master only, to a "
                        "number >= 0");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
py_reopen(PyObject *self, PyObject *args)
{
    (void) self;
    (void) args;
    nw__logs_reopen();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_log", py_log, METH_VARARGS, "write a line to narwhal's error log"},
    {"_setting", py_setting, METH_VARARGS, "a setting's value"},
    {"_server", py_server, METH_O, "the master's state"},
    {"_set_num_workers", py_set_num_workers, METH_O,
     "set the number of workers (master only)"},
    {"_reopen", py_reopen, METH_NOARGS, "reopen the log files"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "narwhal",
    "narwhal's objects for server hooks (server, worker, req, resp, log).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

static PyObject *
init_module(void)
{
    PyObject *m = PyModule_Create(&module_def);
    PyObject *code, *r;

    if (m == NULL) {
        return NULL;
    }
    if (PyDict_SetItemString(PyModule_GetDict(m), "__builtins__",
                             PyEval_GetBuiltins())
        < 0) {
        Py_DECREF(m);
        return NULL;
    }
    code = Py_CompileString(pymodule_src, "<narwhal>", Py_file_input);
    if (code == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    r = PyEval_EvalCode(code, PyModule_GetDict(m), PyModule_GetDict(m));
    Py_DECREF(code);
    if (r == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(r);
    return m;
}

void
nw__pymodule_register(void)
{
    static int done;

    if (!done && !Py_IsInitialized()) {
        PyImport_AppendInittab("narwhal", init_module);
        done = 1;
    }
}

void
nw__py_forget_worker(unsigned number)
{
    PyObject *mod, *r;

    if (!Py_IsInitialized()) {
        return;
    }
    mod = narwhal_module();
    r = mod ? PyObject_CallMethod(mod, "_forget", "I", number) : NULL;
    if (r == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
    Py_XDECREF(mod);
}

/* ------------------------------------------------------------------------
 * The objects handed to the hooks
 */

static int
set_attr(PyObject *o, const char *name, PyObject *v)
{
    int rc;

    if (v == NULL) {
        return -1;
    }
    rc = PyObject_SetAttrString(o, name, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *
worker_object(PyObject *mod, const nw_hook_worker *hw,
              const nw_settings *cfg)
{
    PyObject *w = PyObject_CallMethod(mod, "_worker", "I", hw->number);

    if (w == NULL) {
        return NULL;
    }
    if ((hw->pid != 0 && set_attr(w, "pid", PyLong_FromLong(hw->pid)) < 0)
        || set_attr(w, "ppid", PyLong_FromLong(hw->ppid)) < 0
        || set_attr(w, "age", PyLong_FromUnsignedLongLong(hw->age)) < 0
        || set_attr(w, "nr", PyLong_FromUnsignedLongLong(hw->requests)) < 0
        || set_attr(w, "alive",
                    PyBool_FromLong(hw->flags & NW_HOOK_WORKER_ALIVE))
               < 0
        || set_attr(w, "booted",
                    PyBool_FromLong(hw->flags & NW_HOOK_WORKER_BOOTED))
               < 0
        || set_attr(w, "aborted",
                    PyBool_FromLong(hw->flags & NW_HOOK_WORKER_ABORTED))
               < 0
        || set_attr(w, "status", hw->status >= 0 ? PyLong_FromLong(hw->status)
                                                 : Py_NewRef(Py_None))
               < 0
        || set_attr(w, "cfg", config_object(cfg)) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    return w;
}

PyObject *
nw__py_worker_self(void)
{
    nw_hook_worker hw;
    PyObject *mod = narwhal_module(), *w;

    nw__worker_hook_info(&hw);
    w = mod != NULL ? worker_object(mod, &hw, current_settings()) : NULL;
    Py_XDECREF(mod);
    return w;
}

static PyObject *
latin1(const char *p, size_t n)
{
    return PyUnicode_DecodeLatin1(p, (Py_ssize_t) n, NULL);
}

/* [(name, value)] of the request's headers (response 0: names upper case,
   as Gunicorn's req.headers) or the response's (1: as the app gave them). */
static PyObject *
header_list(const nw_hook_ctx *ctx, int response)
{
    PyObject *headers = PyList_New(0);

    for (unsigned i = 0; headers != NULL; i++) {
        const char *n, *v;
        size_t nl, vl;
        PyObject *name, *pair;
        if (nw__api_hook_header(ctx, response, i, &n, &nl, &v, &vl)
            != NW_OK) {
            break;
        }
        name = latin1(n, nl);
        if (name != NULL && !response) {
            Py_SETREF(name, PyObject_CallMethod(name, "upper", NULL));
        }
        pair = name ? Py_BuildValue("(NN)", name, latin1(v, vl)) : NULL;
        if (pair == NULL || PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(headers);
            break;
        }
        Py_DECREF(pair);
    }
    return headers;
}

static PyObject *
request_object(PyObject *mod, const nw_hook_ctx *ctx)
{
    const nw_hook_request *r = ctx->req;
    const nw_conn *c = ctx->core;
    PyObject *headers = header_list(ctx, 0), *obj = NULL;
    const char *end = r->uri + r->uri_len, *hash;
    size_t frag_len = 0;

    if (headers == NULL) {
        return NULL;
    }
    hash = memchr(r->path, '#', (size_t) (end - r->path));
    if (hash != NULL) {
        frag_len = (size_t) (end - hash - 1);
    }
    obj = PyObject_CallMethod(
        mod, "Request", "NNNNN(II)NNsK", latin1(r->method, r->method_len),
        latin1(r->uri, r->uri_len), latin1(r->path, r->path_len),
        latin1(r->query, r->query_len),
        hash ? latin1(hash + 1, frag_len) : PyUnicode_FromString(""),
        r->http_major, r->http_minor, headers,
        PyUnicode_FromString(r->remote_addr ? r->remote_addr : ""), "http",
        (unsigned long long) (c != NULL ? c->nrequests + 1 : 1));
    return obj;
}

static PyObject *
response_object(PyObject *mod, const nw_hook_ctx *ctx)
{
    const nw_conn *c = ctx->core;
    PyObject *headers, *status;
    int code;

    if (c == NULL || (c->resp.status == 0 && c->error_status == 0)) {
        Py_RETURN_NONE;
    }
    headers = header_list(ctx, 1);
    if (headers == NULL) {
        return NULL;
    }
    code = nw__conn_status(c);
    if (code == c->resp.status && c->resp.status_text != NULL) {
        status = latin1(c->resp.status_text, c->resp.status_len);
    } else {
        status = PyUnicode_FromFormat("%d %s", code,
                                      nw__status_reason(code));
    }
    return PyObject_CallMethod(mod, "Response", "NiNKOO", status, code,
                               headers, (unsigned long long) c->resp.sent,
                               c->resp.chunked ? Py_True : Py_False,
                               c->resp.headers_sent ? Py_True : Py_False);
}

/* The worker the point is about, or this worker. */
static PyObject *
the_worker(PyObject *mod, const nw_hook_ctx *ctx)
{
    nw_hook_worker self;

    if (ctx->worker != NULL) {
        return worker_object(mod, ctx->worker, ctx->cfg);
    }
    nw__worker_hook_info(&self);
    if (ctx->point == NW_HOOK_POST_REQUEST) {
        /* Gunicorn counts a request (worker.nr) before calling the app:
           post_request sees it counted, pre_request does not */
        self.requests++;
    }
    return worker_object(mod, &self, ctx->cfg);
}

static PyObject *
build_args(PyObject *mod, const nw_hook_ctx *ctx, const nw_pyref *ref)
{
    PyObject *server = PyObject_GetAttrString(mod, "server");
    PyObject *w, *req, *env, *resp;
    nw_conn *c = ctx->core;

    if (server == NULL) {
        return NULL;
    }
    switch (ctx->point) {
    case NW_HOOK_ON_STARTING:
    case NW_HOOK_ON_RELOAD:
    case NW_HOOK_WHEN_READY:
    case NW_HOOK_PRE_EXEC:
    case NW_HOOK_ON_EXIT:
        return Py_BuildValue("(N)", server);
    case NW_HOOK_PRE_FORK:
    case NW_HOOK_POST_FORK:
    case NW_HOOK_CHILD_EXIT:
    case NW_HOOK_WORKER_EXIT:
        w = the_worker(mod, ctx);
        if (w == NULL) {
            Py_DECREF(server);
            return NULL;
        }
        return Py_BuildValue("(NN)", server, w);
    case NW_HOOK_POST_WORKER_INIT:
    case NW_HOOK_WORKER_INT:
    case NW_HOOK_WORKER_ABORT:
        Py_DECREF(server);
        w = the_worker(mod, ctx);
        return w ? Py_BuildValue("(N)", w) : NULL;
    case NW_HOOK_NWORKERS_CHANGED:
        if (ctx->old_num_workers < 0) {
            return Py_BuildValue("(NlO)", server, ctx->num_workers, Py_None);
        }
        return Py_BuildValue("(Nll)", server, ctx->num_workers,
                             ctx->old_num_workers);
    case NW_HOOK_PRE_REQUEST:
    case NW_HOOK_POST_REQUEST:
        Py_DECREF(server);
        w = the_worker(mod, ctx);
        if (w == NULL) {
            return NULL;
        }
        if (c != NULL && c->py_req != NULL) {
            req = Py_NewRef(c->py_req);
        } else {
            req = request_object(mod, ctx);
            if (req != NULL && c != NULL) {
                /* post_request gets the object pre_request got */
                c->py_req = Py_NewRef(req);
            }
        }
        if (req == NULL) {
            Py_DECREF(w);
            return NULL;
        }
        if (ctx->point == NW_HOOK_PRE_REQUEST || ref->arity <= 2) {
            return Py_BuildValue("(NN)", w, req);
        }
        env = c != NULL && c->environ != NULL ? Py_NewRef(c->environ)
                                              : PyDict_New();
        if (ref->arity == 3) {
            return Py_BuildValue("(NNN)", w, req, env);
        }
        resp = response_object(mod, ctx);
        if (resp == NULL) {
            Py_DECREF(w);
            Py_DECREF(req);
            Py_XDECREF(env);
            return NULL;
        }
        return Py_BuildValue("(NNNN)", w, req, env, resp);
    default:
        Py_DECREF(server);
        PyErr_SetString(PyExc_SystemError, "no Python hook at this point");
        return NULL;
    }
}

int
nw__python_hook(const nw_hook_ctx *ctx, void *data)
{
    const nw_setting_def *d = nw__hook_setting(ctx->point);
    const nw_pyref *ref;
    const nw_hook_ctx *outer = running;
    PyGILState_STATE gil;
    PyObject *mod, *args = NULL, *r = NULL;
    int rc = NW_OK;

    (void) data;
    if (d == NULL || ctx->cfg == NULL) {
        return NW_OK;
    }
    ref = NW_SETTING_CPTR(ctx->cfg, d, nw_pyref);
    if (ref->obj == NULL) {
        if (ctx->point == NW_HOOK_PRE_REQUEST && ctx->req != NULL
            && nw__log_level() <= NW_LOG_DEBUG) {
            /* Gunicorn's default pre_request */
            nw__log(NW_LOG_DEBUG, "%.*s %.*s", (int) ctx->req->method_len,
                    ctx->req->method, (int) ctx->req->path_len,
                    ctx->req->path);
        }
        return NW_OK;
    }
    if (!Py_IsInitialized()) {
        return NW_OK;
    }
    gil = PyGILState_Ensure();
    running = ctx;
    mod = narwhal_module();
    if (mod != NULL) {
        args = build_args(mod, ctx, ref);
    }
    if (args != NULL) {
        r = PyObject_Call(ref->obj, args, NULL);
    }
    if (r == NULL) {
        nw__log_py_exception(NW_LOG_ERROR, "Exception in %s hook", d->name);
        rc = NW_ERROR;
    }
    Py_XDECREF(r);
    Py_XDECREF(args);
    Py_XDECREF(mod);
    running = outer;
    PyGILState_Release(gil);
    return rc;
}

/* ------------------------------------------------------------------------
 * Python's logging (logconfig, logconfig_dict, logconfig_json)
 */

static int pylog_ready;

int
nw__pylog_setup(const nw_settings *s, int *level, char *err, size_t errlen)
{
    PyObject *mod, *r = NULL;
    PyGILState_STATE gil;

    if (!Py_IsInitialized()) {
        snprintf(err, errlen, "Python is not running for the logging "
                              "configuration");
        return NW_ERROR;
    }
    gil = PyGILState_Ensure();
    mod = narwhal_module();
    if (mod != NULL) {
        PyObject *defaults = PyDict_New();
        if (s->logconfig_dict.obj != NULL
            && PyDict_Check((PyObject *) s->logconfig_dict.obj)
            && PyDict_Size((PyObject *) s->logconfig_dict.obj) > 0) {
            r = PyObject_CallMethod(mod, "_logging_setup", "sOO", "dict",
                                    (PyObject *) s->logconfig_dict.obj,
                                    defaults);
        } else if (s->logconfig_json != NULL) {
            r = PyObject_CallMethod(mod, "_logging_setup", "ssO", "json",
                                    s->logconfig_json, defaults);
        } else if (s->logconfig != NULL) {
            r = PyObject_CallMethod(mod, "_logging_setup", "ssO", "file",
                                    s->logconfig, defaults);
        } else {
            r = Py_NewRef(Py_None);
        }
        Py_XDECREF(defaults);
    }
    if (r == NULL) {
        PyObject *type, *value, *tb, *text = NULL;
        PyErr_Fetch(&type, &value, &tb);
        if (value != NULL) {
            text = PyObject_Str(value);
        }
        snprintf(err, errlen,
                 "the logging configuration (%s) failed: %s: %s; fix the "
                 "file or dict",
                 s->logconfig_dict.obj != NULL ? "logconfig_dict"
                 : s->logconfig_json != NULL   ? s->logconfig_json
                                               : s->logconfig,
                 type ? ((PyTypeObject *) type)->tp_name : "error",
                 text ? PyUnicode_AsUTF8(text) : "?");
        PyErr_Clear();
        Py_XDECREF(text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        Py_XDECREF(mod);
        PyGILState_Release(gil);
        return NW_ERROR;
    }
    if (PyLong_Check(r)) {
        *level = (int) PyLong_AsLong(r);
    }
    Py_DECREF(r);
    Py_XDECREF(mod);
    PyGILState_Release(gil);
    pylog_ready = 1;
    return NW_OK;
}

void
nw__pylog_emit(int access, int level, const char *text, size_t len)
{
    PyGILState_STATE gil;
    PyObject *mod, *r = NULL;

    if (!pylog_ready || !Py_IsInitialized()) {
        return;
    }
    gil = PyGILState_Ensure();
    mod = narwhal_module();
    if (mod != NULL) {
        r = PyObject_CallMethod(mod, "_logging_emit", "sis#",
                                access ? "gunicorn.access" : "gunicorn.error",
                                level, text, (Py_ssize_t) len);
    }
    if (r == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
    Py_XDECREF(mod);
    PyGILState_Release(gil);
}

void
nw__pylog_reopen(void)
{
    PyGILState_STATE gil;
    PyObject *mod, *r = NULL;

    if (!pylog_ready || !Py_IsInitialized()) {
        return;
    }
    gil = PyGILState_Ensure();
    mod = narwhal_module();
    if (mod != NULL) {
        r = PyObject_CallMethod(mod, "_logging_reopen", NULL);
    }
    if (r == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
    Py_XDECREF(mod);
    PyGILState_Release(gil);
}
