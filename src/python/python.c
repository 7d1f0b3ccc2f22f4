#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/appspec.h"
#include "base/exitcodes.h"
#include "log/log.h"
#include "python/pyhooks.h"
#include "python/python.h"
#include "wsgi/wsgi.h"

#ifndef NW_PYTHON_EXECUTABLE
#define NW_PYTHON_EXECUTABLE "python3"
#endif

/* The interpreter whose prefix and site-packages we use: the one narwhal
   was built for, or the active virtualenv's (its pyvenv.cfg is then found
   the way `python` itself finds it). */
static const char *
program_name(char *buf, size_t len)
{
    const char *venv = getenv("VIRTUAL_ENV");

    if (venv != NULL && *venv != '\0') {
        snprintf(buf, len, "%s/bin/python3", venv);
        if (access(buf, X_OK) == 0) {
            return buf;
        }
    }
    return NW_PYTHON_EXECUTABLE;
}

/* Put dir at the front of sys.path, moving it there if it is already
   in, so the order below holds however often it is applied (once in the
   arbiter for a Python config file, again in each worker). */
static int
path_insert_front(PyObject *path, const char *dir)
{
    PyObject *item = PyUnicode_DecodeFSDefault(dir);
    Py_ssize_t at;
    int rc = -1;

    if (item == NULL) {
        return -1;
    }
    for (;;) {
        at = PySequence_Index(path, item);
        if (at < 0) {
            PyErr_Clear();
            break;
        }
        if (PySequence_DelItem(path, at) != 0) {
            goto done;
        }
    }
    rc = PyList_Insert(path, 0, item);
done:
    Py_DECREF(item);
    return rc;
}

int
nw__python_setup_path(const nw_settings *s)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    char cwd[PATH_MAX], abs[PATH_MAX];
    const char *p;

    /* Gunicorn's order: the working directory first, then each pythonpath
       entry inserted in front of it (so the last one comes first). */
    if (path == NULL || !PyList_Check(path)) {
        return -1;
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL || path_insert_front(path, cwd) != 0) {
        return -1;
    }
    for (p = s->pythonpath; p != NULL && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t) (comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        if (n > 0) {
            /* relative entries are taken from the working directory, as
               os.path.abspath does */
            int len = p[0] == '/'
                          ? snprintf(abs, sizeof(abs), "%.*s", (int) n, p)
                          : snprintf(abs, sizeof(abs), "%s/%.*s", cwd,
                                     (int) n, p);
            if (len > 0 && (size_t) len < sizeof(abs)
                && path_insert_front(path, abs) != 0) {
                return -1;
            }
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return 0;
}

/* Set when the arbiter itself started CPython (a Python config file or
   hooks): workers then inherit the interpreter instead of starting one. */
static int arbiter_python;

int
nw__python_start(const nw_settings *s, int argc, char **argv)
{
    PyConfig config;
    PyStatus status;
    char buf[PATH_MAX];

    if (Py_IsInitialized()) {
        return NW_OK;
    }
    /* `import narwhal` finds the hooks' module */
    nw__pymodule_register();
    PyConfig_InitPythonConfig(&config);
    /* narwhal owns the process's signals (SIGINT, SIGPIPE, ...) */
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    status = PyConfig_SetBytesString(&config, &config.program_name,
                                     program_name(buf, sizeof(buf)));
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        nw__log(NW_LOG_CRITICAL, "cannot start Python %s: %s",
                PY_VERSION, status.err_msg ? status.err_msg : "unknown error");
        return NW_ERROR;
    }
    if (nw__python_setup_path(s) != 0) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot set sys.path");
        return NW_ERROR;
    }
    return NW_OK;
}

int
nw__python_start_arbiter(const nw_settings *s, int argc, char **argv)
{
    if (arbiter_python) {
        return NW_OK;
    }
    if (nw__python_start(s, argc, argv) != NW_OK) {
        return NW_ERROR;
    }
    arbiter_python = 1;
    return NW_OK;
}

int
nw__python_in_arbiter(void)
{
    return arbiter_python;
}

void
nw__python_before_fork(void)
{
    if (arbiter_python) {
        PyOS_BeforeFork();
    }
}

