/* Python config files, run by the embedded interpreter in the arbiter as
   Gunicorn runs them, and the hooks they (or an INI file) name. */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_files.h"
#include "log/log.h"
#include "base/memory.h"
#include "python/python.h"
#include "wsgi/wsgi.h"

/* Gunicorn's own steps (app/base.py, util.get_arity), kept in Python so
   they stay the same steps: a file becomes a module named __config__
   that is executed, not imported; python:MODULE is imported. */
static const char helper_src[] =
    "import importlib.machinery, importlib.util, inspect, sys\n"
    "def load_file(path):\n"
    "    name = '__config__'\n"
    "    if path.endswith(('.py', '.pyc')):\n"
    "        spec = importlib.util.spec_from_file_location(name, path)\n"
    "    else:\n"
    "        loader = importlib.machinery.SourceFileLoader(name, path)\n"
    "        spec = importlib.util.spec_from_file_location(name, path,\n"
    "                                                      loader=loader)\n"
    "    mod = importlib.util.module_from_spec(spec)\n"
    "    sys.modules[name] = mod\n"
    "    spec.loader.exec_module(mod)\n"
    "    return vars(mod)\n"
    "def load_module(name):\n"
    "    return vars(importlib.import_module(name))\n"
    "def arity(f):\n"
    "    kinds = (inspect.Parameter.POSITIONAL_ONLY,\n"
    "             inspect.Parameter.POSITIONAL_OR_KEYWORD)\n"
    "    return sum(1 for p in inspect.signature(f).parameters.values()\n"
    "               if p.kind in kinds)\n"
    "def resolve(spec):\n"
    "    if ':' in spec:\n"
    "        mod_name, _, obj_name = spec.partition(':')\n"
    "    else:\n"
    "        mod_name, _, obj_name = spec.rpartition('.')\n"
    "    obj = importlib.import_module(mod_name)\n"
    "    for part in obj_name.split('.'):\n"
    "        obj = getattr(obj, part)\n"
    "    return obj\n"
    "def qualname(obj):\n"
    "    q = getattr(obj, '__qualname__', None)\n"
    "    return q if isinstance(q, str) else type(obj).__qualname__\n"
    "def class_path(cls):\n"
    "    return cls.__module__ + '.' + cls.__qualname__\n";

static PyObject *helper; /* the helper's namespace (a dict) */

static void
release_pyref(nw_pyref *r)
{
    if (Py_IsInitialized()) {
        Py_XDECREF((PyObject *) r->obj);
    }
    r->obj = NULL;
}

static int
start(nw_settings *s, int argc, char **argv)
{
    PyObject *code;

    if (helper != NULL) {
        return NW_OK;
    }
    if (nw__python_start_arbiter(s, argc, argv) != NW_OK) {
        return NW_ERROR;
    }
    nw__pyref_release = release_pyref;
    helper = PyDict_New();
    if (helper == NULL
        || PyDict_SetItemString(helper, "__builtins__", PyEval_GetBuiltins())
               != 0) {
        return NW_ERROR;
    }
    code = Py_CompileString(helper_src, "<narwhal config reader>",
                            Py_file_input);
    if (code != NULL) {
        PyObject *done = PyEval_EvalCode(code, helper, helper);
        Py_DECREF(code);
        code = done;
    }
    if (code == NULL) {
        nw__log_py_exception(NW_LOG_CRITICAL, "cannot set up the config "
                                              "reader");
        return NW_ERROR;
    }
    Py_DECREF(code);
    return NW_OK;
}

static PyObject *
call1(const char *fn, PyObject *arg)
{
    PyObject *f = PyDict_GetItemString(helper, fn); /* borrowed */
    return f ? PyObject_CallOneArg(f, arg) : NULL;
}

/* "Error: <what>" and the traceback, on errout; the exception cleared. */
static void
report_exception(FILE *errout, const char *what)
{
    PyObject *text = nw__py_traceback_text();
    const char *trace = text != NULL ? PyUnicode_AsUTF8(text) : NULL;

    fprintf(errout, "Error: %s\n%s", what, trace ? trace : "");
    PyErr_Clear();
    Py_XDECREF(text);
}

