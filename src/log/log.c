#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"

static int log_threshold = NW_LOG_INFO;
static int log_fd = STDERR_FILENO;

/* What nw__logs_configure set up, for USR1 and HUP. */
static char *errorlog_path;  /* NULL: stderr */
static char *accesslog_path; /* NULL: none; "-": stdout */
static int access_fd = -1;
static int capture;          /* capture_output onto the error log file */
static int python_logs;      /* logconfig*: lines go through Python */

/* "[2026-11-23 10:00:00 +0000] " is rebuilt at most once a second. */
static time_t stamp_second = (time_t) -1;
static char stamp[48];
static size_t stamp_len;

static const struct {
    const char *name;
    const char *upper;
    int level;
} levels[] = {
    {"debug", "DEBUG", NW_LOG_DEBUG},
    {"info", "INFO", NW_LOG_INFO},
    {"warning", "WARNING", NW_LOG_WARNING},
    {"error", "ERROR", NW_LOG_ERROR},
    {"critical", "CRITICAL", NW_LOG_CRITICAL},
};

void
nw__log_set_level(int level)
{
    log_threshold = level;
}

int
nw__log_level(void)
{
    return log_threshold;
}

int
nw__log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(name, levels[i].name) == 0) {
            return levels[i].level;
        }
    }
    return -1;
}

const char *
nw__log_level_name(int level)
{
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (levels[i].level == level) {
            return levels[i].upper;
        }
    }
    /* Python's name for a level of its own */
    return level >= NW_LOG_CRITICAL ? "CRITICAL"
           : level >= NW_LOG_ERROR  ? "ERROR"
           : level >= NW_LOG_WARNING ? "WARNING"
           : level >= NW_LOG_INFO    ? "INFO"
                                     : "DEBUG";
}

void
nw__log_set_fd(int fd)
{
    log_fd = fd < 0 ? STDERR_FILENO : fd;
}

static void
refresh_stamp(void)
{
    time_t now = time(NULL);
    struct tm tm;

    if (now == stamp_second) {
        return;
    }
    stamp_second = now;
    localtime_r(&now, &tm);
    stamp_len = strftime(stamp, sizeof(stamp), "[%Y-%m-%d %H:%M:%S %z] ", &tm);
}

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

static void
vlog(int level, unsigned flags, const char *metric, const char *mvalue,
     const char *mtype, const char *fmt, va_list ap0)
{
    char small[1024];
    char *line = small;
    size_t cap = sizeof(small);
    size_t head;
    int n;
    va_list ap;
    int below = level < log_threshold;

    if (below) {
        if (NW__HOOK_ON(NW_HOOK_LOG)) {
            /* statsd counts warnings and errors whatever loglevel
               filters: the point runs, the line is not formatted */
            nw_hook_ctx ctx;
            memset(&ctx, 0, sizeof(ctx));
            ctx.flags = flags;
            ctx.level = level;
            ctx.metric = metric;
            ctx.metric_value = mvalue;
            ctx.metric_type = mtype;
            nw__hooks_run(NW_HOOK_LOG, &ctx);
        }
        return;
    }
    refresh_stamp();
    /* The line is built whole and written with one write(2), so lines from
       the arbiter and its workers never interleave mid-line. */
    for (;;) {
        head = (size_t) snprintf(line, cap, "%.*s[%ld] [%s] ",
                                 (int) stamp_len, stamp, (long) getpid(),
                                 nw__log_level_name(level));
        if (head < cap) {
            va_copy(ap, ap0);
            n = vsnprintf(line + head, cap - head, fmt, ap);
            va_end(ap);
            if (n < 0) {
                /* an encoding error: say so rather than loop */
                snprintf(line + head, cap - head, "%s",
                         "(a log message that could not be formatted)");
                n = (int) strlen(line + head);
                break;
            }
            if (head + (size_t) n + 1 < cap) {
                break;
            }
        } else {
            n = 0;
        }
        if (line != small) {
            free(line);
        }
        cap = head + (size_t) (n > 0 ? n : 0) + 2;
        line = nw__xmalloc(cap);
    }
    if (NW__HOOK_ON(NW_HOOK_LOG)) {
        nw_hook_ctx ctx;
        memset(&ctx, 0, sizeof(ctx));
        ctx.flags = flags;
        ctx.level = level;
        ctx.message = line + head;
        ctx.metric = metric;
        ctx.metric_value = mvalue;
        ctx.metric_type = mtype;
        nw__hooks_run(NW_HOOK_LOG, &ctx);
    }
    if (nw__syslog_on()) {
        nw__syslog_send(level, "error", line + head, (size_t) n);
    }
    if (python_logs) {
        nw__pylog_emit(0, level, line + head, (size_t) n);
    } else {
        line[head + (size_t) n] = '\n';
        write_all(log_fd, line, head + (size_t) n + 1);
    }
    if (line != small) {
        free(line);
    }
}

void
nw__log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level < log_threshold && !NW__HOOK_ON(NW_HOOK_LOG)) {
        return;
    }
    va_start(ap, fmt);
    vlog(level, 0, NULL, NULL, NULL, fmt, ap);
    va_end(ap);
}

void
nw__log_ex(int level, unsigned flags, const char *metric,
           const char *metric_value, const char *metric_type,
           const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, flags, metric, metric_value, metric_type, fmt, ap);
    va_end(ap);
}

/* Open path for appending; the descriptor `keep` (if >= 0) is pointed at
   it so its number does not change.  Returns the descriptor, or -1. */