void
nw__python_after_fork_parent(void)
{
    if (arbiter_python) {
        PyOS_AfterFork_Parent();
    }
}

void
nw__python_after_fork_child(void)
{
    if (arbiter_python) {
        PyOS_AfterFork_Child();
    }
}

void
nw__python_finalize_arbiter(void)
{
    if (arbiter_python) {
        arbiter_python = 0;
        Py_FinalizeEx();
    }
}

int
nw__python_init(const nw_settings *s, int argc, char **argv)
{
    if (Py_IsInitialized()) {
        /* inherited from the arbiter: only the paths may have changed
           (chdir after the config file was read) */
        if (nw__python_setup_path(s) != 0) {
            nw__log_py_exception(NW_LOG_CRITICAL, "cannot set sys.path");
            return NW_ERROR;
        }
        return NW_OK;
    }
    return nw__python_start(s, argc, argv);
}

/* NAME(ARGS) with literal arguments: Python's own parser reads them. */
static PyObject *
call_factory(PyObject *factory, const nw_appspec *spec)
{
    PyObject *ast = NULL, *tree = NULL, *call = NULL, *args = NULL;
    PyObject *kwargs = NULL, *nodes = NULL, *result = NULL;
    PyObject *literal_eval;
    PyObject *src;
    Py_ssize_t n;

    src = PyUnicode_FromFormat("f(%s)", spec->args);
    ast = PyImport_ImportModule("ast");
    if (src == NULL || ast == NULL) {
        goto done;
    }
    tree = PyObject_CallMethod(ast, "parse", "Oss", src, "<APP_MODULE>",
                               "eval");
    if (tree == NULL) {
        goto bad_args;
    }
    call = PyObject_GetAttrString(tree, "body");
    if (call == NULL) {
        goto done;
    }
    literal_eval = PyObject_GetAttrString(ast, "literal_eval");
    if (literal_eval == NULL) {
        goto done;
    }
    nodes = PyObject_GetAttrString(call, "args");
    args = nodes ? PyList_New(0) : NULL;
    n = nodes ? PyList_Size(nodes) : -1;
    for (Py_ssize_t i = 0; args && i < n; i++) {
        PyObject *v = PyObject_CallOneArg(literal_eval,
                                          PyList_GET_ITEM(nodes, i));
        if (v == NULL || PyList_Append(args, v) != 0) {
            Py_XDECREF(v);
            Py_DECREF(literal_eval);
            goto bad_args;
        }
        Py_DECREF(v);
    }
    Py_CLEAR(nodes);
    nodes = PyObject_GetAttrString(call, "keywords");
    kwargs = nodes ? PyDict_New() : NULL;
    n = nodes ? PyList_Size(nodes) : -1;
    for (Py_ssize_t i = 0; kwargs && i < n; i++) {
        PyObject *kw = PyList_GET_ITEM(nodes, i);
        PyObject *name = PyObject_GetAttrString(kw, "arg");
        PyObject *node = PyObject_GetAttrString(kw, "value");
        PyObject *v = (name && node && name != Py_None)
                          ? PyObject_CallOneArg(literal_eval, node)
                          : NULL;
        int rc = v ? PyDict_SetItem(kwargs, name, v) : -1;
        Py_XDECREF(name);
        Py_XDECREF(node);
        Py_XDECREF(v);
        if (rc != 0) {
            Py_DECREF(literal_eval);
            goto bad_args;
        }
    }
    Py_DECREF(literal_eval);
    if (args == NULL || kwargs == NULL) {
        goto done;
    }
    {
        PyObject *targs = PyList_AsTuple(args);
        if (targs != NULL) {
            result = PyObject_Call(factory, targs, kwargs);
            Py_DECREF(targs);
        }
    }
    goto done;

bad_args:
    PyErr_Clear();
    nw__log(NW_LOG_ERROR,
            "Failed to parse the arguments of %s(%s): they must be Python "
            "literals (strings, numbers, lists, ...), e.g. "
            "create_app('production', debug=False)",
            spec->name, spec->args);
    result = NULL;

done:
    Py_XDECREF(nodes);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(call);
    Py_XDECREF(tree);
    Py_XDECREF(ast);
    Py_XDECREF(src);
    return result;
}

