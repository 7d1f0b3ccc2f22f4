/* The APP_MODULE argument: MODULE[:EXPR], EXPR a name or a call with
   literal arguments (Gunicorn's util.import_app). */
#ifndef NW_APPSPEC_H
#define NW_APPSPEC_H

#include <stddef.h>

typedef struct nw_appspec {
    char module[512]; /* dotted module name */
    char name[256];   /* variable or factory name; default "application" */
    int is_call;      /* EXPR was NAME(...) */
    char args[1024];  /* the text between the parentheses */
} nw_appspec;

int nw__appspec_parse(const char *spec, nw_appspec *out, char *err,
                      size_t errlen);

#endif
