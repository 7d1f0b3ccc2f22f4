/* The settings reference, generated from the table: doc/settings.md, the
   man page doc/narwhal.1, and JSON for the tests. */
#ifndef NW_SETTINGS_DOC_H
#define NW_SETTINGS_DOC_H

#include <stdio.h>

/* format: "markdown", "man" or "json".  NW_ERROR for another format. */
int nw__settings_dump(const char *format, FILE *out);

#endif
