/* A request body held for an event-loop worker, which reads the whole body
   before it calls the app: in memory up to a threshold, then in an
   unlinked temporary file in tmp_upload_dir.  Read back in order. */
#ifndef NW_SPOOL_H
#define NW_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct nw_spool {
    char *mem;          /* the first bytes (all of them below threshold) */
    size_t mem_len;
    size_t mem_cap;
    size_t threshold;   /* bytes kept in memory before the file starts */
    const char *dir;    /* where the file goes; NULL: $TMPDIR or /tmp */
    int fd;             /* the file, -1 until needed */
    uint64_t size;      /* bytes written */
    uint64_t rpos;      /* bytes read back */
} nw_spool;

void nw__spool_init(nw_spool *s, size_t threshold, const char *dir);
/* Empty it for the next request: the file is closed, memory kept (up to
   the threshold). */
void nw__spool_reset(nw_spool *s);
void nw__spool_free(nw_spool *s);

/* Append n bytes.  NW_ERROR when the file cannot be made or written
   (err says why). */
int nw__spool_write(nw_spool *s, const void *data, size_t n, char *err,
                    size_t errlen);

/* Room to decode into directly: a pointer to at least *n free bytes in
   memory, or NULL once the body has moved to the file.  Commit what was
   written with nw__spool_commit. */
char *nw__spool_reserve(nw_spool *s, size_t *n);
void nw__spool_commit(nw_spool *s, size_t n);

/* Read the next bytes back: the count, 0 at the end, NW_ERROR on an I/O
   error. */
ssize_t nw__spool_read(nw_spool *s, void *dst, size_t n);

/* 1 once the body is in a file. */
static inline int
nw__spool_on_disk(const nw_spool *s)
{
    return s->fd >= 0;
}

#endif
