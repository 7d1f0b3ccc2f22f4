#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <narwhal/api.h>

#include "base/memory.h"
#include "conn/spool.h"

void
nw__spool_init(nw_spool *s, size_t threshold, const char *dir)
{
    memset(s, 0, sizeof(*s));
    s->threshold = threshold;
    s->dir = dir;
    s->fd = -1;
}

void
nw__spool_reset(nw_spool *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->mem_len = 0;
    s->size = 0;
    s->rpos = 0;
}

void
nw__spool_free(nw_spool *s)
{
    nw__spool_reset(s);
    free(s->mem);
    s->mem = NULL;
    s->mem_cap = 0;
}

/* An unlinked file: O_TMPFILE where the file system has it, else
   mkstemp and unlink at once.  Either way nothing is left behind. */
static int
open_file(nw_spool *s, char *err, size_t errlen)
{
    const char *dir = s->dir;
    char path[4096];
    int fd;

    if (dir == NULL || *dir == '\0') {
        dir = getenv("TMPDIR");
        if (dir == NULL || *dir == '\0') {
            dir = "/tmp";
        }
    }
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
        s->fd = fd;
        return NW_OK;
    }
#endif
    if ((size_t) snprintf(path, sizeof(path), "%s/narwhal-body-XXXXXX", dir)
        >= sizeof(path)) {
        snprintf(err, errlen, "tmp_upload_dir %s: path too long", dir);
        return NW_ERROR;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen,
                 "cannot create a file for the request body in %s "
                 "(tmp_upload_dir): %s",
                 dir, strerror(errno));
        return NW_ERROR;
    }
    unlink(path);
    s->fd = fd;
    return NW_OK;
}

static int
write_file(nw_spool *s, const char *p, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        ssize_t w = pwrite(s->fd, p, n, (off_t) (s->size - s->mem_len));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen,
                     "cannot write the request body to tmp_upload_dir: %s",
                     strerror(errno));
            return NW_ERROR;
        }
        p += w;
        n -= (size_t) w;
        s->size += (uint64_t) w;
    }
    return NW_OK;
}

int
nw__spool_write(nw_spool *s, const void *data, size_t n, char *err,
                size_t errlen)
{
    const char *p = data;

    if (s->fd < 0 && s->mem_len + n <= s->threshold) {
        if (s->mem_len + n > s->mem_cap) {
            size_t want = s->mem_cap ? s->mem_cap : 16384;
            while (want < s->mem_len + n) {
                want *= 2;
            }
            if (want > s->threshold) {
                want = s->threshold;
            }
            s->mem = nw__xrealloc(s->mem, want);
            s->mem_cap = want;
        }
        memcpy(s->mem + s->mem_len, p, n);
        nw__spool_commit(s, n);
        return NW_OK;
    }
    if (s->fd < 0 && open_file(s, err, errlen) != NW_OK) {
        return NW_ERROR;
    }
    return write_file(s, p, n, err, errlen);
}

char *
nw__spool_reserve(nw_spool *s, size_t *n)
{
    size_t want;

    if (s->fd >= 0 || s->mem_len >= s->threshold) {
        *n = 0;
        return NULL;
    }
    if (s->mem_cap - s->mem_len < 16384 && s->mem_cap < s->threshold) {
        want = s->mem_cap ? s->mem_cap * 2 : 16384;
        if (want > s->threshold) {
            want = s->threshold;
        }
        s->mem = nw__xrealloc(s->mem, want);
        s->mem_cap = want;
    }
    *n = s->mem_cap - s->mem_len;
    return s->mem + s->mem_len;
}

void
nw__spool_commit(nw_spool *s, size_t n)
{
    s->mem_len += n;
    s->size += n;
}

ssize_t
nw__spool_read(nw_spool *s, void *dst, size_t n)
{
    char *d = dst;
    size_t got = 0;

    if (s->rpos < s->mem_len) {
        size_t take = s->mem_len - (size_t) s->rpos;
        if (take > n) {
            take = n;
        }
        memcpy(d, s->mem + s->rpos, take);
        s->rpos += take;
        got = take;
    }
    while (got < n && s->rpos < s->size) {
        uint64_t left = s->size - s->rpos;
        size_t want = n - got < left ? n - got : (size_t) left;
        ssize_t r = pread(s->fd, d + got, want,
                          (off_t) (s->rpos - s->mem_len));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return NW_ERROR;
        }
        if (r == 0) {
            return NW_ERROR; /* the file shrank under us */
        }
        got += (size_t) r;
        s->rpos += (uint64_t) r;
    }
    return (ssize_t) got;
}
