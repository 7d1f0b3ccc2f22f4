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

#include "log.h"
#include "memory.h"

static int log_threshold = NW_LOG_INFO;
static int log_fd = STDERR_FILENO;

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
    return "LOG";
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

void
nw__log(int level, const char *fmt, ...)
{
    char small[1024];
    char *line = small;
    size_t cap = sizeof(small);
    size_t head;
    int n;
    va_list ap;

    if (level < log_threshold) {
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
            va_start(ap, fmt);
            n = vsnprintf(line + head, cap - head, fmt, ap);
            va_end(ap);
            if (n >= 0 && head + (size_t) n + 1 < cap) {
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
    line[head + (size_t) n] = '\n';
    write_all(log_fd, line, head + (size_t) n + 1);
    if (line != small) {
        free(line);
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
    fd = open(errorlog, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        nw__log(NW_LOG_ERROR, "cannot open the error log %s: %s; logging "
                              "goes on where it went",
                errorlog, strerror(errno));
        return NW_ERROR;
    }
    if (log_fd == STDERR_FILENO) {
        log_fd = fd;
    } else {
        /* the same descriptor number, now on the new file */
        dup2(fd, log_fd);
        fcntl(log_fd, F_SETFD, FD_CLOEXEC);
        close(fd);
    }
    return NW_OK;
}