/* "Name: message" of the current exception, which is cleared. */
static void
exception_text(char *buf, size_t len)
{
    PyObject *type, *value, *tb, *str = NULL;
    const char *msg = NULL;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL) {
        str = PyObject_Str(value);
        msg = str ? PyUnicode_AsUTF8(str) : NULL;
    }
    snprintf(buf, len, "%s%s%s",
             type ? ((PyTypeObject *) type)->tp_name : "error",
             msg && *msg ? ": " : "", msg ? msg : "");
    PyErr_Clear();
    Py_XDECREF(str);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* repr(obj), for messages, malloc'ed. */
static char *
repr_dup(PyObject *obj)
{
    PyObject *r = PyObject_Repr(obj);
    const char *t = r ? PyUnicode_AsUTF8(r) : NULL;
    char *out = nw__xstrdup(t ? t : "?");

    PyErr_Clear();
    Py_XDECREF(r);
    return out;
}

static const char *
utf8(PyObject *o)
{
    const char *t = PyUnicode_AsUTF8(o);
    if (t == NULL) {
        PyErr_Clear();
    }
    return t;
}

/* Check a hook's callable: its arity is Gunicorn's (util.get_arity:
   positional parameters, with or without defaults). */
static int
check_callable(const nw_setting_def *d, PyObject *obj, nw_pyref *ref,
               char *err, size_t errlen)
{
    PyObject *n, *q;
    long arity;
    const char *name;

    if (!PyCallable_Check(obj)) {
        char *r = repr_dup(obj);
        snprintf(err, errlen, "%s is not callable", r);
        free(r);
        return NW_ERROR;
    }
    n = call1("arity", obj);
    if (n == NULL) {
        char why[256], *r = repr_dup(obj);
        exception_text(why, sizeof(why));
        snprintf(err, errlen, "cannot read the parameters of %s (%s)", r,
                 why);
        free(r);
        return NW_ERROR;
    }
    arity = PyLong_AsLong(n);
    Py_DECREF(n);
    q = call1("qualname", obj);
    name = q ? utf8(q) : NULL;
    if (arity < d->min || arity > d->max) {
        if (d->min == d->max) {
            snprintf(err, errlen,
                     "%s() takes %ld positional argument%s; the hook is "
                     "called with %lld: %s(%s)",
                     name ? name : "the callable", arity,
                     arity == 1 ? "" : "s", d->min, d->name, d->meta);
        } else {
            snprintf(err, errlen,
                     "%s() takes %ld positional argument%s; the hook is "
                     "called with %lld to %lld: %s(%s)",
                     name ? name : "the callable", arity,
                     arity == 1 ? "" : "s", d->min, d->max, d->name,
                     d->meta);
        }
        Py_XDECREF(q);
        PyErr_Clear();
        return NW_ERROR;
    }
    ref->arity = (int) arity;
    ref->text = nw__xmalloc(strlen(name ? name : "?") + 5);
    sprintf(ref->text, "<%s()>", name ? name : "?");
    Py_XDECREF(q);
    Py_INCREF(obj);
    ref->obj = obj;
    return NW_OK;
}

static int
resolve_spec(const nw_setting_def *d, const char *spec, nw_pyref *ref,
             char *err, size_t errlen)
{
    PyObject *text = PyUnicode_FromString(spec), *obj;

    obj = text ? call1("resolve", text) : NULL;
    Py_XDECREF(text);
    if (obj == NULL) {
        char why[512];
        exception_text(why, sizeof(why));
        snprintf(err, errlen, "cannot load '%s': %s", spec, why);
        return NW_ERROR;
    }
    if (check_callable(d, obj, ref, err, errlen) != NW_OK) {
        Py_DECREF(obj);
        return NW_ERROR;
    }
    Py_DECREF(obj);
    ref->spec = nw__xstrdup(spec);
    return NW_OK;
}

/* The text a Python value stands for (for the table's text parsers);
   NULL for None.  *owned is set when the result must be freed. */
