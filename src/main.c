#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <narwhal/version.h>

#include "api.h"
#include "arbiter.h"
#include "config_files.h"
#include "exitcodes.h"
#include "log.h"
#include "memory.h"
#include "plugin.h"
#include "python_arbiter.h"
#include "sockets.h"

static int
open_listeners(nw_arbiter *a)
{
    nw_settings *s = a->settings;
    char err[512];

    a->listeners = nw__xcalloc(s->bind.count ? s->bind.count : 1,
                               sizeof(nw_listener));
    for (size_t i = 0; i < s->bind.count; i++) {
        nw_bind_addr addr;
        if (nw__bind_parse(s->bind.items[i], &addr, err, sizeof(err))
            != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: invalid bind address: %s", err);
            return NW_ERROR;
        }
        if (nw__listener_open(&addr, (int) s->backlog, 5, 1000,
                              &a->listeners[i], err, sizeof(err))
            != NW_OK) {
            nw__log(NW_LOG_ERROR, "%s", err);
            return NW_ERROR;
        }
        a->nlisteners++;
        nw__log(NW_LOG_INFO, "Listening at: %s (%ld)", a->listeners[i].url,
                (long) getpid());
    }
    return NW_OK;
}

/* The worker class, loaded and checked before anything starts, so a wrong
   -k fails here, never in a worker. */
static int
load_worker_class(nw_settings *s, const nw_worker_class **cls)
{
    char path[4096], err[1024];

    if (nw__plugin_find(s->worker_class, s, path, sizeof(path), err,
                        sizeof(err))
            != NW_OK
        || nw__plugin_load(path, &nw__api, cls, err, sizeof(err)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return NW_ERROR;
    }
    if ((*cls)->check_config != NULL) {
        err[0] = '\0';
        if ((*cls)->check_config(s, err, sizeof(err)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: worker class %s: %s", (*cls)->name,
                    err[0] ? err : "the settings are not supported");
            return NW_ERROR;
        }
    }
    return NW_OK;
}

static int
finish(nw_settings *s, int code)
{
    /* the settings hold Python objects (hooks): dropped first */
    nw__settings_free(s);
    nw__python_finalize_arbiter();
    return code;
}

int
main(int argc, char **argv)
{
    nw_settings settings;
    nw_arbiter arbiter;
    const nw_worker_class *cls;
    int code;

    nw__settings_init(&settings);
    code = nw__config_load(&settings, argc, argv, stdout, stderr);
    if (code >= 0) {
        return finish(&settings, code);
    }
    nw__log_set_level(nw__log_level_from_name(settings.loglevel));
    if (settings.app_module == NULL) {
        fprintf(stderr, "Error: No application module specified; give one "
                        "as MODULE:VARIABLE, e.g. narwhal myapp:app (or set "
                        "wsgi_app in a config file)\n");
        return finish(&settings, NW_EXIT_CONFIG);
    }
    nw__config_warn_unwired(&settings);
    if (settings.print_config) {
        nw__settings_print(&settings, stdout);
        fflush(stdout);
    }
    if (chdir(settings.chdir) != 0) {
        fprintf(stderr, "Error: cannot change to directory '%s' (chdir): "
                        "%s\n",
                settings.chdir, strerror(errno));
        return finish(&settings, NW_EXIT_CONFIG);
    }
    if (load_worker_class(&settings, &cls) != NW_OK) {
        return finish(&settings, NW_EXIT_CONFIG);
    }
    if (settings.check_config || settings.print_config) {
        /* Gunicorn's --check-config: the app is imported here, in the
           arbiter's interpreter, and the process ends */
        code = nw__config_check_app(&settings, argc, argv) == NW_OK
                   ? NW_EXIT_OK
                   : NW_EXIT_CONFIG;
        return finish(&settings, code);
    }
    if (settings.bind.count == 0) {
        fprintf(stderr, "Error: no address to bind: bind is empty; give "
                        "one with -b HOST:PORT\n");
        return finish(&settings, NW_EXIT_CONFIG);
    }

    memset(&arbiter, 0, sizeof(arbiter));
    arbiter.settings = &settings;
    arbiter.cls = cls;
    arbiter.argc = argc;
    arbiter.argv = argv;
    nw__log(NW_LOG_INFO, "Starting narwhal %s", NW_VERSION);
    if (open_listeners(&arbiter) != NW_OK) {
        return finish(&settings, NW_EXIT_CONFIG);
    }
    nw__log(NW_LOG_INFO, "Using worker: %s", cls->name);
    if (nw__scoreboard_create(&arbiter.sb, NW_SCOREBOARD_SLOTS) != NW_OK) {
        nw__log(NW_LOG_CRITICAL, "cannot map the scoreboard: %s",
                strerror(errno));
        return finish(&settings, NW_EXIT_CONFIG);
    }
    code = nw__arbiter_run(&arbiter);
    nw__scoreboard_destroy(&arbiter.sb);
    free(arbiter.children);
    free(arbiter.listeners);
    return finish(&settings, code);
}
