/* The command line, generated from the settings table. */
#ifndef NW_CLI_H
#define NW_CLI_H

#include <stdio.h>

#include "config/settings.h"

/* What the caller should do after parsing. */
enum nw_cli_result {
    NW_CLI_RUN,      /* settings filled: go on */
    NW_CLI_EXIT_OK,  /* --help or --version printed */
    NW_CLI_USAGE,    /* error printed: exit with NW_EXIT_USAGE */
};

/* Parse argv (argv[0] is skipped) into s at source src.  label names the
   source in messages and in s->origin: NULL for the command line (which
   may hold APP_MODULE), "GUNICORN_CMD_ARGS" or "NARWHAL_CMD_ARGS".
   Errors are argparse's: a usage line and "narwhal: error: ..." on
   errout. */
enum nw_cli_result nw__cli_parse(nw_settings *s, int argc, char **argv,
                                 enum nw_setting_source src,
                                 const char *label, FILE *out, FILE *errout);
void nw__cli_help(FILE *out);

/* "-w/--workers" */
void nw__cli_flag_names(const nw_setting_def *d, char *buf, size_t len);

/* Python's shlex.split(): argv[0] is "narwhal", argv[argc] NULL; free
   with nw__argv_free. */
int nw__shlex_split(const char *text, int *argc, char ***argv, char *err,
                    size_t errlen);
void nw__argv_free(int argc, char **argv);

#endif
