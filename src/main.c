#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <narwhal/version.h>

#include "accesslog/accesslog.h"
#include "plugin/api.h"
#include "master/arbiter.h"
#include "config/config_files.h"
#include "conn/conn.h"
#include "base/exitcodes.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "plugin/plugin.h"
#include "os/privileges.h"
#include "os/proctitle.h"
#include "python/python.h"
#include "python/python_arbiter.h"
#include "os/sockets.h"

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
    nw__logs_python_off();
    /* the settings hold Python objects (hooks): dropped first */
    nw__settings_free(s);
    free(s);
    nw__python_finalize_arbiter();
    return code;
}

/* raw_env (-e KEY=VALUE): set here, so the workers and the app see it. */
static void
apply_raw_env(const nw_settings *s)
{
    for (size_t i = 0; i < s->raw_env.count; i++) {
        char *kv = nw__xstrdup(s->raw_env.items[i]);
        char *eq = strchr(kv, '=');
        if (eq != NULL) {
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
        free(kv);
    }
}

/* The old master's pid when this process is a re-executed one (USR2). */
static pid_t
old_master_pid(void)
{
    const char *v = getenv("NARWHAL_PID");
    long pid;

    if (v == NULL) {
        v = getenv("GUNICORN_PID");
    }
    pid = v ? strtol(v, NULL, 10) : 0;
    return pid > 0 && pid <= INT_MAX ? (pid_t) pid : 0;
}

static int
create_pidfile(nw_arbiter *a, const nw_settings *s)
{
    char path[4096], err[1024];

    if (s->pidfile == NULL) {
        return NW_OK;
    }
    snprintf(path, sizeof(path), "%s%s", s->pidfile,
             a->master_pid != 0 ? ".2" : "");
    if (nw__pidfile_create(&a->pidfile, path, getpid(), err, sizeof(err))
        != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return NW_ERROR;
    }
    return NW_OK;
}

int
main(int argc, char **argv)
{
    nw_settings *settings = nw__xcalloc(1, sizeof(*settings));
    nw_arbiter arbiter;
    const nw_worker_class *cls;
    char cwd[PATH_MAX], err[512];
    char **args;
    int code;

    /* argv becomes the process title; the copy is what we re-execute */
    args = nw__proctitle_init(argc, argv);
    nw__settings_init(settings);
    code = nw__config_load(settings, argc, args, stdout, stderr);
    if (code >= 0) {
        return finish(settings, code);
    }
    nw__log_set_level(nw__log_level_from_name(settings->loglevel));
    if (settings->app_module == NULL) {
        fprintf(stderr, "Error: No application module specified; give one "
                        "as MODULE:VARIABLE, e.g. narwhal myapp:app (or set "
                        "wsgi_app in a config file)\n");
        return finish(settings, NW_EXIT_CONFIG);
    }
    nw__config_warn_unwired(settings);
    if (settings->print_config) {
        nw__settings_print(settings, stdout);
        fflush(stdout);
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        cwd[0] = '\0';
    }
    if (chdir(settings->chdir) != 0) {
        fprintf(stderr, "Error: cannot change to directory '%s' (chdir): "
                        "%s\n",
                settings->chdir, strerror(errno));
        return finish(settings, NW_EXIT_CONFIG);
    }
    if (load_worker_class(settings, &cls) != NW_OK) {
        return finish(settings, NW_EXIT_CONFIG);
    }
    if (settings->check_config || settings->print_config) {
        /* Gunicorn's --check-config: the app is imported here, in the
           arbiter's interpreter, and the process ends */
        code = nw__config_check_app(settings, argc, args) == NW_OK
                   ? NW_EXIT_OK
                   : NW_EXIT_CONFIG;
        return finish(settings, code);
    }
    if (settings->bind.count == 0) {
        fprintf(stderr, "Error: no address to bind: bind is empty; give "
                        "one with -b HOST:PORT\n");
        return finish(settings, NW_EXIT_CONFIG);
    }

    {
        /* the HTTP settings a worker would refuse, refused here once */
        nw_conn_config cc;
        if (nw__conn_config_init(&cc, settings, err, sizeof(err)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: %s", err);
            return finish(settings, NW_EXIT_CONFIG);
        }
        nw__conn_config_free(&cc);
    }
    if (nw__access_check(settings, err, sizeof(err)) != NW_OK
        || nw__hooks_load(settings, err, sizeof(err)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return finish(settings, NW_EXIT_CONFIG);
    }
    nw__hooks_activate(settings);

    memset(&arbiter, 0, sizeof(arbiter));
    arbiter.gen.settings = settings;
    arbiter.gen.cls = cls;
    arbiter.argc = argc;
    arbiter.argv = args;
    arbiter.exec_path = (char *) nw__exec_path(args[0]);
    arbiter.start_cwd = cwd[0] ? nw__xstrdup(cwd) : NULL;
    arbiter.master_pid = old_master_pid();
    arbiter.master_name = arbiter.master_pid ? "Master.2" : "Master";

    apply_raw_env(settings);
    /* a re-executed master stays where the old one put it */
    if (settings->daemon && arbiter.master_pid == 0
        && nw__daemonize(settings->enable_stdio_inheritance, err,
                         sizeof(err))
               != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return finish(settings, NW_EXIT_CONFIG);
    }
    if ((settings->logconfig != NULL || settings->logconfig_json != NULL
         || settings->logconfig_dict.obj != NULL)
        && nw__python_start_arbiter(settings, argc, args) != NW_OK) {
        return finish(settings, NW_EXIT_CONFIG);
    }
    if (nw__logs_configure(settings, 0, err, sizeof(err)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "Error: %s", err);
        return finish(settings, NW_EXIT_CONFIG);
    }
    if (create_pidfile(&arbiter, settings) != NW_OK) {
        return finish(settings, NW_EXIT_CONFIG);
    }
    nw__arbiter_attach(&arbiter);
    /* Gunicorn sets num_workers (nworkers_changed, old None) when the
       Arbiter is made, then runs on_starting before its sockets */
    nw__arbiter_init_num_workers(&arbiter);
    {
        nw_hook_ctx ctx;
        nw__arbiter_hook_ctx(&arbiter, &ctx, NULL);
        nw__hooks_run(NW_HOOK_ON_STARTING, &ctx);
    }
    nw__log(NW_LOG_INFO, "Starting narwhal %s", NW_VERSION);
    if (nw__listen_open(&arbiter, settings, &arbiter.gen.listen, NULL)
        != NW_OK) {
        nw__pidfile_unlink(&arbiter.pidfile);
        return finish(settings, NW_EXIT_CONFIG);
    }
    nw__log(NW_LOG_INFO, "Using worker: %s", cls->name);
    nw__proctitle_set("narwhal: master [%s]", nw__proc_name(settings));
    if (settings->preload_app) {
        /* imported once, here; the workers inherit it */
        code = nw__python_preload_app(settings, argc, args);
        if (code != NW_OK) {
            nw__log(NW_LOG_INFO, "Shutting down: %s", arbiter.master_name);
            nw__log(NW_LOG_INFO, "Reason: App failed to load.");
            nw__listen_close(&arbiter.gen.listen, NULL, 1);
            nw__pidfile_unlink(&arbiter.pidfile);
            return finish(settings, code);
        }
    }
    if (nw__scoreboard_create(&arbiter.sb, NW_SCOREBOARD_SLOTS) != NW_OK) {
        nw__log(NW_LOG_CRITICAL, "cannot map the scoreboard: %s",
                strerror(errno));
        return finish(settings, NW_EXIT_CONFIG);
    }
    code = nw__arbiter_run(&arbiter);
    nw__pidfile_unlink(&arbiter.pidfile);
    {
        nw_hook_ctx ctx;
        nw__arbiter_hook_ctx(&arbiter, &ctx, NULL);
        nw__hooks_run(NW_HOOK_ON_EXIT, &ctx);
    }
    nw__scoreboard_destroy(&arbiter.sb);
    free(arbiter.children);
    free(arbiter.exec_path);
    free(arbiter.start_cwd);
    if (arbiter.next.settings != NULL) {
        nw__settings_free(arbiter.next.settings);
        free(arbiter.next.settings);
    }
    return finish(arbiter.gen.settings, code);
}
