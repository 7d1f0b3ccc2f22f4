/* CPython in the arbiter, for files that must not include Python.h. */
#ifndef NW_PYTHON_ARBITER_H
#define NW_PYTHON_ARBITER_H

#include "config/settings.h"

/* The arbiter starts CPython only when it needs it: a Python config file,
   hooks given in an INI file, --check-config.  Its workers then inherit
   the interpreter (and the config module) across fork(), which follows
   PyOS_BeforeFork / PyOS_AfterFork_Parent / PyOS_AfterFork_Child; each
   of the fork functions is a no-op when the arbiter has no Python. */
int nw__python_start_arbiter(const nw_settings *s, int argc, char **argv);
int nw__python_in_arbiter(void);
void nw__python_before_fork(void);
void nw__python_after_fork_parent(void);
void nw__python_after_fork_child(void);

/* At the arbiter's exit: the config file's atexit handlers run. */
void nw__python_finalize_arbiter(void);

#endif
