/* Allocation that aborts with a message when memory runs out (redis, h2o):
   callers never test for NULL. */
#ifndef NW_MEMORY_H
#define NW_MEMORY_H

#include <stddef.h>

void *nw__xmalloc(size_t size);
void *nw__xcalloc(size_t n, size_t size);
void *nw__xrealloc(void *p, size_t size);
char *nw__xstrdup(const char *s);
char *nw__xstrndup(const char *s, size_t n);

#endif
