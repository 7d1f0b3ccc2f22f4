/* Running as another user: daemon mode and dropping privileges. */
#ifndef NW_PRIVILEGES_H
#define NW_PRIVILEGES_H

#include <stddef.h>
#include <sys/types.h>

/* -D: fork twice, new session, umask 022, stdio on /dev/null (stdout and
   stderr kept when they are not a terminal and `inherit_stdio`, -R). */
int nw__daemonize(int inherit_stdio, char *err, size_t errlen);

/* In a worker, after post_fork: become uid/gid (with the user's
   supplementary groups when `initgroups`).  (uid_t) -1 / (gid_t) -1 keep
   the current ids.  NW_OK, or NW_ERROR with one sentence in err. */
int nw__set_owner(uid_t uid, gid_t gid, int initgroups, char *err,
                  size_t errlen);

#endif
