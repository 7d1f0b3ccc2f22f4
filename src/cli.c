#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <narwhal/version.h>

#include "cli.h"
#include "memory.h"

#define OPT_BASE 1000
#define OPT_HELP (OPT_BASE + NW_SETTING_COUNT)
#define OPT_VERSION (OPT_HELP + 1)

static const char usage_line[] = "usage: narwhal [OPTIONS] [APP_MODULE]\n";

/* "--long/-s" spellings of one setting, for messages. */
static void
flag_names(const nw_setting_def *d, char *buf, size_t len)
{
    size_t j = 0;
    const char *p = d->long_flags;

    if (d->short_flag) {
        j += (size_t) snprintf(buf + j, len - j, "-%c/", d->short_flag);
    }
    while (*p && j + 3 < len) {
        if (p == d->long_flags || p[-1] == '|') {
            buf[j++] = '-';
            buf[j++] = '-';
        }
        buf[j++] = *p == '|' ? '/' : *p;
        p++;
    }
    buf[j < len ? j : len - 1] = '\0';
}

static size_t
count_long_flags(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        n++;
        for (const char *p = nw__setting_defs[i].long_flags; *p; p++) {
            n += *p == '|';
        }
    }
    return n;
}

void
nw__cli_help(FILE *out)
{
    const char *section = NULL;

    fputs(usage_line, out);
    fputs("\nnarwhal " NW_VERSION
          ": a pre-fork WSGI HTTP server, Gunicorn's command line.\n"
          "\npositional arguments:\n"
          "  APP_MODULE            a WSGI app: MODULE[:VARIABLE] or "
          "MODULE:FACTORY(ARGS)\n"
          "\noptions:\n"
          "  -h, --help            show this help message and exit\n"
          "  -v, --version         show program's version number and exit\n",
          out);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        char flags[160];
        size_t j = 0;
        const char *p = d->long_flags;

        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "\n%s:\n", section);
        }
        if (d->short_flag) {
            j += (size_t) snprintf(flags, sizeof(flags), "-%c %s, ",
                                   d->short_flag, d->meta);
        }
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t) (bar - p) : strlen(p);
            j += (size_t) snprintf(flags + j, sizeof(flags) - j, "--%.*s%s%s%s",
                                   (int) n, p, d->type == NW_T_BOOL ? "" : " ",
                                   d->type == NW_T_BOOL ? "" : d->meta,
                                   bar ? ", " : "");
            if (j >= sizeof(flags)) {
                j = sizeof(flags) - 1;
                break;
            }
            p = bar ? bar + 1 : p + n;
        }
        fprintf(out, "  %-22s%s%s", flags, strlen(flags) > 21 ? "\n" : "",
                strlen(flags) > 21 ? "                        " : "");
        fprintf(out, "%s", d->help);
        if (d->default_value) {
            fprintf(out, " [%s]", d->default_value);
        }
        fputc('\n', out);
    }
}

enum nw_cli_result
nw__cli_parse(nw_settings *s, int argc, char **argv, FILE *out,
              FILE *errout)
{
    size_t nlong = count_long_flags() + 2;
    struct option *longopts = nw__xcalloc(nlong + 1, sizeof(*longopts));
    char shortopts[2 * NW_SETTING_COUNT + 8];
    size_t k = 0, j = 0;
    enum nw_cli_result result = NW_CLI_RUN;
    char err[256];
    int c;

    shortopts[j++] = ':'; /* report a missing argument as ':' */
    shortopts[j++] = 'h';
    shortopts[j++] = 'v';
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        const char *p = d->long_flags;
        int has_arg = d->type == NW_T_BOOL ? no_argument : required_argument;

        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t) (bar - p) : strlen(p);
            longopts[k].name = nw__xstrndup(p, n);
            longopts[k].has_arg = has_arg;
            longopts[k].val = OPT_BASE + (int) i;
            k++;
            p = bar ? bar + 1 : p + n;
        }
        if (d->short_flag) {
            shortopts[j++] = (char) d->short_flag;
            if (has_arg == required_argument) {
                shortopts[j++] = ':';
            }
        }
    }
    shortopts[j] = '\0';
    longopts[k].name = nw__xstrdup("help");
    longopts[k++].val = OPT_HELP;
    longopts[k].name = nw__xstrdup("version");
    longopts[k++].val = OPT_VERSION;

    opterr = 0;
    optind = 1;
    while (result == NW_CLI_RUN
           && (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const nw_setting_def *d = NULL;

        if (c == 'h' || c == OPT_HELP) {
            nw__cli_help(out);
            result = NW_CLI_EXIT_OK;
            break;
        }
        if (c == 'v' || c == OPT_VERSION) {
            fprintf(out, "narwhal (version %s)\n", NW_VERSION);
            result = NW_CLI_EXIT_OK;
            break;
        }
        if (c == '?' || c == ':') {
            const char *arg = argv[optind - 1];
            fputs(usage_line, errout);
            if (c == ':') {
                fprintf(errout, "narwhal: error: argument %s: expected one "
                                "argument\n", arg);
            } else {
                fprintf(errout, "narwhal: error: unrecognized arguments: %s "
                                "(see narwhal --help)\n", arg);
            }
            result = NW_CLI_USAGE;
            break;
        }
        if (c >= OPT_BASE && c < OPT_HELP) {
            d = &nw__setting_defs[c - OPT_BASE];
        } else {
            for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
                if (nw__setting_defs[i].short_flag == c) {
                    d = &nw__setting_defs[i];
                }
            }
        }
        if (d == NULL) {
            continue;
        }
        if (nw__setting_set(s, d, d->type != NW_T_BOOL ? optarg
                                  /* --no-sendfile turns sendfile off */
                                  : strncmp(d->long_flags, "no-", 3) == 0
                                      ? "false"
                                      : "true",
                            NW_SRC_CLI, err, sizeof(err)) != NW_OK) {
            char names[96];
            flag_names(d, names, sizeof(names));
            fputs(usage_line, errout);
            fprintf(errout, "narwhal: error: argument %s: %s\n", names, err);
            result = NW_CLI_USAGE;
        }
    }
    if (result == NW_CLI_RUN && optind < argc) {
        if (argc - optind > 1) {
            fputs(usage_line, errout);
            fprintf(errout, "narwhal: error: unrecognized arguments: %s "
                            "(only one APP_MODULE)\n", argv[optind + 1]);
            result = NW_CLI_USAGE;
        } else {
            free(s->app_module);
            s->app_module = nw__xstrdup(argv[optind]);
        }
    }
    for (size_t i = 0; i < k; i++) {
        free((char *) longopts[i].name);
    }
    free(longopts);
    return result;
}
