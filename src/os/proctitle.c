#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_PRCTL
#include <sys/prctl.h>
#endif

#include "base/memory.h"
#include "os/proctitle.h"

extern char **environ;

static char *title_start;
static size_t title_room;

char **
nw__proctitle_init(int argc, char **argv)
{
    char **copy = nw__xcalloc((size_t) argc + 1, sizeof(char *));
    char *end = NULL;
    size_t n = 0;

    for (int i = 0; i < argc; i++) {
        copy[i] = nw__xstrdup(argv[i]);
        if (end == NULL || argv[i] == end + 1) {
            end = argv[i] + strlen(argv[i]);
        }
    }
    /* The kernel lays argv and then environ out contiguously; ps reads
       that whole block.  Copy the environment to the heap so the block
       can be overwritten. */
    while (environ[n] != NULL) {
        n++;
    }
    {
        char **env = nw__xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            if (end != NULL && environ[i] == end + 1) {
                end = environ[i] + strlen(environ[i]);
            }
            env[i] = nw__xstrdup(environ[i]);
        }
        environ = env;
    }
    if (argc > 0 && end != NULL) {
        title_start = argv[0];
        title_room = (size_t) (end - argv[0]);
        for (int i = 1; i < argc; i++) {
            argv[i] = copy[i]; /* getopt must not see the title */
        }
    }
    return copy;
}

void
nw__proctitle_set(const char *fmt, ...)
{
    char title[256];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(title, sizeof(title), fmt, ap);
    va_end(ap);
#ifdef HAVE_PRCTL
    /* the kernel's comm: 15 bytes, "narwhal: master" */
    prctl(PR_SET_NAME, title, 0, 0, 0);
#endif
    if (title_start == NULL || title_room == 0) {
        return;
    }
    n = strlen(title);
    if (n >= title_room) {
        n = title_room - 1;
    }
    memcpy(title_start, title, n);
    memset(title_start + n, '\0', title_room - n);
}

const char *
nw__proc_name(const nw_settings *s)
{
    static char name[256];
    const char *base = s->proc_name ? s->proc_name
                       : s->default_proc_name ? s->default_proc_name
                                              : "narwhal";
    const char *old_master = getenv("NARWHAL_PID");

    snprintf(name, sizeof(name), "%s%s", base,
             old_master != NULL && *old_master ? ".2" : "");
    return name;
}
