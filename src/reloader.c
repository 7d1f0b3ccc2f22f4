/* --reload: Gunicorn's code reloader.  A thread of the worker looks at the
   modification times of the files of every imported module, the
   reload_extra_files and, after a failed load, the files the app failed
   in, once a second.  When one changes the worker retires as with
   max_requests: the master starts a successor, which imports the code
   afresh, and stops this worker once it serves, so a reload leaves no
   gap (Gunicorn's worker exits at once). */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "memory.h"
#include "python.h"
#include "reloader.h"
#include "scoreboard.h"
#include "worker_core.h"

#define POLL_NS 1000000000L

typedef struct watched {
    char *path;
    struct timespec mtime; /* as first seen; zero: missing then */
} watched;

static watched *files;
static size_t nfiles, cap;
static PyObject *seen; /* the module files already watched */
static nw_slot *slot;

static void
mtime_of(const char *path, struct timespec *t)
{
    struct stat st;

    if (stat(path, &st) == 0) {
        *t = st.st_mtim;
    } else {
        memset(t, 0, sizeof(*t));
    }
}

static void
watch(const char *path)
{
    if (nfiles == cap) {
        cap = cap ? cap * 2 : 256;
        files = nw__xrealloc(files, cap * sizeof(*files));
    }
    files[nfiles].path = nw__xstrdup(path);
    mtime_of(path, &files[nfiles].mtime);
    nfiles++;
}

/* Add the files in Python list l (borrowed; may be NULL). */
static void
watch_list(PyObject *l)
{
    Py_ssize_t n = l != NULL && PyList_Check(l) ? PyList_GET_SIZE(l) : 0;

    for (Py_ssize_t i = 0; i < n; i++) {
        const char *p = PyUnicode_AsUTF8(PyList_GET_ITEM(l, i));
        if (p == NULL) {
            PyErr_Clear();
            continue;
        }
        watch(p);
    }
}

/* With the GIL: the modules imported since the last look. */
static void
watch_new_modules(void)
{
    PyObject *mod = PyImport_ImportModule("narwhal");
    PyObject *l = mod != NULL
                      ? PyObject_CallMethod(mod, "_module_files", "O", seen)
                      : NULL;

    if (l == NULL) {
        PyErr_Clear();
    }
    watch_list(l);
    Py_XDECREF(l);
    Py_XDECREF(mod);
}

/* The first watched file whose time moved, or NULL. */
static const char *
changed(void)
{
    for (size_t i = 0; i < nfiles; i++) {
        struct timespec t;
        mtime_of(files[i].path, &t);
        if (t.tv_sec != files[i].mtime.tv_sec
            || t.tv_nsec != files[i].mtime.tv_nsec) {
            return files[i].path;
        }
    }
    return NULL;
}

static void *
reloader_main(void *arg)
{
    (void) arg;
    for (;;) {
        struct timespec pause = {0, POLL_NS - 1};
        PyGILState_STATE gil;
        const char *path;

        nanosleep(&pause, NULL);
        gil = PyGILState_Ensure();
        watch_new_modules();
        PyGILState_Release(gil);
        path = changed();
        if (path != NULL) {
            /* the log's state (and its hooks, Python's logging) is the
               GIL holder's */
            gil = PyGILState_Ensure();
            nw__log(NW_LOG_INFO, "Worker reloading: %s modified", path);
            PyGILState_Release(gil);
            atomic_store(&slot->state, NW_SLOT_RETIRING);
            return NULL;
        }
    }
}

int
nw__reloader_start(nw_worker_core *core, const nw_settings *s)
{
    pthread_t t;
    sigset_t all, old;
    int rc;

    if (!s->reload) {
        return NW_OK;
    }
    if (s->preload_app) {
        nw__log(NW_LOG_WARNING,
                "reload: the app was loaded before forking (preload_app), "
                "so a worker started for a changed file runs the old code; "
                "drop --preload while developing");
    }
    slot = core->slot;
    seen = PySet_New(NULL);
    if (seen == NULL) {
        return NW_ERROR;
    }
    watch_new_modules();
    for (size_t i = 0; i < s->reload_extra_files.count; i++) {
        watch(s->reload_extra_files.items[i]);
    }
    watch_list(nw__python_failure_files());
    /* signals stay the main thread's */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, NULL, reloader_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        nw__log(NW_LOG_ERROR, "reload: cannot start its thread: %s",
                strerror(rc));
        return NW_ERROR;
    }
    pthread_detach(t);
    return NW_OK;
}
