#include "config.h"

#include <stdio.h>
#include <string.h>

#include <narwhal/version.h>

#include "config/settings.h"
#include "config/settings_doc.h"

static const char *const type_names[] = {
    [NW_T_INT] = "int",          [NW_T_DURATION] = "duration",
    [NW_T_BOOL] = "bool",        [NW_T_STR] = "string",
    [NW_T_CHOICE] = "choice",    [NW_T_LIST] = "list",
    [NW_T_CSV] = "list",         [NW_T_DICT] = "dict",
    [NW_T_CALLABLE] = "callable", [NW_T_PYOBJ] = "dict",
};

static const char *const check_names[] = {
    [NW_CHECK_NONE] = "",          [NW_CHECK_BIND] = "address",
    [NW_CHECK_DIR] = "path",       [NW_CHECK_FILE] = "file",
    [NW_CHECK_KEYVAL] = "keyval",  [NW_CHECK_APPSPEC] = "appspec",
    [NW_CHECK_NETWORK] = "network", [NW_CHECK_STATSD] = "statsd",
    [NW_CHECK_SYSLOG] = "syslog",  [NW_CHECK_USER] = "user",
    [NW_CHECK_GROUP] = "group",
};

/* The default as the docs show it. */
static const char *
doc_default(const nw_setting_def *d, char *buf, size_t len)
{
    if (d->doc_default != NULL) {
        return d->doc_default;
    }
    switch (d->type) {
    case NW_T_BOOL:
        return strcmp(d->default_value, "true") == 0 ? "True" : "False";
    case NW_T_CALLABLE:
        return "no-op";
    case NW_T_LIST:
        if (d->default_value == NULL) {
            return "[]";
        }
        snprintf(buf, len, "%s", d->default_value);
        return buf;
    case NW_T_STR:
        if (d->default_value != NULL && d->default_value[0] == '\0') {
            return "''";
        }
        /* fall through */
    default:
        return d->default_value ? d->default_value : "None";
    }
}

/* ------------------------------------------------------------------ */
/* Markdown */

static void
md_flags(const nw_setting_def *d, FILE *out)
{
    const char *p = d->long_flags;
    const char *meta = d->type == NW_T_BOOL ? NULL : d->meta;
    int first = 1;

    if (d->short_flag) {
        fprintf(out, "`-%c%s%s`", d->short_flag, meta ? " " : "",
                meta ? meta : "");
        first = 0;
    }
    while (p != NULL && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen(p);
        fprintf(out, "%s`--%.*s%s%s%s%s`", first ? "" : ", ", (int) n, p,
                meta ? " " : "", (d->flags & NW_F_OPTARG) ? "[" : "",
                meta ? meta : "", (d->flags & NW_F_OPTARG) ? "]" : "");
        first = 0;
        p = bar ? bar + 1 : NULL;
    }
    if (first) {
        fputs(d->type == NW_T_CALLABLE ? "config file only: `def "
                                       : "config file only",
              out);
        if (d->type == NW_T_CALLABLE) {
            fprintf(out, "%s(%s)`", d->name, d->meta);
        }
    }
}

static void
md_anchor(const char *section, FILE *out)
{
    for (const char *p = section; *p; p++) {
        if (*p == ' ') {
            fputc('-', out);
        } else if (*p != '/') {
            fputc(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p, out);
        }
    }
}

