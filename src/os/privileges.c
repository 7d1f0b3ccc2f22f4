#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <narwhal/api.h>

#include "os/privileges.h"

int
nw__daemonize(int inherit_stdio, char *err, size_t errlen)
{
    pid_t pid;
    int null;

    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot fork into the background: %s",
                 strerror(errno));
        return NW_ERROR;
    }
    if (pid > 0) {
        _exit(0);
    }
    setsid();
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot fork into the background: %s",
                 strerror(errno));
        return NW_ERROR;
    }
    if (pid > 0) {
        _exit(0);
    }
    umask(022);
    null = open("/dev/null", O_RDWR);
    if (null < 0) {
        snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
        return NW_ERROR;
    }
    dup2(null, STDIN_FILENO);
    for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
        /* -R keeps a redirected stdout/stderr (a file, a pipe to a
           supervisor), never a terminal */
        if (!inherit_stdio || isatty(fd)) {
            dup2(null, fd);
        }
    }
    if (null > STDERR_FILENO) {
        close(null);
    }
    return NW_OK;
}

int
nw__set_owner(uid_t uid, gid_t gid, int initgroups_too, char *err,
              size_t errlen)
{
    if (gid != (gid_t) -1 && gid != getegid()) {
        if (setgid(gid) != 0) {
            snprintf(err, errlen, "cannot switch to group %ld: %s",
                     (long) gid, strerror(errno));
            return NW_ERROR;
        }
    }
    if (uid != (uid_t) -1 && uid != geteuid()) {
        struct passwd *pw = getpwuid(uid);
        gid_t g = gid != (gid_t) -1 ? gid : getegid();
        /* supplementary groups: the user's own with --initgroups, else
           none of root's */
        if (initgroups_too && pw != NULL) {
            if (initgroups(pw->pw_name, g) != 0) {
                snprintf(err, errlen, "cannot set the groups of user %s: %s",
                         pw->pw_name, strerror(errno));
                return NW_ERROR;
            }
        } else if (getuid() == 0 && setgroups(1, &g) != 0) {
            snprintf(err, errlen, "cannot drop supplementary groups: %s",
                     strerror(errno));
            return NW_ERROR;
        }
        if (setuid(uid) != 0) {
            snprintf(err, errlen, "cannot switch to user %ld: %s",
                     (long) uid, strerror(errno));
            return NW_ERROR;
        }
    }
    return NW_OK;
}
