/* USR2: re-executing the binary with the listening sockets inherited, so
   an upgrade drops no connection (Gunicorn's reexec and its new master's
   side: GUNICORN_FD / LISTEN_FDS, the ".2" pid file, promotion). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/arbiter.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "os/proctitle.h"
#include "python/python_arbiter.h"

extern char **environ;

#define SD_LISTEN_FDS_START 3

const char *
nw__exec_path(const char *argv0)
{
    char buf[PATH_MAX];
    const char *path;

    /* The path, not /proc/self/exe: after an upgrade the file at the path
       is the new binary; the running one may be deleted. */
    if (strchr(argv0, '/') != NULL) {
        return realpath(argv0, buf) ? nw__xstrdup(buf) : nw__xstrdup(argv0);
    }
    path = getenv("PATH");
    while (path != NULL && *path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t) (colon - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int) (n ? n : 1),
                 n ? path : ".", argv0);
        if (access(buf, X_OK) == 0) {
            char real[PATH_MAX];
            return nw__xstrdup(realpath(buf, real) ? real : buf);
        }
        path = colon ? colon + 1 : NULL;
    }
    return nw__xstrdup(argv0);
}

static int
env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static char *
env_entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *e = nw__xmalloc(n);
    snprintf(e, n, "%s=%s", name, value);
    return e;
}

/* In the forked child: never returns. */
static void __attribute__((noreturn))
exec_new_master(nw_arbiter *a, pid_t old_master)
{
    static const char *const drop[] = {"NARWHAL_FD", "GUNICORN_FD",
                                       "NARWHAL_PID", "GUNICORN_PID",
                                       "LISTEN_PID", "LISTEN_FDS",
                                       "LISTEN_FDNAMES"};
    const nw_listen_set *ls = &a->gen.listen;
    size_t n = 0, k = 0;
    char **env;
    char value[4096], num[32];
    size_t used = 0;

    while (environ[n] != NULL) {
        n++;
    }
    env = nw__xcalloc(n + 4, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t j = 0; j < sizeof(drop) / sizeof(drop[0]); j++) {
            skip |= env_is(environ[i], drop[j]);
        }
        if (!skip) {
            env[k++] = environ[i];
        }
    }
    snprintf(num, sizeof(num), "%ld", (long) old_master);
    env[k++] = env_entry("NARWHAL_PID", num);
    if (a->systemd) {
        /* systemd's convention: the sockets at 3, 4, ... for this pid */
        for (unsigned i = 0; i < ls->count; i++) {
            int target = SD_LISTEN_FDS_START + (int) i;
            if (ls->items[i].fd != target) {
                dup2(ls->items[i].fd, target);
            }
            fcntl(target, F_SETFD, 0);
        }
        snprintf(num, sizeof(num), "%ld", (long) getpid());
        env[k++] = env_entry("LISTEN_PID", num);
        snprintf(num, sizeof(num), "%u", ls->count);
        env[k++] = env_entry("LISTEN_FDS", num);
    } else {
        value[0] = '\0';
        for (unsigned i = 0; i < ls->count; i++) {
            fcntl(ls->items[i].fd, F_SETFD, 0); /* inherited by the exec */
            used += (size_t) snprintf(value + used, sizeof(value) - used,
                                      "%s%d", i ? "," : "",
                                      ls->items[i].fd);
            if (used >= sizeof(value)) {
                used = sizeof(value) - 1;
            }
        }
        env[k++] = env_entry("NARWHAL_FD", value);
    }
    env[k] = NULL;
    if (a->start_cwd != NULL && chdir(a->start_cwd) != 0) {
        nw__log(NW_LOG_WARNING, "cannot return to %s: %s", a->start_cwd,
                strerror(errno));
    }
    {
        /* Gunicorn's pre_exec, in the child about to become the master */
        nw_hook_ctx ctx;
        nw__arbiter_hook_ctx(a, &ctx, NULL);
        nw__hooks_run(NW_HOOK_PRE_EXEC, &ctx);
    }
    execve(a->exec_path, a->argv, env);
    nw__log(NW_LOG_ERROR, "cannot re-execute %s: %s", a->exec_path,
            strerror(errno));
    _exit(1);
}

pid_t
nw__reexec(nw_arbiter *a)
{
    pid_t master = getpid();
    pid_t pid;

    nw__python_before_fork();
    pid = fork();
    if (pid == 0) {
        nw__python_after_fork_child();
        exec_new_master(a, master);
    }
    nw__python_after_fork_parent();
    if (pid < 0) {
        nw__log(NW_LOG_ERROR, "cannot fork to re-execute: %s",
                strerror(errno));
        return 0;
    }
    nw__log(NW_LOG_INFO, "Re-executing %s as a new master (pid:%ld)",
            a->exec_path, (long) pid);
    return pid;
}

static int
parse_fds(const char *list, int **fds, unsigned *n)
{
    const char *p = list;

    while (*p) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0 || fd > INT_MAX || (*end && *end != ',')) {
            nw__log(NW_LOG_ERROR,
                    "Error: inherited socket list '%s' is not a comma-"
                    "separated list of file descriptors",
                    list);
            return NW_ERROR;
        }
        *fds = nw__xrealloc(*fds, (*n + 1) * sizeof(int));
        (*fds)[(*n)++] = (int) fd;
        p = *end ? end + 1 : end;
    }
    return NW_OK;
}

int
nw__inherited_fds(nw_arbiter *a, int **fds, unsigned *n)
{
    const char *listen_pid = getenv("LISTEN_PID");
    const char *listen_fds = getenv("LISTEN_FDS");
    const char *list = getenv("NARWHAL_FD");

    *fds = NULL;
    *n = 0;
    if (listen_pid != NULL && listen_fds != NULL
        && strtol(listen_pid, NULL, 10) == (long) getpid()) {
        long count = strtol(listen_fds, NULL, 10);
        for (long i = 0; i < count && i < 1024; i++) {
            *fds = nw__xrealloc(*fds, (*n + 1) * sizeof(int));
            (*fds)[(*n)++] = SD_LISTEN_FDS_START + (int) i;
        }
        a->systemd = 1;
        /* sd_listen_fds(1): they are ours, not our children's */
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return NW_OK;
    }
    if (list == NULL) {
        list = getenv("GUNICORN_FD");
    }
    if (list == NULL) {
        return NW_OK;
    }
    if (parse_fds(list, fds, n) != NW_OK) {
        return NW_ERROR;
    }
    unsetenv("NARWHAL_FD");
    unsetenv("GUNICORN_FD");
    return NW_OK;
}

void
nw__maybe_promote(nw_arbiter *a)
{
    char err[512];

    if (a->master_pid == 0 || getppid() == a->master_pid) {
        return;
    }
    nw__log(NW_LOG_INFO, "Master has been promoted.");
    a->master_pid = 0;
    a->master_name = "Master";
    unsetenv("NARWHAL_PID");
    unsetenv("GUNICORN_PID");
    if (a->pidfile.path != NULL && a->gen.settings->pidfile != NULL
        && nw__pidfile_rename(&a->pidfile, a->gen.settings->pidfile, err,
                              sizeof(err))
               != NW_OK) {
        nw__log(NW_LOG_ERROR, "%s", err);
    }
    nw__proctitle_set("narwhal: master [%s]", nw__proc_name(a->gen.settings));
}