static int
open_onto(const char *path, int keep)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0 || keep < 0) {
        return fd;
    }
    /* the same descriptor number, now on the new file */
    dup2(fd, keep);
    fcntl(keep, F_SETFD, FD_CLOEXEC);
    close(fd);
    return keep;
}

/* capture_output: stdout and stderr write into the error log file. */
static void
recapture(void)
{
    if (capture && log_fd != STDERR_FILENO) {
        fflush(stdout);
        fflush(stderr);
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
    }
}

int
nw__log_reopen(const char *errorlog)
{
    int fd;

    if (errorlog == NULL || strcmp(errorlog, "-") == 0) {
        if (log_fd != STDERR_FILENO) {
            close(log_fd);
            log_fd = STDERR_FILENO;
        }
        return NW_OK;
    }
    fd = open_onto(errorlog, log_fd == STDERR_FILENO ? -1 : log_fd);
    if (fd < 0) {
        nw__log(NW_LOG_ERROR, "cannot open the error log %s: %s; logging "
                              "goes on where it went",
                errorlog, strerror(errno));
        return NW_ERROR;
    }
    log_fd = fd;
    recapture();
    return NW_OK;
}

static int
open_access(const char *path, char *err, size_t errlen)
{
    int fd;

    if (path == NULL) {
        if (access_fd > STDERR_FILENO) {
            close(access_fd);
        }
        access_fd = -1;
        return NW_OK;
    }
    if (strcmp(path, "-") == 0) {
        if (access_fd > STDERR_FILENO) {
            close(access_fd);
        }
        access_fd = STDOUT_FILENO;
        return NW_OK;
    }
    fd = open_onto(path, access_fd > STDERR_FILENO ? access_fd : -1);
    if (fd < 0) {
        snprintf(err, errlen,
                 "cannot open the access log %s (accesslog): %s; give a "
                 "writable file, or '-' for stdout",
                 path, strerror(errno));
        return NW_ERROR;
    }
    access_fd = fd;
    return NW_OK;
}

static void
set_path(char **slot, const char *value)
{
    free(*slot);
    *slot = value != NULL ? nw__xstrdup(value) : NULL;
}

int
nw__access_wanted(const nw_settings *s)
{
    return s->accesslog != NULL || s->logconfig != NULL
           || s->logconfig_json != NULL || s->logconfig_dict.obj != NULL
           || (s->syslog && !s->disable_redirect_access_to_syslog);
}

static int
wants_python(const nw_settings *s)
{
    return s->logconfig != NULL || s->logconfig_json != NULL
           || s->logconfig_dict.obj != NULL;
}

int
nw__logs_configure(const nw_settings *s, int reload, char *err,
                   size_t errlen)
{
    char why[1024];
    const char *errorlog = s->errorlog != NULL && strcmp(s->errorlog, "-")
                               ? s->errorlog
                               : NULL;

    nw__log_set_level(nw__log_level_from_name(s->loglevel));
    capture = s->capture_output && errorlog != NULL;
    if (!reload && errorlog != NULL) {
        int fd = open(errorlog, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                      0644);
        if (fd < 0) {
            snprintf(err, errlen,
                     "cannot open the error log %s (errorlog): %s; give a "
                     "writable file, or '-' for stderr",
                     errorlog, strerror(errno));
            return NW_ERROR;
        }
        close(fd);
    }
    nw__log_reopen(errorlog);
    set_path(&errorlog_path, errorlog);

    if (open_access(s->accesslog, why, sizeof(why)) != NW_OK) {
        if (!reload) {
            snprintf(err, errlen, "%s", why);
            return NW_ERROR;
        }
        nw__log(NW_LOG_ERROR, "%s", why);
    } else {
        set_path(&accesslog_path, s->accesslog);
    }

    nw__syslog_close();
    if (s->syslog && nw__syslog_open(s, why, sizeof(why)) != NW_OK) {
        if (!reload) {
            snprintf(err, errlen, "%s", why);
            return NW_ERROR;
        }
        nw__log(NW_LOG_ERROR, "%s; syslog is off until it is fixed", why);
    }
    nw__syslog_access = s->syslog && !s->disable_redirect_access_to_syslog;

    python_logs = 0;
    if (wants_python(s)) {
        int level = NW_LOG_INFO;
        if (nw__pylog_setup(s, &level, why, sizeof(why)) != NW_OK) {
            if (!reload) {
                snprintf(err, errlen, "%s", why);
                return NW_ERROR;
            }
            nw__log(NW_LOG_ERROR, "%s; the log configuration is not "
                                  "applied",
                    why);
        } else {
            /* the logging configuration decides what passes */
            python_logs = 1;
            nw__log_set_level(level);
        }
    }
    return NW_OK;
}

void
nw__logs_reopen(void)
{
    char why[512];

    nw__log_reopen(errorlog_path);
    if (accesslog_path != NULL && strcmp(accesslog_path, "-") != 0
        && open_access(accesslog_path, why, sizeof(why)) != NW_OK) {
        nw__log(NW_LOG_ERROR, "%s", why);
    }
    if (python_logs) {
        nw__pylog_reopen();
    }
}

void
nw__access_write(const char *line, size_t len)
{
    if (nw__syslog_access && nw__syslog_on()) {
        nw__syslog_send(NW_LOG_INFO, "access", line, len);
    }
    if (python_logs) {
        nw__pylog_emit(1, NW_LOG_INFO, line, len);
        return;
    }
    if (access_fd >= 0) {
        write_all(access_fd, line, len + 1); /* the caller's '\n' */
    }
}

void
nw__logs_python_off(void)
{
    python_logs = 0;
}
