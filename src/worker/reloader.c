/* --reload: Gunicorn's code reloader.  A thread of the worker watches the
   files of every imported module, the reload_extra_files and, after a
   failed load, the files the app failed in: with inotify (reload_engine
   auto or inotify), their modification times looked at again when the
   kernel says one was touched; with reload_engine poll, or a file inotify
   cannot watch, once a second.  Modules imported later are added once a
   second.  When a file changes the worker retires as with
   max_requests: the master starts a successor, which imports the code
   afresh, and stops this worker once it serves, so a reload leaves no
   gap (Gunicorn's worker exits at once). */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "base/memory.h"
#include "python/python.h"
#include "worker/reloader.h"
#include "os/scoreboard.h"
#include "worker/worker.h"

#define POLL_MS 1000
/* what tells of a change to a file, or of the file replaced (an editor
   writing a new file and renaming it over the old one) */
#define WATCH_MASK                                                            \
    (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF)

typedef struct watched {
    char *path;
    struct timespec mtime; /* as first seen; zero: missing then */
    int wd;                /* its inotify watch, or -1: polled */
} watched;

static watched *files;
static size_t nfiles, cap;
static PyObject *seen; /* the module files already watched */
static nw_slot *slot;
static int ifd = -1;   /* inotify; -1: every file is polled */

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
    /* a file inotify cannot watch (missing, or past the user's watch
       limit) is polled */
    files[nfiles].wd = ifd >= 0 ? inotify_add_watch(ifd, path, WATCH_MASK)
                                : -1;
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

/* The first watched file whose time moved, or NULL: of all of them, or
   only of those polled. */
static const char *
changed(int all)
{
    for (size_t i = 0; i < nfiles; i++) {
        struct timespec t;
        if (!all && files[i].wd >= 0) {
            continue;
        }
        mtime_of(files[i].path, &t);
        if (t.tv_sec != files[i].mtime.tv_sec
            || t.tv_nsec != files[i].mtime.tv_nsec) {
            return files[i].path;
        }
    }
    return NULL;
}

/* Wait up to POLL_MS for the kernel's word: 1 if a watched file was
   touched.  A watch the kernel dropped (its file deleted or renamed
   over) leaves its file polled. */
static int
wait_for_events(void)
{
    _Alignas(struct inotify_event) char buf[4096];
    struct pollfd p = {.fd = ifd, .events = POLLIN};
    int touched = 0;
    ssize_t n;

    if (ifd < 0) {
        struct timespec pause = {POLL_MS / 1000, 0};
        nanosleep(&pause, NULL);
        return 0;
    }
    if (poll(&p, 1, POLL_MS) <= 0) {
        return 0;
    }
    while ((n = read(ifd, buf, sizeof(buf))) > 0) {
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const void *) q;
            touched = 1;
            if (ev->mask & IN_IGNORED) {
                for (size_t i = 0; i < nfiles; i++) {
                    if (files[i].wd == ev->wd) {
                        files[i].wd = -1;
                    }
                }
            }
            q += sizeof(*ev) + ev->len;
        }
    }
    return touched;
}

static void *
reloader_main(void *arg)
{
    (void) arg;
    for (;;) {
        PyGILState_STATE gil;
        const char *path;
        int touched = wait_for_events();

        gil = PyGILState_Ensure();
        watch_new_modules();
        PyGILState_Release(gil);
        path = changed(touched);
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
    if (strcmp(s->reload_engine, "poll") != 0) {
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0) {
            nw__log(NW_LOG_WARNING,
                    "reload: inotify is not available (%s); polling once "
                    "a second",
                    strerror(errno));
        }
    }
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