static const char md_intro[] =
    "# narwhal settings\n"
    "\n"
    "<!-- Generated from src/config/settings.def by `narwhal "
    "--dump-settings=markdown`;\n"
    "     do not edit: `make update-docs` rewrites it, and `make check` "
    "fails when\n"
    "     it is stale. -->\n"
    "\n"
    "Every setting is Gunicorn's: the same name, command-line flags, "
    "default and\n"
    "meaning, so a Gunicorn command line and `gunicorn.conf.py` work "
    "unchanged.\n"
    "Rows marked *narwhal* are narwhal's own.\n"
    "\n"
    "## Where settings come from\n"
    "\n"
    "Later sources win: **defaults < config file < `GUNICORN_CMD_ARGS` < "
    "`NARWHAL_CMD_ARGS` < command line**.\n"
    "\n"
    "- **Defaults**, some from the environment as Gunicorn does: `PORT` "
    "(bind),\n"
    "  `WEB_CONCURRENCY` (workers), `FORWARDED_ALLOW_IPS`, `SENDFILE`.\n"
    "- **Config file**: `-c PATH`, `-c file:PATH` or `-c python:MODULE`, "
    "from the\n"
    "  command line or else from the environment variables below; "
    "without `-c`,\n"
    "  `./narwhal.conf.py` if it exists, else `./gunicorn.conf.py`.\n"
    "  - A *Python* file (any name but `.ini`/`.cfg`) is run by the "
    "interpreter\n"
    "    narwhal embeds, in the master process, exactly as Gunicorn runs "
    "it (a\n"
    "    module named `__config__` with `__file__` set, not imported); "
    "`python:MODULE`\n"
    "    imports MODULE.  Every module-level name that is a setting is "
    "read and\n"
    "    checked; other names are ignored, but a name a typo away from a "
    "setting\n"
    "    (`wokers`) gets a warning: `did you mean 'workers'?`.  Hooks are "
    "functions\n"
    "    named after the hook (or `\"module.function\"` strings); their "
    "number of\n"
    "    positional parameters is checked as Gunicorn checks it.\n"
    "  - An *INI* file (`.ini` or `.cfg`) holds the same names in a "
    "`[narwhal]` (or\n"
    "    `[gunicorn]`) section; other sections are ignored.  Lists are "
    "comma-separated\n"
    "    (or whitespace-separated when there is no comma), and a repeated "
    "key adds\n"
    "    to a list; booleans are true/false/yes/no/on/off/1/0; durations "
    "are whole\n"
    "    seconds (`30` or `30s`); hooks are `module:callable` strings; "
    "surrounding\n"
    "    quotes are removed.  An unknown key is an error; `-` and `_` are "
    "the same\n"
    "    in names.  Lines are at most 199 characters (inih).\n"
    "- **`GUNICORN_CMD_ARGS`** and **`NARWHAL_CMD_ARGS`**: more "
    "command-line options,\n"
    "  split as a POSIX shell would (Python's `shlex.split`).\n"
    "- **Command line**: `narwhal [OPTIONS] [APP_MODULE]`.  Without "
    "`APP_MODULE`,\n"
    "  `wsgi_app` from the config file names the app.\n"
    "\n"
    "A bad value stops narwhal with one line naming the setting, the "
    "value and\n"
    "where it came from (`Error: narwhal.ini:3: workers: invalid int "
    "value: 'many'`),\n"
    "exit code 1; on the command line or in the environment variables "
    "it is a\n"
    "usage error, exit code 2 (see [exit-codes.md](exit-codes.md)).\n"
    "\n"
    "`--print-config` prints every setting as Gunicorn does (`name = "
    "value`, sorted)\n"
    "and then checks like `--check-config`, which loads the config, the "
    "worker class\n"
    "and the app, and exits 0, or 1 with the reason.\n"
    "\n"
    "Each setting below says its flags, type and default.  Some are "
    "marked:\n"
    "\n"
    "- **Not implemented yet**: accepted and checked, but it has no "
    "effect in this\n"
    "  version; narwhal logs a warning when it is set.\n"
    "- **No effect**: accepted by design, with a warning saying why.\n"
    "- **Not supported**: a Gunicorn feature narwhal does not have: any "
    "value but\n"
    "  the default is an error saying why.\n"
    "\n"
    "Server hooks given in a config file are checked and kept in the "
    "master's\n"
    "`nw_settings` (`src/config/settings.h`, `nw_pyref`: the Python callable "
    "and its\n"
    "arity); the hooks module calls them.\n";

