/* The built-in `narwhal` Python module (the objects Python hooks get:
   server, worker, req, resp, cfg, log) and the built-in hook that calls
   the config file's Python hooks with Gunicorn's signatures. */
#ifndef NW_PYHOOKS_H
#define NW_PYHOOKS_H

/* Before Py_Initialize: make `import narwhal` find the module. */
void nw__pymodule_register(void);

/* A reaped worker's Python object is dropped (no-op without Python). */
void nw__py_forget_worker(unsigned number);

/* worker.c: this worker process as hooks see it (zeroes in the
   master). */
struct nw_hook_worker;
void nw__worker_hook_info(struct nw_hook_worker *hw);

#endif
