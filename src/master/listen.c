/* The listening sockets of a configuration: inherited (systemd, USR2) or
   bound from the bind list, reusing those a reload keeps. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "master/arbiter.h"
#include "log/log.h"
#include "base/memory.h"
#include "os/sockets.h"

static void
add(nw_listen_set *set, const nw_listener *l, const char *spec)
{
    set->items = nw__xrealloc(set->items,
                              (set->count + 1) * sizeof(nw_listener));
    set->specs = nw__xrealloc(set->specs, (set->count + 1) * sizeof(char *));
    set->items[set->count] = *l;
    set->specs[set->count] = nw__xstrdup(spec);
    set->count++;
}

static const nw_listener *
kept(const nw_listen_set *keep, const char *spec)
{
    for (unsigned i = 0; keep != NULL && i < keep->count; i++) {
        if (strcmp(keep->specs[i], spec) == 0) {
            return &keep->items[i];
        }
    }
    return NULL;
}

static void
announce(const nw_listener *l)
{
    nw__log(NW_LOG_INFO, "Listening at: %s (%ld)", l->url, (long) getpid());
}

int
nw__listen_open(nw_arbiter *a, nw_settings *s, nw_listen_set *out,
                const nw_listen_set *keep)
{
    int *fds = NULL;
    unsigned nfds = 0;
    char err[512];
    mode_t old_mask;

    memset(out, 0, sizeof(*out));
    /* systemd's sockets, or the ones an old master passed on (USR2): used
       as they are, never bound again */
    if (keep == NULL && nw__inherited_fds(a, &fds, &nfds) == NW_OK
        && nfds > 0) {
        if (a->systemd && s->reuse_port) {
            /* systemd's sockets already listen: workers share them */
            nw__log(NW_LOG_WARNING, "reuse_port is ignored for sockets "
                                    "passed by systemd");
            s->reuse_port = 0;
        }
        for (unsigned i = 0; i < nfds; i++) {
            nw_bind_addr addr = {.kind = NW_ADDR_FD, .fd = fds[i]};
            nw_listener l;
            char spec[32];
            if (nw__listener_open(&addr, (int) s->backlog, 1, 0,
                                  s->reuse_port, &l, err, sizeof(err))
                != NW_OK) {
                nw__log(NW_LOG_ERROR, "%s", err);
                free(fds);
                return NW_ERROR;
            }
            snprintf(spec, sizeof(spec), "fd://%d", fds[i]);
            add(out, &l, spec);
            announce(&l);
        }
        free(fds);
        return NW_OK;
    }
    free(fds);
    out->owned = 1;
    /* a unix socket's permissions come from the umask setting */
    old_mask = umask((mode_t) s->umask);
    for (size_t i = 0; i < s->bind.count; i++) {
        const char *spec = s->bind.items[i];
        const nw_listener *same = kept(keep, spec);
        nw_bind_addr addr;
        nw_listener l;

        if (same != NULL) {
            l = *same;
            l.url = nw__xstrdup(same->url);
            add(out, &l, spec);
            continue;
        }
        if (nw__bind_parse(spec, &addr, err, sizeof(err)) != NW_OK) {
            nw__log(NW_LOG_ERROR, "Error: invalid bind address: %s", err);
            goto fail;
        }
        if (nw__listener_open(&addr, (int) s->backlog, 5, 1000,
                              s->reuse_port, &l, err, sizeof(err))
            != NW_OK) {
            nw__log(NW_LOG_ERROR, "%s", err);
            goto fail;
        }
        if (addr.kind == NW_ADDR_UNIX
            && s->source[NW_S_user] + s->source[NW_S_group] > 0) {
            /* the workers' user owns the socket, as in Gunicorn */
            uid_t uid = s->source[NW_S_user] ? (uid_t) s->user : (uid_t) -1;
            gid_t gid = s->source[NW_S_group] ? (gid_t) s->group
                                              : (gid_t) -1;
            if (chown(addr.path, uid, gid) != 0) {
                nw__log(NW_LOG_WARNING, "cannot give %s to the workers' "
                                        "user: %s",
                        addr.path, strerror(errno));
            }
        }
        add(out, &l, spec);
        announce(&l);
    }
    umask(old_mask);
    return NW_OK;

fail:
    umask(old_mask);
    nw__listen_close(out, keep, 1);
    return NW_ERROR;
}

void
nw__listen_close(nw_listen_set *set, const nw_listen_set *keep,
                 int unlink_unix)
{
    for (unsigned i = 0; i < set->count; i++) {
        if (kept(keep, set->specs[i]) != NULL) {
            /* the other configuration goes on with this socket */
            free((char *) set->items[i].url);
        } else {
            nw__listener_close(&set->items[i], unlink_unix && set->owned);
        }
        free(set->specs[i]);
    }
    free(set->items);
    free(set->specs);
    memset(set, 0, sizeof(*set));
}