static int
scalar_text(const nw_setting_def *d, PyObject *v, const char **out,
            char **owned, char *err, size_t errlen)
{
    *owned = NULL;
    *out = NULL;
    if (v == Py_None) {
        return NW_OK;
    }
    if (PyBool_Check(v)) {
        if (d->type == NW_T_STR) {
            goto wrong;
        }
        /* Gunicorn: "Booleans are ints!" */
        if (d->type == NW_T_INT || d->type == NW_T_DURATION) {
            *out = v == Py_True ? "1" : "0";
        } else {
            *out = v == Py_True ? "true" : "false";
        }
        return NW_OK;
    }
    if (PyLong_Check(v)) {
        if (d->type == NW_T_STR || d->type == NW_T_CHOICE) {
            goto wrong;
        }
        *owned = repr_dup(v);
        *out = *owned;
        return NW_OK;
    }
    if (PyUnicode_Check(v)) {
        *out = utf8(v);
        if (*out == NULL) {
            snprintf(err, errlen, "the string cannot be encoded as UTF-8");
            return NW_ERROR;
        }
        return NW_OK;
    }
    if (PyType_Check(v) && d->type == NW_T_STR) {
        /* worker_class = SomeClass: Gunicorn accepts classes */
        PyObject *p = call1("class_path", v);
        if (p != NULL && utf8(p) != NULL) {
            *owned = nw__xstrdup(utf8(p));
            *out = *owned;
            Py_DECREF(p);
            return NW_OK;
        }
        Py_XDECREF(p);
        PyErr_Clear();
    }
wrong: {
    char *r = repr_dup(v);
    const char *want = d->type == NW_T_BOOL ? "True or False"
                       : d->type == NW_T_STR || d->type == NW_T_CHOICE
                           ? "a string"
                           : "an int";
    snprintf(err, errlen, "%s is a %s; expected %s", r, Py_TYPE(v)->tp_name,
             want);
    free(r);
    return NW_ERROR;
}
}

