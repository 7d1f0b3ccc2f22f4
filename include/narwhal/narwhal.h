/*
 * narwhal: the public headers, for worker and hook plugins.
 * Build flags: pkg-config --cflags narwhal.
 */
#ifndef NARWHAL_H
#define NARWHAL_H

#include "version.h"
#include "fingerprint.h"
#include "api.h"
#include "worker.h"
#include "hook.h"

#endif /* NARWHAL_H */
