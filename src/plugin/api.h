/* The nw_api table handed to plugins. */
#ifndef NW_CORE_API_H
#define NW_CORE_API_H

#include <narwhal/api.h>

extern const nw_api nw__api;

#endif