static void
md_dump(FILE *out)
{
    const char *section = NULL;
    char buf[256];

    fputs(md_intro, out);
    fputs("\n## Sections\n\n", out);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "- [%s](#", section);
            md_anchor(section, out);
            fputs(")\n", out);
        }
    }
    section = NULL;
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "\n## %s\n", section);
        }
        fprintf(out, "\n### `%s`%s\n\n", d->name,
                (d->flags & NW_F_NARWHAL) ? " (narwhal)" : "");
        md_flags(d, out);
        fprintf(out, " · %s", type_names[d->type]);
        if (d->type == NW_T_CHOICE) {
            fputs(" (", out);
            for (const char *p = d->choices; *p; p++) {
                if (*p == '|') {
                    fputs(", ", out);
                } else {
                    fputc(*p, out);
                }
            }
            fputc(')', out);
        }
        /* a computed default is prose, a fixed one is code */
        fprintf(out, d->doc_default ? " · default: %s\n\n%s\n"
                                    : " · default: `%s`\n\n%s\n",
                doc_default(d, buf, sizeof(buf)), d->help);
        if (d->flags & NW_F_REFUSED) {
            fprintf(out, "\n**Not supported**: %s.\n", d->note);
        } else if (d->flags & NW_F_NOOP) {
            fprintf(out, "\n**No effect**: %s.\n", d->note);
        } else if (d->flags & NW_F_PENDING) {
            fputs("\n**Not implemented yet**: accepted and checked; it has "
                  "no effect in this version.\n",
                  out);
        }
    }
}

/* ------------------------------------------------------------------ */
/* roff */

static void
man_text(const char *s, FILE *out)
{
    int bol = 1;

    for (const char *p = s; *p; p++) {
        if (bol && (*p == '.' || *p == '\'')) {
            fputs("\\&", out);
        }
        bol = *p == '\n';
        if (*p == '\\') {
            fputs("\\e", out);
        } else if (*p == '-') {
            fputs("\\-", out);
        } else {
            fputc(*p, out);
        }
    }
}

static void
man_flags(const nw_setting_def *d, FILE *out)
{
    const char *p = d->long_flags;
    const char *meta = d->type == NW_T_BOOL ? NULL : d->meta;
    int first = 1;

    fputs(".TP\n", out);
    if (d->short_flag) {
        fprintf(out, "\\fB\\-%c\\fR", d->short_flag);
        if (meta) {
            fputs(" \\fI", out);
            man_text(meta, out);
            fputs("\\fR", out);
        }
        first = 0;
    }
    while (p != NULL && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen(p);
        char flag[80];
        snprintf(flag, sizeof(flag), "%.*s", (int) n, p);
        fputs(first ? "\\fB\\-\\-" : ", \\fB\\-\\-", out);
        man_text(flag, out);
        fputs("\\fR", out);
        if (meta) {
            fputs((d->flags & NW_F_OPTARG) ? " [\\fI" : " \\fI", out);
            man_text(meta, out);
            fputs((d->flags & NW_F_OPTARG) ? "\\fR]" : "\\fR", out);
        }
        first = 0;
        p = bar ? bar + 1 : NULL;
    }
    fputc('\n', out);
}

