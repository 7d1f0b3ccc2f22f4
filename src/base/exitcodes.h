/* narwhal's exit codes (doc/exit-codes.md); 3 and 4 are Gunicorn's. */
#ifndef NW_EXITCODES_H
#define NW_EXITCODES_H

#define NW_EXIT_OK          0 /* stopped as asked */
#define NW_EXIT_CONFIG      1 /* bad setting, socket, plugin or start-up */
#define NW_EXIT_USAGE       2 /* bad command line */
#define NW_EXIT_WORKER_BOOT 3 /* a worker failed to boot */
#define NW_EXIT_APP_LOAD    4 /* the app failed to load */

#endif
