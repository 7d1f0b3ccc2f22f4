/*
 * make check: run the fuzz target over its seed corpus and the regression
 * corpus (every input that ever crashed it), in a normal build.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        exit(1);
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        FILE *f;
        uint8_t *buf;
        long len;

        if (e->d_name[0] == '.' || strcmp(e->d_name, "README") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            exit(1);
        }
        rewind(f);
        buf = malloc((size_t) len + 1);
        if (fread(buf, 1, (size_t) len, f) != (size_t) len) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            exit(1);
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

int
main(int argc, char **argv)
{
    const char *src = getenv("NARWHAL_SRCDIR");
    char dir[4096];
    int n = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            n += replay_dir(argv[i]);
        }
    } else {
        if (src == NULL) {
            src = ".";
        }
        snprintf(dir, sizeof(dir), "%s/tests/fuzz/seeds", src);
        n += replay_dir(dir);
        snprintf(dir, sizeof(dir), "%s/tests/fuzz/regressions", src);
        n += replay_dir(dir);
    }
    printf("replayed %d inputs\n", n);
    return n > 0 ? 0 : 1;
}