static int
module_is_file(const char *module)
{
    size_t n = strlen(module);
    return n > 3 && strcmp(module + n - 3, ".py") == 0
           && access(module, F_OK) == 0;
}

/* The files an app that failed to load was running (the file of a
   SyntaxError, the traceback's): with reload, fixing one of them loads
   the app again. */
static PyObject *failure_files;

static void
remember_failure_files(void)
{
    PyObject *type, *value, *tb, *mod, *files;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    mod = PyImport_ImportModule("narwhal");
    files = mod != NULL && value != NULL
                ? PyObject_CallMethod(mod, "_failure_files", "O", value)
                : NULL;
    if (files == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(mod);
    Py_XSETREF(failure_files, files);
    PyErr_Restore(type, value, tb);
}

PyObject *
nw__python_failure_files(void)
{
    return failure_files;
}

int
nw__python_load_app(const char *spec_text, PyObject **app)
{
    nw_appspec spec;
    PyObject *mod, *obj;
    char err[512];

    *app = NULL;
    if (nw__appspec_parse(spec_text, &spec, err, sizeof(err)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return NW_EXIT_APP_LOAD;
    }
    mod = PyImport_ImportModule(spec.module);
    if (mod == NULL) {
        if (module_is_file(spec.module)) {
            PyErr_Clear();
            nw__log(NW_LOG_ERROR,
                    "Failed to find application: '%s' is a file name, not a "
                    "module; did you mean '%.*s:%s'?",
                    spec.module, (int) (strlen(spec.module) - 3), spec.module,
                    spec.name);
        } else {
            remember_failure_files();
            nw__log_py_exception(NW_LOG_ERROR,
                                 "Failed to import the application module "
                                 "'%s'",
                                 spec.module);
        }
        return NW_EXIT_APP_LOAD;
    }
    obj = PyObject_GetAttrString(mod, spec.name);
    Py_DECREF(mod);
    if (obj == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            nw__log(NW_LOG_ERROR,
                    "Failed to find attribute '%s' in '%s'; name the WSGI "
                    "callable as MODULE:VARIABLE",
                    spec.name, spec.module);
        } else {
            remember_failure_files();
            nw__log_py_exception(NW_LOG_ERROR,
                                 "Failed to find attribute '%s' in '%s'",
                                 spec.name, spec.module);
        }
        return NW_EXIT_APP_LOAD;
    }
    if (spec.is_call) {
        PyObject *made = call_factory(obj, &spec);
        Py_DECREF(obj);
        if (made == NULL) {
            if (PyErr_Occurred()) {
                remember_failure_files();
                nw__log_py_exception(NW_LOG_ERROR,
                                     "The application factory %s.%s(%s) "
                                     "failed",
                                     spec.module, spec.name, spec.args);
            }
            return NW_EXIT_APP_LOAD;
        }
        obj = made;
    }
    if (obj == Py_None) {
        Py_DECREF(obj);
        nw__log(NW_LOG_ERROR, "Failed to find application object: '%s' is "
                              "None in '%s'",
                spec.name, spec.module);
        return NW_EXIT_APP_LOAD;
    }
    if (!PyCallable_Check(obj)) {
        nw__log(NW_LOG_ERROR,
                "Application object must be callable: '%s:%s' is a %s",
                spec.module, spec.name, Py_TYPE(obj)->tp_name);
        Py_DECREF(obj);
        return NW_EXIT_APP_LOAD;
    }
    *app = obj;
    return NW_OK;
}

static PyObject *preloaded_app;

int
nw__python_preload_app(const nw_settings *s, int argc, char **argv)
{
    if (nw__python_start_arbiter(s, argc, argv) != NW_OK) {
        return NW_EXIT_WORKER_BOOT;
    }
    if (nw__python_setup_path(s) != 0) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot set sys.path");
        return NW_EXIT_WORKER_BOOT;
    }
    return nw__python_load_app(s->app_module, &preloaded_app);
}

PyObject *
nw__python_preloaded_app(void)
{
    return preloaded_app;
}