/* One module-level value of a config file onto setting d. */
static int
set_from_python(nw_settings *s, const nw_setting_def *d, PyObject *v,
                const char *origin, char *err, size_t errlen)
{
    const char *text;
    char *owned = NULL;
    int rc = NW_ERROR;

    switch (d->type) {
    case NW_T_INT:
    case NW_T_DURATION:
    case NW_T_BOOL:
    case NW_T_STR:
    case NW_T_CHOICE:
        if (scalar_text(d, v, &text, &owned, err, errlen) != NW_OK) {
            return NW_ERROR;
        }
        if (text == NULL && d->type == NW_T_BOOL) {
            text = "false"; /* Gunicorn's validate_bool(None) */
        }
        rc = nw__setting_set(s, d, text, NW_SRC_FILE, origin, err, errlen);
        free(owned);
        return rc;
    case NW_T_LIST:
        if (v == Py_None
            || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)) {
            return nw__setting_clear(s, d, NW_SRC_FILE, origin, err, errlen);
        }
        if (PyUnicode_Check(v)) {
            /* Gunicorn's "legacy syntax": one string is a list of one */
            const char *one = utf8(v);
            if (one == NULL) {
                snprintf(err, errlen, "the string is not valid UTF-8");
                return NW_ERROR;
            }
            if (nw__setting_clear(s, d, NW_SRC_FILE, origin, err, errlen)
                != NW_OK) {
                return NW_ERROR;
            }
            return nw__setting_set(s, d, one, NW_SRC_FILE, origin, err,
                                   errlen);
        }
        /* a list of strings, as for a CSV */
        /* fall through */
    case NW_T_CSV: {
        PyObject *seq;
        Py_ssize_t n;
        if (v == Py_None) {
            return nw__setting_clear(s, d, NW_SRC_FILE, origin, err, errlen);
        }
        if (PyUnicode_Check(v)) {
            if (utf8(v) == NULL) {
                snprintf(err, errlen, "the string is not valid UTF-8");
                return NW_ERROR;
            }
            return nw__setting_set(s, d, utf8(v), NW_SRC_FILE, origin, err,
                                   errlen);
        }
        if (!PyList_Check(v) && !PyTuple_Check(v)) {
            char *r = repr_dup(v);
            snprintf(err, errlen, "%s is a %s; expected a list of strings",
                     r, Py_TYPE(v)->tp_name);
            free(r);
            return NW_ERROR;
        }
        seq = PySequence_Fast(v, "a list");
        n = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
        if ((d->type == NW_T_LIST || n == 0)
            && nw__setting_clear(s, d, NW_SRC_FILE, origin, err, errlen)
                   != NW_OK) {
            Py_XDECREF(seq);
            return NW_ERROR;
        }
        rc = NW_OK;
        for (Py_ssize_t i = 0; i < n && rc == NW_OK; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            const char *t = PyUnicode_Check(item) ? utf8(item) : NULL;
            if (t == NULL) {
                char *r = repr_dup(item);
                snprintf(err, errlen, "item %s is a %s; expected a string",
                         r, Py_TYPE(item)->tp_name);
                free(r);
                rc = NW_ERROR;
            } else if (d->type == NW_T_LIST) {
                rc = nw__setting_set(s, d, t, NW_SRC_FILE, origin, err,
                                     errlen);
            } else {
                /* a CSV list: items joined, then parsed and checked */
                size_t have = owned ? strlen(owned) : 0;
                owned = nw__xrealloc(owned, have + strlen(t) + 2);
                sprintf(owned + have, "%s%s", have ? "," : "", t);
            }
        }
        Py_XDECREF(seq);
        if (rc == NW_OK && d->type == NW_T_CSV && owned != NULL) {
            rc = nw__setting_set(s, d, owned, NW_SRC_FILE, origin, err,
                                 errlen);
        }
        free(owned);
        return rc;
    }
    case NW_T_DICT: {
        PyObject *key, *val;
        Py_ssize_t pos = 0, n, i = 0;
        const char **keys, **vals;
        if (!PyDict_Check(v)) {
            char *r = repr_dup(v);
            snprintf(err, errlen, "%s is a %s; expected a dict", r,
                     Py_TYPE(v)->tp_name);
            free(r);
            return NW_ERROR;
        }
        n = PyDict_Size(v);
        keys = nw__xcalloc((size_t) n + 1, sizeof(char *));
        vals = nw__xcalloc((size_t) n + 1, sizeof(char *));
        rc = NW_OK;
        while (PyDict_Next(v, &pos, &key, &val)) {
            keys[i] = PyUnicode_Check(key) ? utf8(key) : NULL;
            vals[i] = PyUnicode_Check(val) ? utf8(val) : NULL;
            if (keys[i] == NULL || vals[i] == NULL) {
                char *r = repr_dup(keys[i] == NULL ? key : val);
                snprintf(err, errlen, "%s %s is not a string",
                         keys[i] == NULL ? "key" : "value", r);
                free(r);
                rc = NW_ERROR;
                break;
            }
            i++;
        }
        if (rc == NW_OK) {
            rc = nw__setting_set_map(s, d, keys, vals, (size_t) n,
                                     NW_SRC_FILE, origin, err, errlen);
        }
        free(keys);
        free(vals);
        return rc;
    }
    case NW_T_CALLABLE: {
        nw_pyref ref;
        memset(&ref, 0, sizeof(ref));
        if (PyUnicode_Check(v)) {
            const char *spec = utf8(v);
            if (spec == NULL) {
                snprintf(err, errlen, "the string is not valid UTF-8");
                return NW_ERROR;
            }
            if (resolve_spec(d, spec, &ref, err, errlen) != NW_OK) {
                return NW_ERROR;
            }
        } else if (check_callable(d, v, &ref, err, errlen) != NW_OK) {
            return NW_ERROR;
        }
        return nw__setting_set_pyref(s, d, &ref, NW_SRC_FILE, origin, err,
                                     errlen);
    }
    case NW_T_PYOBJ: {
        nw_pyref ref;
        if (!PyDict_Check(v)) {
            char *r = repr_dup(v);
            snprintf(err, errlen, "%s is a %s; expected a dict", r,
                     Py_TYPE(v)->tp_name);
            free(r);
            return NW_ERROR;
        }
        memset(&ref, 0, sizeof(ref));
        Py_INCREF(v);
        ref.obj = v;
        ref.text = repr_dup(v);
        return nw__setting_set_pyref(s, d, &ref, NW_SRC_FILE, origin, err,
                                     errlen);
    }
    }
    return NW_ERROR;
}

