/* core/: capped buffers, the line framer, the clock, base64 (url-safe and strict standard),
 * HMAC-SHA256 test vectors, constant-time equality, and the worker pool growing when its jobs
 * block. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/lines.h"
#include "core/pool.h"

static void test_buf_cap(void **state)
{
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append_str(&b, "12345"), 0);
    assert_int_equal(buf_append_str(&b, "67890"), 0);
    assert_int_equal(buf_append_str(&b, "x"), ERR_TOOBIG); /* past the cap: refused, unchanged */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    buf_consume(&b, 4);
    assert_string_equal(b.data, "567890");
    assert_int_equal(buf_printf(&b, "%d", 1234), 0);
    assert_int_equal(buf_printf(&b, "%d", 5), ERR_TOOBIG);
    size_t n;
    char *s = buf_steal(&b, &n);
    assert_int_equal(n, 10);
    assert_string_equal(s, "5678901234");
    free(s);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_b64url(void **state)
{
    /* RFC 4648 section 10 vectors, without padding. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = b64url_encode(plain[i], strlen(plain[i]));
        assert_string_equal(e, enc[i]);
        unsigned char *d;
        size_t dl;
        assert_int_equal(b64url_decode(e, strlen(e), &d, &dl), 0);
        assert_int_equal(dl, strlen(plain[i]));
        assert_memory_equal(d, plain[i], dl);
        free(d);
        free(e);
    }
    unsigned char *d;
    size_t dl;
    assert_int_equal(b64url_decode("Zm9v+", 5, &d, &dl), ERR_PARSE); /* not url-safe */
    assert_int_equal(b64url_decode("Zh", 2, &d, &dl), ERR_PARSE);    /* stray low bits */
    assert_int_equal(b64url_decode("Z", 1, &d, &dl), ERR_PARSE);     /* impossible length */
    assert_int_equal(b64url_decode("_-8", 3, &d, &dl), 0);           /* 0xff 0xef */
    assert_int_equal(d[0], 0xff);
    free(d);
}

static void test_b64_strict(void **state)
{
    unsigned char *d;
    size_t dl;
    assert_int_equal(b64_decode_strict("SGVsbG8=", 8, &d, &dl), 0);
    assert_int_equal(dl, 5);
    assert_memory_equal(d, "Hello", 5);
    free(d);
    assert_int_equal(b64_decode_strict("+/+/", 4, &d, &dl), 0);
    free(d);
    static const char *const bad[] = {
        "SGVsbG8", "SGVs!!!bG8=", "SGVsbG8-", "SG=sbG8=", "SGVsbG9=" /* stray bits */, "S==="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (b64_decode_strict(bad[i], strlen(bad[i]), &d, &dl) == 0)
            fail_msg("'%s' was accepted", bad[i]);
    }
}

static void test_hmac_rfc4231(void **state)
{
    /* RFC 4231 test case 2. */
    unsigned char mac[32];
    assert_int_equal(crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    static const unsigned char want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                           0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                           0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                           0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(mac, want, 32);
    assert_true(crypto_equal(mac, want, 32));
    unsigned char other[32];
    memcpy(other, want, 32);
    other[31] ^= 1;
    assert_false(crypto_equal(mac, other, 32));
    char *t1 = crypto_random_token(16), *t2 = crypto_random_token(16);
    assert_int_equal(strlen(t1), 22);
    assert_string_not_equal(t1, t2);
    free(t1);
    free(t2);
}

struct blocker {
    struct pool *p;
    atomic_int started, release, done;
};

static void blocking_job(void *arg)
{
    struct blocker *b = arg;
    atomic_fetch_add(&b->started, 1);
    pool_block_enter(b->p);
    while (!atomic_load(&b->release))
        usleep(1000);
    pool_block_exit(b->p);
    atomic_fetch_add(&b->done, 1);
}

static void quick_job(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* ---- core/lines: the stdio framer, fed in every split ---- */

struct got {
    char out[512];
    size_t n;
    int too_long;
};

static void on_line(void *arg, const char *line, size_t len)
{
    struct got *g = arg;
    if (line == NULL) {
        g->too_long++;
        return;
    }
    g->n += (size_t)snprintf(g->out + g->n, sizeof g->out - g->n, "[%.*s]", (int)len, line);
}

static void test_lines(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t max;
        const char *want;
        int too_long;
    } cases[] = {
        {"a\nbc\n", 16, "[a][bc]", 0},
        {"a\r\nb\n\n\r\nc", 16, "[a][b]", 0}, /* CRLF, empty lines, an unfinished one */
        {"0123456789\nok\n", 4, "[ok]", 1},   /* too long: reported once, skipped */
        {"0123456789abcdef\n", 4, "", 1},
        {"1234\n12345\n", 4, "[1234]", 1}, /* the cap is inclusive */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        for (size_t split = 0; split <= n; split++) {
            struct lines l;
            struct got g = {.n = 0};
            lines_init(&l, cases[i].max);
            lines_feed(&l, cases[i].in, split, on_line, &g);
            lines_feed(&l, cases[i].in + split, n - split, on_line, &g);
            lines_free(&l);
            assert_string_equal(g.n ? g.out : "", cases[i].want);
            assert_int_equal(g.too_long, cases[i].too_long);
        }
    }
}

static void test_cond_wait_ms(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    long long t0 = clock_ms();
    pthread_mutex_lock(&mu);
    assert_int_equal(cond_wait_ms(&cv, &mu, 1050), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    long long dt = clock_ms() - t0;
    assert_true(dt >= 1040 && dt < 5000);
}

static void test_pool_grows_when_blocked(void **state)
{
    /* One worker; it blocks; queued quick jobs must still run. */
    struct blocker b = {.p = pool_new(1)};
    atomic_int quick = 0;
    pool_submit(b.p, blocking_job, &b);
    while (atomic_load(&b.started) < 1)
        usleep(1000);
    for (int i = 0; i < 10; i++)
        pool_submit(b.p, quick_job, &quick);
    for (int i = 0; i < 2000 && atomic_load(&quick) < 10; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&quick), 10);
    atomic_store(&b.release, 1);
    pool_free(b.p); /* joins every thread, including the one added */
    assert_int_equal(atomic_load(&b.done), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_b64_strict),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_pool_grows_when_blocked),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_cond_wait_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
