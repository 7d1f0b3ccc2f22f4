/* The command line, generated from the settings table. */
#ifndef NW_CLI_H
#define NW_CLI_H

#include <stdio.h>

#include "settings.h"

/* What the caller should do after parsing. */
enum nw_cli_result {
    NW_CLI_RUN,      /* settings filled: go on */
    NW_CLI_EXIT_OK,  /* --help or --version printed */
    NW_CLI_USAGE,    /* error printed: exit with NW_EXIT_USAGE */
};

enum nw_cli_result nw__cli_parse(nw_settings *s, int argc, char **argv,
                                 FILE *out, FILE *errout);
void nw__cli_help(FILE *out);

#endif
