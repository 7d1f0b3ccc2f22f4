#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/plugin.h"

#ifndef NW_PLUGINDIR
#define NW_PLUGINDIR "/usr/local/lib/narwhal/workers"
#endif
#ifndef NW_HOOKDIR
#define NW_HOOKDIR "/usr/local/lib/narwhal/hooks"
#endif

/* Spellings Gunicorn users already have in their command lines. */
static const struct {
    const char *spelling;
    const char *name;
} aliases[] = {
    {"gunicorn.workers.sync.SyncWorker", "sync"},
    {"egg:gunicorn#sync", "sync"},
    {"gthread", "gthread"},
    {"gunicorn.workers.gthread.ThreadWorker", "gthread"},
    {"egg:gunicorn#gthread", "gthread"},
    {"tornado", "tornado-compat"},
    {"gunicorn.workers.gtornado.TornadoWorker", "tornado-compat"},
    {"egg:gunicorn#tornado", "tornado-compat"},
};

static const char *const monkey_patchers[] = {
    "gevent",
    "gevent_wsgi",
    "gevent_pywsgi",
    "eventlet",
    "gunicorn.workers.ggevent.GeventWorker",
    "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    "gunicorn.workers.geventlet.EventletWorker",
    "egg:gunicorn#gevent",
    "egg:gunicorn#eventlet",
};

const char *
nw__worker_class_alias(const char *spec, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcmp(spec, aliases[i].spelling) == 0) {
            return aliases[i].name;
        }
    }
    for (size_t i = 0; i < sizeof(monkey_patchers) / sizeof(char *); i++) {
        if (strcmp(spec, monkey_patchers[i]) == 0) {
            snprintf(err, errlen,
                     "worker class '%s' is not available: narwhal does not "
                     "monkey-patch; use -k ev (libev event loop, many "
                     "connections per worker) or -k gthread",
                     spec);
            return NULL;
        }
    }
    if (strcmp(spec, "asgi") == 0 || strstr(spec, "Uvicorn") != NULL) {
        snprintf(err, errlen,
                 "worker class '%s' is not available: narwhal serves WSGI "
                 "apps; use -k sync, ev, gthread or tornado-compat",
                 spec);
        return NULL;
    }
    return spec;
}

static int
name_is_plain(const char *name)
{
    if (*name == '\0' || *name == '.') {
        return 0;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == '.')) {
            return 0;
        }
    }
    return 1;
}

/* Is this binary the one in the build tree?  Then plugins built beside it
   are found without installing. */
static int
running_uninstalled(void)
{
#ifdef NW_BUILD_TOPDIR
    char exe[PATH_MAX], top[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n <= 0 || realpath(NW_BUILD_TOPDIR, top) == NULL) {
        return 0;
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL) {
        return 0;
    }
    *slash = '\0';
    return strcmp(exe, top) == 0;
#else
    return 0;
#endif
}

/* Try DIR/NAME.so; remember what was tried for the error message. */
static int
try_path(const char *dir, const char *sub, const char *name, char *path,
         size_t pathlen, char *tried, size_t triedlen)
{
    size_t t = strlen(tried);

    snprintf(path, pathlen, "%s%s%s/%s.so", dir, sub ? "/" : "",
             sub ? sub : "", name);
    if (access(path, F_OK) == 0) {
        return 1;
    }
    snprintf(tried + t, triedlen - t, "%s%s", t ? ", " : "", path);
    return 0;
}

static int
search_dirs(const char *list, const char *name, char *path, size_t pathlen,
            char *tried, size_t triedlen)
{
    char dir[PATH_MAX];

    while (list != NULL && *list != '\0') {
        const char *colon = strchr(list, ':');
        size_t n = colon ? (size_t) (colon - list) : strlen(list);
        if (n > 0 && n < sizeof(dir)) {
            memcpy(dir, list, n);
            dir[n] = '\0';
            if (try_path(dir, NULL, name, path, pathlen, tried, triedlen)) {
                return 1;
            }
        }
        list = colon ? colon + 1 : NULL;
    }
    return 0;
}

/* NAME.so in plugin_path, NARWHAL_PLUGIN_PATH, the build tree when run
   uninstalled (BUILD/<subdir>/NAME/.libs), then the installed directory. */
