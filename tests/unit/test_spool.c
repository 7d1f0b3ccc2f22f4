/* The request-body spool: memory up to a threshold, then an unlinked
   file in tmp_upload_dir; read back in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include <narwhal/api.h>

#include "conn/spool.h"

static int
dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void
roundtrip(size_t threshold, const char *dir)
{
    nw_spool s;
    char err[256];
    static char data[300000], back[300000];
    size_t off = 0, got = 0;

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (char) (i * 7 + i / 251);
    }
    nw__spool_init(&s, threshold, dir);
    /* some by reserve/commit, some by write, in odd sizes */
    while (off < sizeof(data)) {
        size_t room, n = 1 + (off % 9000);
        char *dst = nw__spool_reserve(&s, &room);
        if (n > sizeof(data) - off) {
            n = sizeof(data) - off;
        }
        if (dst != NULL && (off / 9000) % 2 == 0) {
            if (n > room) {
                n = room;
            }
            memcpy(dst, data + off, n);
            nw__spool_commit(&s, n);
        } else {
            assert_int_equal(nw__spool_write(&s, data + off, n, err,
                                             sizeof(err)),
                             NW_OK);
        }
        off += n;
    }
    assert_int_equal(s.size, sizeof(data));
    assert_int_equal(nw__spool_on_disk(&s), threshold < sizeof(data));
    assert_true(s.mem_len <= threshold);
    for (;;) {
        ssize_t n = nw__spool_read(&s, back + got,
                                   got % 2 ? 4097 : 65536);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        got += (size_t) n;
    }
    assert_int_equal(got, sizeof(data));
    assert_memory_equal(back, data, sizeof(data));
    /* reset for the next request: empty, file gone */
    nw__spool_reset(&s);
    assert_int_equal(s.size, 0);
    assert_false(nw__spool_on_disk(&s));
    assert_int_equal(nw__spool_read(&s, back, 10), 0);
    nw__spool_free(&s);
}

static void
test_memory_only(void **state)
{
    (void) state;
    roundtrip(1024 * 1024, NULL);
}

static void
test_spills_to_a_file_that_leaves_no_trace(void **state)
{
    char dir[] = "/tmp/nw-spool-XXXXXX";
    (void) state;

    assert_non_null(mkdtemp(dir));
    roundtrip(64 * 1024, dir);
    roundtrip(0, dir);
    assert_int_equal(dir_entries(dir), 0);
    rmdir(dir);
}

static void
test_unwritable_dir(void **state)
{
    nw_spool s;
    char err[256];
    (void) state;

    nw__spool_init(&s, 4, "/nonexistent/narwhal");
    assert_int_equal(nw__spool_write(&s, "abc", 3, err, sizeof(err)), NW_OK);
    assert_int_equal(nw__spool_write(&s, "defgh", 5, err, sizeof(err)),
                     NW_ERROR);
    assert_non_null(strstr(err, "/nonexistent/narwhal (tmp_upload_dir)"));
    nw__spool_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_spills_to_a_file_that_leaves_no_trace),
        cmocka_unit_test(test_unwritable_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