static const char man_head[] =
    ".TH NARWHAL 1 \"\" \"narwhal " NW_VERSION "\" \"User Commands\"\n"
    ".\\\" Generated from src/config/settings.def by narwhal "
    "\\-\\-dump\\-settings=man; do not edit.\n"
    ".SH NAME\n"
    "narwhal \\- a pre\\-fork WSGI HTTP server with Gunicorn's command "
    "line\n"
    ".SH SYNOPSIS\n"
    ".B narwhal\n"
    "[\\fIOPTIONS\\fR] [\\fIAPP_MODULE\\fR]\n"
    ".SH DESCRIPTION\n"
    "\\fBnarwhal\\fR is a pre\\-fork WSGI HTTP server written in C: a "
    "master process binds\n"
    "the sockets and keeps worker processes running, each with an "
    "embedded CPython\n"
    "serving the app.  Its settings, signals and log lines are "
    "Gunicorn's: replace\n"
    "\\fBgunicorn\\fR with \\fBnarwhal\\fR on a command line.\n"
    ".PP\n"
    "\\fIAPP_MODULE\\fR is \\fIMODULE\\fR[:\\fIVARIABLE\\fR] (the "
    "variable defaults to\n"
    "\\fBapplication\\fR) or \\fIMODULE\\fR:\\fIFACTORY\\fR(\\fIARGS\\fR)"
    " with literal arguments.\n"
    ".PP\n"
    "Settings come from, lowest precedence first: defaults (some from "
    "the\n"
    "environment), a config file, \\fBGUNICORN_CMD_ARGS\\fR, "
    "\\fBNARWHAL_CMD_ARGS\\fR and the\n"
    "command line.  Settings without a flag (server hooks, "
    "\\fBwsgi_app\\fR, ...) are set in\n"
    "a config file.\n"
    ".SH OPTIONS\n"
    ".TP\n"
    "\\fB\\-h\\fR, \\fB\\-\\-help\\fR\n"
    "Show the options and exit.\n"
    ".TP\n"
    "\\fB\\-v\\fR, \\fB\\-\\-version\\fR\n"
    "Show the version and exit.\n";

static const char man_tail[] =
    ".SH CONFIGURATION FILES\n"
    "\\fB\\-c\\fR \\fIPATH\\fR, \\fBfile:\\fR\\fIPATH\\fR or "
    "\\fBpython:\\fR\\fIMODULE\\fR.  Without \\fB\\-c\\fR, "
    "\\fI./narwhal.conf.py\\fR if it\n"
    "exists, else \\fI./gunicorn.conf.py\\fR.\n"
    ".PP\n"
    "A Python file is run in the master by the embedded interpreter, as "
    "Gunicorn runs\n"
    "it: every module\\-level name that is a setting is read; hooks are "
    "functions named\n"
    "after the hook.  A file ending in \\fI.ini\\fR or \\fI.cfg\\fR is "
    "read as INI: the\n"
    "same names in a \\fB[narwhal]\\fR (or \\fB[gunicorn]\\fR) "
    "section, lists comma\\-separated,\n"
    "hooks as \\fImodule\\fR:\\fIcallable\\fR.\n"
    ".SH ENVIRONMENT\n"
    ".TP\n"
    ".B NARWHAL_CMD_ARGS, GUNICORN_CMD_ARGS\n"
    "More options, split as a shell would; the command line wins over "
    "them.\n"
    ".TP\n"
    ".B PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, SENDFILE\n"
    "Defaults of \\fBbind\\fR (0.0.0.0:$PORT), \\fBworkers\\fR, "
    "\\fBforwarded_allow_ips\\fR and \\fBsendfile\\fR.\n"
    ".TP\n"
    ".B NARWHAL_PLUGIN_PATH\n"
    "More directories searched for worker plugins.\n"
    ".SH EXIT STATUS\n"
    "0 stopped as asked (or \\fB\\-\\-check\\-config\\fR passed); 1 a "
    "bad setting, socket, plugin\n"
    "or start\\-up problem; 2 a bad command line; 3 a worker failed to "
    "boot; 4 the app\n"
    "failed to load.\n"
    ".SH SEE ALSO\n"
    "\\fBgunicorn\\fR(1); doc/settings.md (every setting, with its "
    "config\\-file name),\n"
    "doc/exit\\-codes.md and doc/plugins.md in the source tree.\n";

