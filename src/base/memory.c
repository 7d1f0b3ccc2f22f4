#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/memory.h"

static void
out_of_memory(size_t size)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg),
                     "narwhal: out of memory allocating %zu bytes\n", size);
    if (n > 0) {
        ssize_t rc = write(STDERR_FILENO, msg, (size_t) n);
        (void) rc;
    }
    abort();
}

void *
nw__xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *
nw__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(n * size);
    }
    return p;
}

void *
nw__xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        out_of_memory(size);
    }
    return q;
}

char *
nw__xstrndup(const char *s, size_t n)
{
    char *p = nw__xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
nw__xstrdup(const char *s)
{
    return nw__xstrndup(s, strlen(s));
}
