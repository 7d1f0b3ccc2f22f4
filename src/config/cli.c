#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <narwhal/version.h>

#include "config/cli.h"
#include "base/memory.h"
#include "config/settings_doc.h"

#define OPT_BASE 1000
#define OPT_HELP (OPT_BASE + NW_SETTING_COUNT)
#define OPT_VERSION (OPT_HELP + 1)
#define OPT_DUMP (OPT_HELP + 2)

static const char usage_line[] = "usage: narwhal [OPTIONS] [APP_MODULE]\n";

/* "-s/--long/--alias" spellings of one setting, for messages. */
void
nw__cli_flag_names(const nw_setting_def *d, char *buf, size_t len)
{
    size_t j = 0;
    const char *p = d->long_flags ? d->long_flags : "";

    buf[0] = '\0';
    if (d->short_flag) {
        j += (size_t) snprintf(buf, len, "-%c%s", d->short_flag,
                               *p ? "/" : "");
    }
    while (*p && j + 3 < len) {
        if (p == d->long_flags || p[-1] == '|') {
            buf[j++] = '-';
            buf[j++] = '-';
        }
        buf[j++] = *p == '|' ? '/' : *p;
        p++;
    }
    if (j > 0) {
        buf[j < len ? j : len - 1] = '\0';
    }
}

static size_t
count_long_flags(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const char *p = nw__setting_defs[i].long_flags;
        if (p == NULL) {
            continue;
        }
        n++;
        for (; *p; p++) {
            n += *p == '|';
        }
    }
    return n;
}

static void
help_default(const nw_setting_def *d, FILE *out)
{
    const char *v = d->doc_default ? d->doc_default : d->default_value;

    if (d->type == NW_T_BOOL && d->doc_default == NULL) {
        v = strcmp(d->default_value, "true") == 0 ? "True" : "False";
    }
    fprintf(out, " [%s]", v ? v : "None");
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
        int takes_arg = d->type != NW_T_BOOL;

        /* refused Gunicorn flags still parse (to say why they are
           refused) but are not offered; doc/settings.md lists them */
        if (p == NULL || (d->flags & NW_F_REFUSED)) {
            continue;
        }
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "\n%s:\n", section);
        }
        if (d->short_flag) {
            j += (size_t) snprintf(flags, sizeof(flags), "-%c%s%s, ",
                                   d->short_flag, takes_arg ? " " : "",
                                   takes_arg ? d->meta : "");
        }
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t) (bar - p) : strlen(p);
            j += (size_t) snprintf(flags + j, sizeof(flags) - j,
                                   "--%.*s%s%s%s%s%s", (int) n, p,
                                   takes_arg ? " " : "",
                                   (d->flags & NW_F_OPTARG) ? "[" : "",
                                   takes_arg ? d->meta : "",
                                   (d->flags & NW_F_OPTARG) ? "]" : "",
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
        help_default(d, out);
        fputc('\n', out);
    }
    fputs("\nSettings without a flag (hooks, wsgi_app, ...) are set in a "
          "config file (-c).\nThe environment variables NARWHAL_CMD_ARGS "
          "and GUNICORN_CMD_ARGS hold more\noptions; the command line "
          "wins over them, and they win over the config file.\nSee "
          "doc/settings.md or man narwhal for every setting.\n",
          out);
}

/* The long flag closest to an unknown "--spelling", or NULL. */
static const char *
suggest_flag(const char *arg, char *buf, size_t len)
{
    char name[80];
    size_t n, best_d;
    const char *best = NULL;

    if (strncmp(arg, "--", 2) != 0) {
        return NULL;
    }
    arg += 2;
    n = strcspn(arg, "=");
    if (n == 0 || n >= sizeof(name)) {
        return NULL;
    }
    memcpy(name, arg, n);
    name[n] = '\0';
    best_d = nw__suggest_limit(name) + 1;
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const char *p = nw__setting_defs[i].long_flags;
        while (p != NULL && *p) {
            const char *bar = strchr(p, '|');
            size_t m = bar ? (size_t) (bar - p) : strlen(p);
            char flag[80];
            size_t dist;
            snprintf(flag, sizeof(flag), "%.*s", (int) m, p);
            dist = nw__edit_distance(name, flag);
            if (dist < best_d && m + 3 <= len) {
                best_d = dist;
                buf[0] = buf[1] = '-';
                memcpy(buf + 2, p, m);
                buf[m + 2] = '\0';
                best = buf;
            }
            p = bar ? bar + 1 : NULL;
        }
    }
    return best;
}

