/* Worker-class plugins: finding, loading and checking them. */
#ifndef NW_PLUGIN_H
#define NW_PLUGIN_H

#include <stddef.h>

#include <narwhal/hook.h>
#include <narwhal/worker.h>

#include "config/settings.h"

/* Map Gunicorn's spellings to a plugin name: "tornado" and
   "gunicorn.workers.gtornado.TornadoWorker" -> "tornado-compat".  Returns
   the name, or NULL and a sentence in err for a class narwhal refuses
   (gevent, eventlet, asgi). */
const char *nw__worker_class_alias(const char *spec, char *err,
                                   size_t errlen);

/* Find the .so for -k spec: a path if it contains '/', else a name searched
   in plugin_path, NARWHAL_PLUGIN_PATH, the build tree when run uninstalled,
   then the installed plugin directory. */
int nw__plugin_find(const char *spec, const nw_settings *s, char *path,
                    size_t pathlen, char *err, size_t errlen);

/* Every check the loader makes on a descriptor: magic, ABI major and minor,
   size, build fingerprint, required fields.  Pure; err names the field,
   both values and the fix. */
int nw__worker_class_check(const nw_worker_class *c, const char *path,
                           char *err, size_t errlen);

/* dlopen(RTLD_NOW | RTLD_LOCAL), call the entry, check the descriptor. */
int nw__plugin_load(const char *path, const nw_api *api,
                    const nw_worker_class **out, char *err, size_t errlen);

/* A hook plugin's .so for --hook-plugin spec: a path if it contains '/',
   else NAME.so searched like worker plugins (plugin_path,
   NARWHAL_PLUGIN_PATH, the build tree's hooks/, the installed hooks
   directory). */
int nw__hook_plugin_find(const char *spec, const nw_settings *s, char *path,
                         size_t pathlen, char *err, size_t errlen);

/* The hook plugin descriptor checks (as nw__worker_class_check). */
int nw__hook_plugin_check(const nw_hook_plugin *p, const char *path,
                          char *err, size_t errlen);

/* dlopen(RTLD_NOW | RTLD_LOCAL), find both functions, call
   narwhal_hook_info and check what it returns.  The entry is not
   called. */
int nw__hook_plugin_open(const char *path, const nw_hook_plugin **info,
                         nw_hook_entry_fn *entry, char *err, size_t errlen);

#endif
