/* The order in which settings are read (Gunicorn's app/base.py). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <narwhal/version.h>

#include "config/cli.h"
#include "config/config_files.h"
#include "base/exitcodes.h"
#include "log/log.h"
#include "base/memory.h"

#define CONTINUE (-1)

static int
env_args(nw_settings *s, const char *var, enum nw_setting_source src,
         FILE *out, FILE *errout)
{
    const char *text = getenv(var);
    char err[256];
    char **argv;
    int argc, rc = CONTINUE;

    if (text == NULL) {
        return CONTINUE;
    }
    if (nw__shlex_split(text, &argc, &argv, err, sizeof(err)) != NW_OK) {
        fprintf(errout, "narwhal: error: %s: %s\n", var, err);
        return NW_EXIT_USAGE;
    }
    switch (nw__cli_parse(s, argc, argv, src, var, out, errout)) {
    case NW_CLI_EXIT_OK:
        rc = NW_EXIT_OK;
        break;
    case NW_CLI_USAGE:
        rc = NW_EXIT_USAGE;
        break;
    case NW_CLI_RUN:
        break;
    }
    nw__argv_free(argc, argv);
    return rc;
}

static int
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static int
load_file(nw_settings *s, const char *location, int explicit, int argc,
          char **argv, FILE *errout)
{
    const char *path = location;

    if (strncmp(location, "python:", 7) == 0) {
        return nw__config_py_load(s, location, argc, argv, errout);
    }
    if (strncmp(location, "file:", 5) == 0) {
        path = location + 5;
    }
    if (access(path, F_OK) != 0) {
        /* Gunicorn: "'%s' doesn't exist" */
        fprintf(errout, "Error: config file '%s' does not exist%s\n", path,
                explicit ? " (-c/--config)" : "");
        return NW_ERROR;
    }
    if (has_suffix(path, ".ini") || has_suffix(path, ".cfg")) {
        return nw__config_ini_load(s, path, errout);
    }
    return nw__config_py_load(s, location, argc, argv, errout);
}

int
nw__config_load(nw_settings *s, int argc, char **argv, FILE *out,
                FILE *errout)
{
    const nw_setting_def *config = nw__setting_find("config");
    char *location = NULL, err[256];
    int explicit, rc;

    switch (nw__cli_parse(s, argc, argv, NW_SRC_CLI, NULL, out, errout)) {
    case NW_CLI_EXIT_OK:
        return NW_EXIT_OK;
    case NW_CLI_USAGE:
        return NW_EXIT_USAGE;
    case NW_CLI_RUN:
        break;
    }
    rc = env_args(s, "GUNICORN_CMD_ARGS", NW_SRC_ENV_GUNICORN, out, errout);
    if (rc == CONTINUE) {
        rc = env_args(s, "NARWHAL_CMD_ARGS", NW_SRC_ENV, out, errout);
    }
    if (rc != CONTINUE) {
        return rc;
    }
    if (s->env_error[0] != '\0') {
        fprintf(errout, "Error: %s\n", s->env_error);
        return NW_EXIT_CONFIG;
    }

    /* -c from the command line, else from the environment variables (the
       higher source has already won), else the default files */
    explicit = s->source[NW_S_config] != NW_SRC_DEFAULT;
    if (explicit) {
        location = nw__xstrdup(s->config);
    } else if (access("narwhal.conf.py", F_OK) == 0
               || access("gunicorn.conf.py", F_OK) == 0) {
        location = nw__xstrdup(access("narwhal.conf.py", F_OK) == 0
                                   ? "./narwhal.conf.py"
                                   : "./gunicorn.conf.py");
        nw__setting_set(s, config, location, NW_SRC_DEFAULT, NULL, err,
                        sizeof(err));
    }
    if (location != NULL) {
        rc = load_file(s, location, explicit, argc, argv, errout);
        free(location);
        if (rc != NW_OK) {
            return NW_EXIT_CONFIG;
        }
    }
    if (nw__config_py_resolve(s, argc, argv, errout) != NW_OK) {
        return NW_EXIT_CONFIG;
    }

    if (s->app_module == NULL && s->wsgi_app != NULL) {
        s->app_module = nw__xstrdup(s->wsgi_app);
    }
    if (s->app_module != NULL
        && s->source[NW_S_default_proc_name] == NW_SRC_DEFAULT) {
        /* Gunicorn names processes after the app; still a default */
        nw__setting_set(s, &nw__setting_defs[NW_S_default_proc_name],
                        s->app_module, NW_SRC_DEFAULT, NULL, err,
                        sizeof(err));
    }
    return CONTINUE;
}

void
nw__config_warn_unwired(const nw_settings *s)
{
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];

        if (!(d->flags & (NW_F_PENDING | NW_F_NOOP))
            || nw__setting_is_default(s, d)) {
            continue;
        }
        if (d->flags & NW_F_NOOP) {
            nw__log(NW_LOG_WARNING, "%s (from %s) has no effect: %s", d->name,
                    s->origin[i] ? s->origin[i] : "?", d->note);
        } else {
            nw__log(NW_LOG_WARNING,
                    "%s (from %s) is not implemented in narwhal %s yet; it "
                    "has no effect",
                    d->name, s->origin[i] ? s->origin[i] : "?", NW_VERSION);
        }
    }
}