static int
optarg_value(const nw_setting_def *d, const char *arg)
{
    static const char *bools[] = {"true", "false", "yes", "no", "on", "1",
                                  "0"};
    const char *p = d->choices;

    while (p != NULL && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen(p);
        if (strlen(arg) == n && strncasecmp(arg, p, n) == 0) {
            return 1;
        }
        p = bar ? bar + 1 : NULL;
    }
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        if (strcasecmp(arg, bools[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void
usage_error(FILE *errout, const char *label, const char *fmt, const char *a,
            const char *b)
{
    fputs(usage_line, errout);
    fputs("narwhal: error: ", errout);
    if (label != NULL) {
        fprintf(errout, "%s: ", label);
    }
    fprintf(errout, fmt, a, b);
    fputc('\n', errout);
}

enum nw_cli_result
nw__cli_parse(nw_settings *s, int argc, char **argv,
              enum nw_setting_source src, const char *label, FILE *out,
              FILE *errout)
{
    size_t nlong = count_long_flags() + 3;
    struct option *longopts = nw__xcalloc(nlong + 1, sizeof(*longopts));
    char shortopts[2 * NW_SETTING_COUNT + 8];
    size_t k = 0, j = 0;
    enum nw_cli_result result = NW_CLI_RUN;
    const char *origin = label ? label : "command line";
    char err[512], names[96];
    int c;

    shortopts[j++] = ':'; /* report a missing argument as ':' */
    shortopts[j++] = 'h';
    shortopts[j++] = 'v';
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        const char *p = d->long_flags;
        int has_arg = d->type == NW_T_BOOL         ? no_argument
                      : (d->flags & NW_F_OPTARG) ? optional_argument
                                                  : required_argument;

        while (p != NULL && *p) {
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
    /* hidden: the docs generator (doc/settings.md, doc/narwhal.1) */
    longopts[k].name = nw__xstrdup("dump-settings");
    longopts[k].has_arg = required_argument;
    longopts[k++].val = OPT_DUMP;

    opterr = 0;
    optind = 0; /* GNU getopt: start afresh (it is used more than once) */
    while (result == NW_CLI_RUN
           && (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const nw_setting_def *d = NULL;
        const char *value;

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
        if (c == OPT_DUMP) {
            if (nw__settings_dump(optarg, out) != NW_OK) {
                usage_error(errout, label,
                            "argument --dump-settings: invalid choice: "
                            "'%s' (choose from %s)",
                            optarg, "markdown, man, json");
                result = NW_CLI_USAGE;
            } else {
                result = NW_CLI_EXIT_OK;
            }
            break;
        }
        if (c == '?' || c == ':') {
            const char *arg = argv[optind - 1];
            if (c == ':' && optopt >= OPT_BASE && optopt < OPT_HELP) {
                nw__cli_flag_names(&nw__setting_defs[optopt - OPT_BASE],
                                   names, sizeof(names));
                usage_error(errout, label,
                            "argument %s: expected one argument%s", names,
                            "");
            } else if (c == ':') {
                usage_error(errout, label,
                            "argument %s: expected one argument%s", arg, "");
            } else {
                char near_buf[80], hint[112];
                const char *near = suggest_flag(arg, near_buf,
                                                sizeof(near_buf));
                if (near != NULL) {
                    snprintf(hint, sizeof(hint), " (did you mean %s?)",
                             near);
                } else {
                    snprintf(hint, sizeof(hint), " (see narwhal --help)");
                }
                if (optopt != 0 && optopt < 256
                    && strncmp(arg, "--", 2) != 0) {
                    char one[3] = {'-', (char) optopt, '\0'};
                    usage_error(errout, label,
                                "unrecognized arguments: %s%s", one, hint);
                } else {
                    usage_error(errout, label,
                                "unrecognized arguments: %s%s", arg, hint);
                }
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
        if (d->type == NW_T_BOOL) {
            value = (d->flags & NW_F_STORE_FALSE) ? "false" : "true";
        } else if ((d->flags & NW_F_OPTARG) && optarg == NULL) {
            /* --proxy-protocol [MODE]: takes the next word only if it is
               a mode, so `--proxy-protocol app:app` keeps the app */
            if (optind < argc && optarg_value(d, argv[optind])) {
                value = argv[optind++];
            } else {
                value = "auto";
            }
        } else {
            value = optarg;
        }
        if (nw__setting_set(s, d, value, src, origin, err, sizeof(err))
            != NW_OK) {
            nw__cli_flag_names(d, names, sizeof(names));
            usage_error(errout, label, "argument %s: %s", names, err);
            result = NW_CLI_USAGE;
        }
    }
    if (result == NW_CLI_RUN && optind < argc) {
        if (label != NULL) {
            usage_error(errout, label,
                        "'%s': give APP_MODULE on the command line (or as "
                        "wsgi_app in a config file)%s",
                        argv[optind], "");
            result = NW_CLI_USAGE;
        } else if (argc - optind > 1) {
            usage_error(errout, label,
                        "unrecognized arguments: %s%s", argv[optind + 1],
                        " (only one APP_MODULE)");
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

/* ------------------------------------------------------------------ */
/* Python's shlex.split() (POSIX mode, no comments), for the *_CMD_ARGS
   environment variables. */

static void
push(char ***argv, int *argc, char **word, size_t *len, size_t *cap)
{
    *argv = nw__xrealloc(*argv, (size_t) (*argc + 2) * sizeof(char *));
    (*argv)[(*argc)++] = *word;
    (*argv)[*argc] = NULL;
    *word = NULL;
    *len = *cap = 0;
}

static void
add(char **word, size_t *len, size_t *cap, char ch)
{
    if (*len + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *word = nw__xrealloc(*word, *cap);
    }
    (*word)[(*len)++] = ch;
    (*word)[*len] = '\0';
}

int
nw__shlex_split(const char *text, int *argc_out, char ***argv_out, char *err,
                size_t errlen)
{
    char **argv = NULL;
    int argc = 0;
    char *word = NULL;
    size_t len = 0, cap = 0;
    int in_word = 0;
    const char *p = text;

    argv = nw__xcalloc(2, sizeof(char *));
    argv[argc++] = nw__xstrdup("narwhal");
    while (*p) {
        char ch = *p++;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (in_word) {
                push(&argv, &argc, &word, &len, &cap);
                in_word = 0;
            }
            continue;
        }
        if (!in_word) {
            /* a word starts, possibly an empty one: '' */
            in_word = 1;
            cap = 16;
            word = nw__xmalloc(cap);
            word[0] = '\0';
        }
        if (ch == '\'') {
            while (*p && *p != '\'') {
                add(&word, &len, &cap, *p++);
            }
            if (*p != '\'') {
                goto unclosed;
            }
            p++;
        } else if (ch == '"') {
            while (*p && *p != '"') {
                if (*p == '\\'
                    && (p[1] == '\\' || p[1] == '"' || p[1] == '$'
                        || p[1] == '`')) {
                    p++;
                } else if (*p == '\\' && p[1] == '\n') {
                    p += 2;
                    continue;
                }
                add(&word, &len, &cap, *p++);
            }
            if (*p != '"') {
                goto unclosed;
            }
            p++;
        } else if (ch == '\\') {
            if (*p == '\0') {
                snprintf(err, errlen, "no escaped character after '\\'");
                goto fail;
            }
            if (*p != '\n') {
                add(&word, &len, &cap, *p);
            }
            p++;
        } else {
            add(&word, &len, &cap, ch);
        }
    }
    if (in_word) {
        push(&argv, &argc, &word, &len, &cap);
    }
    *argc_out = argc;
    *argv_out = argv;
    return NW_OK;

unclosed:
    snprintf(err, errlen, "no closing quotation");
fail:
    free(word);
    nw__argv_free(argc, argv);
    return NW_ERROR;
}

void
nw__argv_free(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        free(argv[i]);
    }
    free(argv);
}