int
nw__config_py_load(nw_settings *s, const char *location, int argc,
                   char **argv, FILE *errout)
{
    PyObject *ns, *arg, *key, *value;
    Py_ssize_t pos = 0;
    const char *module = NULL, *path = location;
    char err[1024], what[1200];
    int rc = NW_OK;

    if (strncmp(location, "python:", 7) == 0) {
        module = location + 7;
    } else if (strncmp(location, "file:", 5) == 0) {
        path = location + 5;
    }
    if (start(s, argc, argv) != NW_OK) {
        return NW_ERROR;
    }
    if (module == NULL) {
        size_t n = strlen(path);
        if (!(n > 3 && strcmp(path + n - 3, ".py") == 0)
            && !(n > 4 && strcmp(path + n - 4, ".pyc") == 0)) {
            nw__log(NW_LOG_WARNING,
                    "config file %s should have a .py extension (or .ini "
                    "or .cfg for INI); running it as Python",
                    path);
        }
    }
    arg = PyUnicode_DecodeFSDefault(module ? module : path);
    ns = arg ? call1(module ? "load_module" : "load_file", arg) : NULL;
    Py_XDECREF(arg);
    if (ns == NULL) {
        snprintf(what, sizeof(what), "failed to read config file %s:%s",
                 location, "");
        report_exception(errout, what);
        return NW_ERROR;
    }
    /* a copy: the file's own names, in definition order */
    value = PyDict_Copy(ns);
    Py_DECREF(ns);
    ns = value;
    while (ns != NULL && rc == NW_OK && PyDict_Next(ns, &pos, &key, &value)) {
        const char *name = PyUnicode_Check(key) ? utf8(key) : NULL;
        const nw_setting_def *d;

        if (name == NULL || name[0] == '_') {
            continue;
        }
        d = nw__setting_find(name);
        if (d == NULL) {
            /* Gunicorn ignores unknown names (imports, helpers); a near
               miss of a setting's name is most likely a typo */
            const nw_setting_def *near = nw__setting_suggest(name);
            if (near != NULL && !PyModule_Check(value)) {
                nw__log(NW_LOG_WARNING,
                        "%s: '%s' is not a setting and is ignored; did you "
                        "mean '%s'?",
                        location, name, near->name);
            }
            continue;
        }
        if (set_from_python(s, d, value, location, err, sizeof(err))
            != NW_OK) {
            fprintf(errout, "Error: %s: %s: %s\n", location, d->name, err);
            rc = NW_ERROR;
        }
    }
    Py_XDECREF(ns);
    return rc;
}

int
nw__config_py_resolve(nw_settings *s, int argc, char **argv, FILE *errout)
{
    char err[1024];

    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        nw_pyref *ref, fresh;
        char *origin;

        if (d->type != NW_T_CALLABLE) {
            continue;
        }
        ref = NW_SETTING_PTR(s, d, nw_pyref);
        if (ref->spec == NULL || ref->obj != NULL) {
            continue;
        }
        if (start(s, argc, argv) != NW_OK) {
            return NW_ERROR;
        }
        memset(&fresh, 0, sizeof(fresh));
        if (resolve_spec(d, ref->spec, &fresh, err, sizeof(err)) != NW_OK) {
            fprintf(errout, "Error: %s: %s: %s\n",
                    s->origin[i] ? s->origin[i] : "config", d->name, err);
            return NW_ERROR;
        }
        origin = s->origin[i] ? nw__xstrdup(s->origin[i]) : NULL;
        if (nw__setting_set_pyref(s, d, &fresh, (enum nw_setting_source)
                                                    s->source[i],
                                  origin, err, sizeof(err))
            != NW_OK) {
            fprintf(errout, "Error: %s: %s: %s\n", origin ? origin : "config",
                    d->name, err);
            free(origin);
            return NW_ERROR;
        }
        free(origin);
    }
    return NW_OK;
}

int
nw__config_check_app(nw_settings *s, int argc, char **argv)
{
    PyObject *app = NULL;
    int rc;

    if (nw__python_start_arbiter(s, argc, argv) != NW_OK
        || nw__python_setup_path(s) != 0) {
        return NW_ERROR;
    }
    rc = nw__python_load_app(s->app_module, &app);
    Py_XDECREF(app);
    return rc == NW_OK ? NW_OK : NW_ERROR;
}