static void
man_dump(FILE *out)
{
    const char *section = NULL;
    char buf[256];

    fputs(man_head, out);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        if (d->long_flags == NULL || (d->flags & NW_F_REFUSED)) {
            continue;
        }
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fputs(".SS \"", out);
            man_text(section, out);
            fputs("\"\n", out);
        }
        man_flags(d, out);
        man_text(d->help, out);
        fputs(" (\\fB", out);
        man_text(d->name, out);
        fputs("\\fR; default: ", out);
        man_text(doc_default(d, buf, sizeof(buf)), out);
        fputs(")", out);
        if (d->flags & NW_F_NOOP) {
            fputs(" No effect: ", out);
            man_text(d->note, out);
            fputc('.', out);
        } else if (d->flags & NW_F_PENDING) {
            fputs(" Not implemented yet.", out);
        }
        fputc('\n', out);
    }
    fputs(".SS \"Refused Gunicorn options\"\n"
          "These parse, and any value but the default stops narwhal with "
          "the reason:\n",
          out);
    {
        int first = 1;
        for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
            const nw_setting_def *d = &nw__setting_defs[i];
            const char *p = d->long_flags;
            if (p == NULL || !(d->flags & NW_F_REFUSED)) {
                continue;
            }
            while (*p) {
                const char *bar = strchr(p, '|');
                size_t n = bar ? (size_t) (bar - p) : strlen(p);
                char flag[80];
                snprintf(flag, sizeof(flag), "%.*s", (int) n, p);
                fputs(first ? "\\fB\\-\\-" : ", \\fB\\-\\-", out);
                man_text(flag, out);
                fputs("\\fR", out);
                first = 0;
                p = bar ? bar + 1 : p + n;
            }
        }
        fputs(".\n", out);
    }
    fputs(man_tail, out);
}

/* ------------------------------------------------------------------ */
/* JSON, for the tests */

static void
json_str(const char *s, FILE *out)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', out);
            fputc(*p, out);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void
json_split(const char *s, FILE *out)
{
    fputc('[', out);
    while (s != NULL && *s) {
        const char *bar = strchr(s, '|');
        size_t n = bar ? (size_t) (bar - s) : strlen(s);
        fprintf(out, "\"%.*s\"%s", (int) n, s, bar ? ", " : "");
        s = bar ? bar + 1 : NULL;
    }
    fputc(']', out);
}

static void
json_dump(FILE *out)
{
    static const struct {
        unsigned bit;
        const char *name;
    } flag_names[] = {
        {NW_F_PENDING, "pending"},         {NW_F_NOOP, "noop"},
        {NW_F_REFUSED, "refused"},         {NW_F_STORE_FALSE, "store_false"},
        {NW_F_OPTARG, "optarg"},           {NW_F_AUTOBASE, "autobase"},
        {NW_F_ICASE, "icase"},             {NW_F_NARWHAL, "narwhal"},
    };

    fputs("[\n", out);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        int first = 1;
        char sflag[2] = {(char) d->short_flag, '\0'};

        fputs(" {\"name\": ", out);
        json_str(d->name, out);
        fputs(", \"type\": ", out);
        json_str(d->type == NW_T_CSV ? "csv"
                 : d->type == NW_T_PYOBJ ? "pyobj"
                                         : type_names[d->type],
                 out);
        fputs(", \"section\": ", out);
        json_str(d->section, out);
        fputs(", \"short\": ", out);
        json_str(d->short_flag ? sflag : NULL, out);
        fputs(", \"long\": ", out);
        json_split(d->long_flags, out);
        fputs(", \"default\": ", out);
        json_str(d->default_value, out);
        fprintf(out, ", \"min\": %lld, \"max\": %lld, \"choices\": ", d->min,
                d->max);
        json_split(d->choices, out);
        fputs(", \"check\": ", out);
        json_str(check_names[d->check], out);
        fputs(", \"flags\": [", out);
        for (size_t f = 0; f < sizeof(flag_names) / sizeof(flag_names[0]);
             f++) {
            if (d->flags & flag_names[f].bit) {
                fprintf(out, "%s\"%s\"", first ? "" : ", ",
                        flag_names[f].name);
                first = 0;
            }
        }
        fputs("]}", out);
        fputs(i + 1 < NW_SETTING_COUNT ? ",\n" : "\n", out);
    }
    fputs("]\n", out);
}

int
nw__settings_dump(const char *format, FILE *out)
{
    if (strcmp(format, "markdown") == 0) {
        md_dump(out);
    } else if (strcmp(format, "man") == 0) {
        man_dump(out);
    } else if (strcmp(format, "json") == 0) {
        json_dump(out);
    } else {
        return NW_ERROR;
    }
    return NW_OK;
}