static int
search_name(const char *name, const nw_settings *s, const char *subdir,
            const char *installed, char *path, size_t pathlen, char *tried,
            size_t triedlen)
{
    if (search_dirs(s->plugin_path, name, path, pathlen, tried, triedlen)
        || search_dirs(getenv("NARWHAL_PLUGIN_PATH"), name, path, pathlen,
                       tried, triedlen)) {
        return 1;
    }
#ifdef NW_BUILD_TOPDIR
    if (running_uninstalled()) {
        char dir[PATH_MAX], sub[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", NW_BUILD_TOPDIR, subdir);
        snprintf(sub, sizeof(sub), "%s/.libs", name);
        if (try_path(dir, sub, name, path, pathlen, tried, triedlen)) {
            return 1;
        }
    }
#else
    (void) subdir;
#endif
    return try_path(installed, NULL, name, path, pathlen, tried, triedlen);
}

int
nw__plugin_find(const char *spec, const nw_settings *s, char *path,
                size_t pathlen, char *err, size_t errlen)
{
    char tried[1024] = "";
    const char *name;

    if (strchr(spec, '/') != NULL) {
        if (access(spec, F_OK) != 0) {
            snprintf(err, errlen,
                     "worker plugin %s: %s; give the path of a narwhal "
                     "worker plugin (.so)",
                     spec, strerror(errno));
            return NW_ERROR;
        }
        snprintf(path, pathlen, "%s", spec);
        return NW_OK;
    }
    name = nw__worker_class_alias(spec, err, errlen);
    if (name == NULL) {
        return NW_ERROR;
    }
    if (strcmp(name, "sync") == 0 && s != NULL && s->threads > 1) {
        name = "gthread"; /* as Gunicorn: sync with threads is gthread */
    }
    if (!name_is_plain(name)) {
        snprintf(err, errlen,
                 "worker class '%s' not found: a class is a plugin name "
                 "(sync, ev, gthread, tornado-compat) or a path to a .so",
                 spec);
        return NW_ERROR;
    }
    if (search_name(name, s, "plugins", NW_PLUGINDIR, path, pathlen, tried,
                    sizeof(tried))) {
        return NW_OK;
    }
    snprintf(err, errlen,
             "worker class '%s' not found (looked for %s); use -k sync, a "
             "path to a plugin .so, or add its directory with "
             "--plugin-path",
             spec, tried);
    return NW_ERROR;
}

int
nw__hook_plugin_find(const char *spec, const nw_settings *s, char *path,
                     size_t pathlen, char *err, size_t errlen)
{
    char tried[1024] = "";

    if (strchr(spec, '/') != NULL) {
        if (access(spec, F_OK) != 0) {
            snprintf(err, errlen,
                     "hook plugin %s: %s; give the path of a narwhal hook "
                     "plugin (.so)",
                     spec, strerror(errno));
            return NW_ERROR;
        }
        snprintf(path, pathlen, "%s", spec);
        return NW_OK;
    }
    if (!name_is_plain(spec)) {
        snprintf(err, errlen,
                 "hook plugin '%s' not found: give a plugin name (sdnotify, "
                 "statsd) or a path to a .so",
                 spec);
        return NW_ERROR;
    }
    if (search_name(spec, s, "hooks", NW_HOOKDIR, path, pathlen, tried,
                    sizeof(tried))) {
        return NW_OK;
    }
    snprintf(err, errlen,
             "hook plugin '%s' not found (looked for %s); give a path to "
             "the .so, or add its directory with --plugin-path",
             spec, tried);
    return NW_ERROR;
}

#define FP_FIELD(f, what)                                                     \
    if (got->f != want.f) {                                                   \
        snprintf(err, errlen,                                                 \
                 "%s %s: build fingerprint %s is %u, this narwhal's is %u "   \
                 "(%s); rebuild the plugin against the headers narwhal was "  \
                 "built with (pkg-config --cflags narwhal)",                  \
                 kind, path, #f, (unsigned) got->f, (unsigned) want.f, what); \
        return NW_ERROR;                                                      \
    }

static int
check_fingerprint(const nw_build_fingerprint *got, const char *kind,
                  const char *path, char *err, size_t errlen)
{
    static const nw_build_fingerprint want = NW_BUILD_FINGERPRINT;
    char what[160];

    FP_FIELD(size, "another narwhal's fingerprint layout")
    snprintf(what, sizeof(what),
             "plugin built for Python %u.%u, narwhal embeds Python %u.%u",
             (unsigned) got->py_major, (unsigned) got->py_minor,
             (unsigned) want.py_major, (unsigned) want.py_minor);
    FP_FIELD(py_major, what)
    FP_FIELD(py_minor, what)
    FP_FIELD(py_debug, "debug and release Pythons differ in layout")
    FP_FIELD(ptr_size, "built for another architecture")
    FP_FIELD(off_t_size, "built with other large-file settings")
    FP_FIELD(ev_major, "built against another libev")
    /* Compare the whole struct too, so a field added later is covered. */
    if (memcmp(got, &want, sizeof(want)) != 0) {
        snprintf(err, errlen,
                 "%s %s: build fingerprint differs from this narwhal's; "
                 "rebuild the plugin against its headers",
                 kind, path);
        return NW_ERROR;
    }
    return NW_OK;
}

int
nw__worker_class_check(const nw_worker_class *c, const char *path, char *err,
                       size_t errlen)
{
    const size_t need = offsetof(nw_worker_class, reserved);

    if (c->magic != NW_WORKER_MAGIC) {
        snprintf(err, errlen,
                 "worker plugin %s: magic is 0x%08x, expected 0x%08x: not a "
                 "narwhal worker plugin, or a corrupt one; rebuild it "
                 "against narwhal's headers (pkg-config --cflags narwhal)",
                 path, (unsigned) c->magic, NW_WORKER_MAGIC);
        return NW_ERROR;
    }
    if (c->abi_major != NW_ABI_MAJOR) {
        snprintf(err, errlen,
                 "worker plugin %s: abi_major is %u, this narwhal (%s) has "
                 "%u; rebuild the plugin against this narwhal's headers "
                 "(pkg-config --cflags narwhal)",
                 path, (unsigned) c->abi_major, NW_VERSION, NW_ABI_MAJOR);
        return NW_ERROR;
    }
    if (c->size < need) {
        snprintf(err, errlen,
                 "worker plugin %s: size is %u bytes, this narwhal needs at "
                 "least %zu: the descriptor is truncated; rebuild the plugin "
                 "against this narwhal's headers",
                 path, (unsigned) c->size, need);
        return NW_ERROR;
    }
    if (c->abi_minor > NW_ABI_MINOR) {
        snprintf(err, errlen,
                 "worker plugin %s: abi_minor is %u, this narwhal (%s) "
                 "provides %u; upgrade narwhal, or rebuild the plugin "
                 "against this narwhal's headers",
                 path, (unsigned) c->abi_minor, NW_VERSION, NW_ABI_MINOR);
        return NW_ERROR;
    }
    if (check_fingerprint(&c->build, "worker plugin", path, err, errlen)
        != NW_OK) {
        return NW_ERROR;
    }
    if (c->name == NULL || c->name[0] == '\0') {
        snprintf(err, errlen,
                 "worker plugin %s: name is empty; set .name in its "
                 "nw_worker_class",
                 path);
        return NW_ERROR;
    }
    if (c->run == NULL) {
        snprintf(err, errlen,
                 "worker plugin %s: run is NULL; a worker class must set "
                 ".run",
                 path);
        return NW_ERROR;
    }
    if (c->instance_size < sizeof(nw_worker)) {
        snprintf(err, errlen,
                 "worker plugin %s: instance_size is %zu, at least "
                 "sizeof(nw_worker) = %zu is needed; set .instance_size to "
                 "the size of a struct that begins with nw_worker",
                 path, c->instance_size, sizeof(nw_worker));
        return NW_ERROR;
    }
    return NW_OK;
}

int
nw__plugin_load(const char *path, const nw_api *api,
                const nw_worker_class **out, char *err, size_t errlen)
{
    void *handle;
    nw_worker_entry_fn entry;
    const nw_worker_class *c;
    const char *why;

    /* RTLD_NOW: an unresolved symbol fails here, in the arbiter, before
       any fork.  RTLD_LOCAL: plugins cannot interpose on each other. */
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        why = dlerror();
        snprintf(err, errlen,
                 "worker plugin %s cannot be loaded: %s; check that it is a "
                 "shared object built for this system",
                 path, why ? why : "unknown error");
        return NW_ERROR;
    }
    *(void **) &entry = dlsym(handle, NW_WORKER_ENTRY_SYMBOL);
    if (entry == NULL) {
        snprintf(err, errlen,
                 "worker plugin %s: no %s function: not a narwhal worker "
                 "plugin; it must export %s (see doc/plugins.md)",
                 path, NW_WORKER_ENTRY_SYMBOL, NW_WORKER_ENTRY_SYMBOL);
        dlclose(handle);
        return NW_ERROR;
    }
    c = entry(api);
    if (c == NULL) {
        snprintf(err, errlen,
                 "worker plugin %s: %s returned NULL: the plugin refused to "
                 "load in this narwhal (%s, ABI %d.%d); see its messages "
                 "above",
                 path, NW_WORKER_ENTRY_SYMBOL, NW_VERSION, NW_ABI_MAJOR,
                 NW_ABI_MINOR);
        dlclose(handle);
        return NW_ERROR;
    }
    if (nw__worker_class_check(c, path, err, errlen) != NW_OK) {
        dlclose(handle);
        return NW_ERROR;
    }
    /* The handle stays open for the life of the process: workers never
       unload their class. */
    *out = c;
    return NW_OK;
}

int
nw__hook_plugin_check(const nw_hook_plugin *p, const char *path, char *err,
                      size_t errlen)
{
    const size_t need = offsetof(nw_hook_plugin, reserved);

    if (p->magic != NW_HOOK_MAGIC) {
        snprintf(err, errlen,
                 "hook plugin %s: magic is 0x%08x, expected 0x%08x: not a "
                 "narwhal hook plugin, or a corrupt one; rebuild it against "
                 "narwhal's headers (pkg-config --cflags narwhal)",
                 path, (unsigned) p->magic, NW_HOOK_MAGIC);
        return NW_ERROR;
    }
    if (p->abi_major != NW_ABI_MAJOR) {
        snprintf(err, errlen,
                 "hook plugin %s: abi_major is %u, this narwhal (%s) has %u; "
                 "rebuild the plugin against this narwhal's headers "
                 "(pkg-config --cflags narwhal)",
                 path, (unsigned) p->abi_major, NW_VERSION, NW_ABI_MAJOR);
        return NW_ERROR;
    }
    if (p->size < need) {
        snprintf(err, errlen,
                 "hook plugin %s: size is %u bytes, this narwhal needs at "
                 "least %zu: the descriptor is truncated; rebuild the plugin "
                 "against this narwhal's headers",
                 path, (unsigned) p->size, need);
        return NW_ERROR;
    }
    if (p->abi_minor > NW_ABI_MINOR) {
        snprintf(err, errlen,
                 "hook plugin %s: abi_minor is %u, this narwhal (%s) "
                 "provides %u; upgrade narwhal, or rebuild the plugin "
                 "against this narwhal's headers",
                 path, (unsigned) p->abi_minor, NW_VERSION, NW_ABI_MINOR);
        return NW_ERROR;
    }
    if (check_fingerprint(&p->build, "hook plugin", path, err, errlen)
        != NW_OK) {
        return NW_ERROR;
    }
    if (p->name == NULL || p->name[0] == '\0') {
        snprintf(err, errlen,
                 "hook plugin %s: name is empty; give one in "
                 "NW_HOOK_PLUGIN(name, summary)",
                 path);
        return NW_ERROR;
    }
    return NW_OK;
}

int
nw__hook_plugin_open(const char *path, const nw_hook_plugin **info,
                     nw_hook_entry_fn *entry, char *err, size_t errlen)
{
    void *handle;
    nw_hook_info_fn info_fn;
    const char *why;

    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        why = dlerror();
        snprintf(err, errlen,
                 "hook plugin %s cannot be loaded: %s; check that it is a "
                 "shared object built for this system",
                 path, why ? why : "unknown error");
        return NW_ERROR;
    }
    *(void **) &info_fn = dlsym(handle, NW_HOOK_INFO_SYMBOL);
    *(void **) entry = dlsym(handle, NW_HOOK_ENTRY_SYMBOL);
    if (info_fn == NULL || *entry == NULL) {
        const char *missing = info_fn == NULL ? NW_HOOK_INFO_SYMBOL
                                              : NW_HOOK_ENTRY_SYMBOL;
        snprintf(err, errlen,
                 "hook plugin %s: no %s function: not a narwhal hook plugin; "
                 "it must use NW_HOOK_PLUGIN(...) and export %s (see "
                 "doc/hooks.md)",
                 path, missing, NW_HOOK_ENTRY_SYMBOL);
        dlclose(handle);
        return NW_ERROR;
    }
    *info = info_fn();
    if (*info == NULL) {
        snprintf(err, errlen,
                 "hook plugin %s: %s returned NULL; it must return its "
                 "NW_HOOK_PLUGIN descriptor",
                 path, NW_HOOK_INFO_SYMBOL);
        dlclose(handle);
        return NW_ERROR;
    }
    if (nw__hook_plugin_check(*info, path, err, errlen) != NW_OK) {
        dlclose(handle);
        return NW_ERROR;
    }
    /* kept open for the life of the process, as worker classes */
    return NW_OK;
}
