#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <narwhal/api.h>

#include "base/memory.h"
#include "os/pidfile.h"

/* The pid in the file, if that process lives; 0 otherwise. */
static pid_t
live_pid_in(const char *path)
{
    char buf[32];
    ssize_t n;
    long pid;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    pid = strtol(buf, &end, 10);
    if (end == buf || pid <= 0 || pid > INT_MAX) {
        return 0;
    }
    if (kill((pid_t) pid, 0) == 0 || errno == EPERM) {
        return (pid_t) pid;
    }
    return 0;
}

static int
write_pid(const char *path, pid_t pid, char *err, size_t errlen)
{
    char tmp[PATH_MAX], line[32];
    const char *slash = strrchr(path, '/');
    int fd, n;

    if (slash == NULL) {
        snprintf(tmp, sizeof(tmp), ".narwhal-pid-XXXXXX");
    } else {
        snprintf(tmp, sizeof(tmp), "%.*s/.narwhal-pid-XXXXXX",
                 (int) (slash - path), path);
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen,
                 "cannot create the pid file %s: %s; check that its "
                 "directory exists and is writable",
                 path, strerror(errno));
        return NW_ERROR;
    }
    n = snprintf(line, sizeof(line), "%ld\n", (long) pid);
    if (write(fd, line, (size_t) n) != n || fchmod(fd, 0644) != 0
        || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write the pid file %s: %s", path,
                 strerror(errno));
        unlink(tmp);
        return NW_ERROR;
    }
    return NW_OK;
}

int
nw__pidfile_create(nw_pidfile *pf, const char *path, pid_t pid, char *err,
                   size_t errlen)
{
    pid_t other = live_pid_in(path);

    if (other != 0 && other != pid) {
        snprintf(err, errlen,
                 "Already running on PID %ld (or pid file '%s' is stale); "
                 "stop that process or remove the file",
                 (long) other, path);
        return NW_ERROR;
    }
    if (write_pid(path, pid, err, errlen) != NW_OK) {
        return NW_ERROR;
    }
    free(pf->path);
    pf->path = nw__xstrdup(path);
    pf->pid = pid;
    return NW_OK;
}

int
nw__pidfile_rename(nw_pidfile *pf, const char *path, char *err,
                   size_t errlen)
{
    pid_t pid = pf->pid;

    nw__pidfile_unlink(pf);
    return nw__pidfile_create(pf, path, pid, err, errlen);
}

void
nw__pidfile_unlink(nw_pidfile *pf)
{
    if (pf->path == NULL) {
        return;
    }
    if (live_pid_in(pf->path) == pf->pid) {
        unlink(pf->path);
    }
    free(pf->path);
    pf->path = NULL;
}
