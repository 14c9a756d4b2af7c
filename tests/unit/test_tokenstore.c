/* client/tokenstore: layout and modes, atomic writes under a concurrent reader, corrupt and
 * planted files, key derivation, and leases between processes (live, dead, old, a race of 8
 * processes for one stale lease, waiting). Each test works in its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/tokenstore.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fx {
    char tmp[64];
    struct tstore *ts;
};

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", path);
    free(cmd);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/tstore-test-XXXXXX");
    if (mkdtemp(f->tmp) == NULL)
        return -1;
    char *dir = xasprintf("%s/store", f->tmp);
    int r = tstore_open(dir, &f->ts);
    free(dir);
    *state = f;
    return r;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tstore_close(f->ts);
    rm_rf(f->tmp);
    free(f);
    return 0;
}

static char *path_of(struct fx *f, const char *rel)
{
    return xasprintf("%s/store/v1/%s/%s", f->tmp, KEY, rel);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static char *read_text(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return xstrdup(buf);
}

static void sleep_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_pack("{s:s, s:I}", "access_token", "at-1", "expires_at", (json_int_t)42);
    json_t *got = NULL;
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_NOTFOUND); /* no entry yet */
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), 0);
    assert_true(json_equal(doc, got));
    json_decref(got);
    assert_int_equal(tstore_get(f->ts, KEY, "client", &got), ERR_NOTFOUND);
    json_object_set_new(doc, "access_token", json_string("at-2")); /* overwrite */
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), 0);
    assert_string_equal(json_string_value(json_object_get(got, "access_token")), "at-2");
    json_decref(got);
    assert_int_equal(tstore_remove(f->ts, KEY, "tokens"), 0);
    assert_int_equal(tstore_remove(f->ts, KEY, "tokens"), ERR_NOTFOUND);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_NOTFOUND);
    json_t *arr = json_array();
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", arr), ERR_INVALID); /* objects only */
    json_decref(arr);
    json_decref(doc);
    /* No temporary file is left behind. */
    char *dir = xasprintf("%s/store/v1/%s", f->tmp, KEY);
    char *cmd = xasprintf("test -z \"$(ls -A '%s')\"", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

static void test_modes(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(022); /* a usual umask must not widen anything */
    char *base = xasprintf("%s/a/b/store", f->tmp);
    struct tstore *ts = NULL;
    assert_int_equal(tstore_open(base, &ts), 0);
    json_t *doc = json_pack("{s:s}", "k", "v");
    assert_int_equal(tstore_put(ts, KEY, "client", doc), 0);
    json_decref(doc);
    const char *levels[] = {"a", "a/b", "a/b/store", "a/b/store/v1", "a/b/store/v1/" KEY};
    for (size_t i = 0; i < sizeof(levels) / sizeof(*levels); i++) {
        char *p = xasprintf("%s/%s", f->tmp, levels[i]);
        if (mode_of(p) != 0700)
            fail_msg("%s has mode %04o", levels[i], (unsigned)mode_of(p));
        free(p);
    }
    char *file = xasprintf("%s/v1/%s/client.json", base, KEY);
    assert_int_equal(mode_of(file), 0600);
    free(file);
    assert_string_equal(tstore_dir(ts), base);
    tstore_close(ts);
    umask(old);
    free(base);
}

static void test_tighten(void **state)
{
    struct fx *f = *state;
    char *loose = xasprintf("%s/loose", f->tmp);
    char *v1 = xasprintf("%s/v1", loose);
    char *kd = xasprintf("%s/v1/%s", loose, KEY);
    assert_int_equal(mkdir(loose, 0700), 0);
    assert_int_equal(mkdir(v1, 0700), 0);
    assert_int_equal(mkdir(kd, 0700), 0);
    assert_int_equal(chmod(loose, 0755), 0);
    assert_int_equal(chmod(v1, 0775), 0);
    assert_int_equal(chmod(kd, 0755), 0);
    char *file = xasprintf("%s/tokens.json", kd);
    write_file(file, "{\"a\":1}");
    assert_int_equal(chmod(file, 0644), 0);
    struct tstore *ts = NULL;
    assert_int_equal(tstore_open(loose, &ts), 0);
    assert_int_equal(mode_of(loose), 0700);
    assert_int_equal(mode_of(v1), 0700);
    json_t *got = NULL;
    assert_int_equal(tstore_get(ts, KEY, "tokens", &got), 0);
    json_decref(got);
    assert_int_equal(mode_of(kd), 0700);
    assert_int_equal(mode_of(file), 0600);
    tstore_close(ts);
    free(file);
    free(kd);
    free(v1);
    free(loose);
}

static void test_default_dir(void **state)
{
    struct fx *f = *state;
    char *home = xasprintf("%s/home", f->tmp), *xdg = xasprintf("%s/xdg", f->tmp);
    char *own = xasprintf("%s/own", f->tmp);
    char *want = NULL;
    struct tstore *ts = NULL;
    setenv("HOME", home, 1);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("MCPGATE_CONFIG_DIR");
    assert_int_equal(tstore_open(NULL, &ts), 0);
    want = xasprintf("%s/.config/mcpgate", home);
    assert_string_equal(tstore_dir(ts), want);
    assert_int_equal(mode_of(want), 0700);
    free(want);
    tstore_close(ts);
    setenv("XDG_CONFIG_HOME", "relative/ignored", 1);
    assert_int_equal(tstore_open(NULL, &ts), 0);
    want = xasprintf("%s/.config/mcpgate", home);
    assert_string_equal(tstore_dir(ts), want);
    free(want);
    tstore_close(ts);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    assert_int_equal(tstore_open(NULL, &ts), 0);
    want = xasprintf("%s/mcpgate", xdg);
    assert_string_equal(tstore_dir(ts), want);
    free(want);
    tstore_close(ts);
    setenv("MCPGATE_CONFIG_DIR", own, 1);
    assert_int_equal(tstore_open(NULL, &ts), 0);
    assert_string_equal(tstore_dir(ts), own);
    tstore_close(ts);
    unsetenv("MCPGATE_CONFIG_DIR");
    unsetenv("XDG_CONFIG_HOME");
    free(own);
    free(xdg);
    free(home);
}

/* A document of ~400 KiB whose every element carries the generation: a torn or mixed read
 * fails to parse or fails the check. */
static json_t *big_doc(int gen)
{
    json_t *a = json_array();
    char s[64];
    for (int i = 0; i < 8000; i++) {
        snprintf(s, sizeof(s), "gen-%06d-item-%06d-padding-padding", gen, i);
        json_array_append_new(a, json_string(s));
    }
    return json_pack("{s:i, s:o}", "gen", gen, "items", a);
}

static bool doc_consistent(json_t *doc)
{
    json_t *items = json_object_get(doc, "items");
    int gen = (int)json_integer_value(json_object_get(doc, "gen"));
    char s[64];
    if (json_array_size(items) != 8000)
        return false;
    for (size_t i = 0; i < 8000; i++) {
        snprintf(s, sizeof(s), "gen-%06d-item-%06zu-padding-padding", gen, i);
        if (strcmp(json_string_value(json_array_get(items, i)), s) != 0)
            return false;
    }
    return true;
}

static void test_atomic_rewrite(void **state)
{
    struct fx *f = *state;
    json_t *doc = big_doc(0);
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    json_decref(doc);
    int done[2], res[2];
    assert_int_equal(pipe(done), 0);
    assert_int_equal(pipe(res), 0);
    pid_t reader = fork();
    assert_true(reader >= 0);
    if (reader == 0) { /* reads until the writer closes the pipe; reports bad/total reads */
        close(done[1]);
        close(res[0]);
        int bad = 0, total = 0;
        struct pollfd p = {done[0], POLLIN, 0};
        while (poll(&p, 1, 0) == 0) {
            json_t *got = NULL;
            if (tstore_get(f->ts, KEY, "tokens", &got) != 0 || !doc_consistent(got))
                bad++;
            total++;
            json_decref(got);
        }
        int out[2] = {bad, total};
        _exit(write(res[1], out, sizeof(out)) == sizeof(out) ? 0 : 1);
    }
    close(done[0]);
    close(res[1]);
    for (int gen = 1; gen <= 200; gen++) {
        doc = big_doc(gen);
        assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
        json_decref(doc);
    }
    close(done[1]);
    int out[2] = {-1, -1}, status = 0;
    assert_int_equal(read(res[0], out, sizeof(out)), sizeof(out));
    close(res[0]);
    assert_int_equal(waitpid(reader, &status, 0), reader);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (out[0] != 0)
        fail_msg("%d of %d concurrent reads saw a partial or mixed document", out[0], out[1]);
    assert_true(out[1] > 0);
    json_t *got = NULL;
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got, "gen")), 200);
    json_decref(got);
}

static void test_corrupt(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_pack("{s:s}", "k", "v"), *got = NULL;
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    char *file = path_of(f, "tokens.json");
    static const char *const bad[] = {
        "", "{\"access_token\":\"at", "[1,2]", "\x01\x02\xff", "{\"a\":1,\"a\":2}", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        write_file(file, bad[i]);
        assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_PARSE);
        assert_null(got);
    }
    /* Over 1 MiB: corrupt too. */
    char *huge = xmalloc(1024 * 1024 + 16);
    memset(huge, ' ', 1024 * 1024 + 15);
    huge[0] = '{';
    huge[1024 * 1024 + 14] = '}';
    huge[1024 * 1024 + 15] = '\0';
    write_file(file, huge);
    free(huge);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_PARSE);
    /* A put repairs it. */
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), 0);
    json_decref(got);
    /* A directory where the file should be: refused, no crash. */
    assert_int_equal(unlink(file), 0);
    assert_int_equal(mkdir(file, 0700), 0);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_INVALID);
    assert_int_equal(rmdir(file), 0);
    free(file);
    json_decref(doc);
}

static void test_symlink(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_pack("{s:s}", "access_token", "secret"), *got = NULL;
    assert_int_equal(tstore_put(f->ts, KEY, "client", doc), 0); /* creates the entry dir */
    char *victim = xasprintf("%s/victim", f->tmp);
    write_file(victim, "{\"untouched\":true}");
    char *link = path_of(f, "tokens.json");
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_INVALID); /* not followed */
    assert_null(got);
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0); /* replaces the link itself */
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    char *text = read_text(victim);
    assert_string_equal(text, "{\"untouched\":true}");
    free(text);
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), 0);
    json_decref(got);
    /* An entry directory that is a symlink is refused. */
    char *other = xasprintf("%s/elsewhere", f->tmp);
    assert_int_equal(mkdir(other, 0700), 0);
    char *klink = xasprintf("%s/store/v1/%s", f->tmp,
                            "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
    assert_int_equal(symlink(other, klink), 0);
    assert_int_equal(tstore_put(f->ts,
                                "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
                                "tokens", doc),
                     ERR_INVALID);
    char *cmd = xasprintf("test -z \"$(ls -A '%s')\"", other);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(klink);
    free(other);
    free(link);
    free(victim);
    json_decref(doc);
}

static void test_invalid(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_object(), *got = NULL;
    static const char *const names[] = {"",
                                        "a/b",
                                        "..",
                                        ".x",
                                        "tok.json",
                                        "a b",
                                        "\xc3\xa9",
                                        "x0123456789012345678901234567890123456789012345678901234"
                                        "567890123" /* 65 */,
                                        NULL};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        assert_int_equal(tstore_put(f->ts, KEY, names[i], doc), ERR_INVALID);
        assert_int_equal(tstore_get(f->ts, KEY, names[i], &got), ERR_INVALID);
        assert_int_equal(tstore_lease_take(f->ts, KEY, names[i], 10, NULL), ERR_INVALID);
    }
    static const char *const keys[] = {
        "",
        "abc",
        "../../etc",
        KEY "0",
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        NULL};
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
        assert_int_equal(tstore_put(f->ts, keys[i], "tokens", doc), ERR_INVALID);
        assert_int_equal(tstore_get(f->ts, keys[i], "tokens", &got), ERR_INVALID);
        assert_int_equal(tstore_forget(f->ts, keys[i]), ERR_INVALID);
    }
    /* 64 characters of the name alphabet are fine. */
    assert_int_equal(tstore_put(f->ts, KEY,
                                "flow-0123456789012345678901234567890123456789012345678901234_-",
                                doc),
                     0);
    json_decref(doc);
}

static void test_key(void **state)
{
    const char *a[] = {"https://r.example/", "read write"};
    const char *b[] = {"https://r.example/", "read"};
    const char *c[] = {NULL, "read write"};
    const char *d[] = {"", "read write"};
    char *k1 = tstore_key("https://mcp.example/mcp", a, 2);
    char *k2 = tstore_key("https://mcp.example/mcp", a, 2);
    char *k3 = tstore_key("https://mcp.example/mcp", b, 2);
    char *k4 = tstore_key("https://mcp.example/mcp2", a, 2);
    char *k5 = tstore_key("https://mcp.example/mcp", c, 2);
    char *k6 = tstore_key("https://mcp.example/mcp", d, 2);
    char *k7 = tstore_key("https://mcp.example/mcp", a, 1);
    char *k8 = tstore_key("abc", NULL, 0);
    assert_int_equal(strlen(k1), 64);
    assert_string_equal(k1, k2);
    assert_string_not_equal(k1, k3);
    assert_string_not_equal(k1, k4);
    assert_string_not_equal(k1, k5);
    assert_string_equal(k5, k6); /* NULL counts as empty */
    assert_string_not_equal(k1, k7);
    /* Pinned: the key is on disk; changing it loses every login (v1/ layout). */
    assert_string_equal(k8, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char *k9 = tstore_key("u", (const char *[]){"a", "b"}, 2);
    char *k10 = tstore_key("u\na\nb", NULL, 0);
    assert_string_equal(k9, k10); /* the documented joining */
    free(k1);
    free(k2);
    free(k3);
    free(k4);
    free(k5);
    free(k6);
    free(k7);
    free(k8);
    free(k9);
    free(k10);
}

static void test_forget(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_object();
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    assert_int_equal(tstore_put(f->ts, KEY, "client", doc), 0);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, NULL), 0);
    const char *other = "1111111111111111111111111111111111111111111111111111111111111111";
    assert_int_equal(tstore_put(f->ts, other, "tokens", doc), 0);
    assert_int_equal(tstore_forget(f->ts, KEY), 0);
    char *dir = xasprintf("%s/store/v1/%s", f->tmp, KEY);
    struct stat st;
    assert_int_equal(lstat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    json_t *got = NULL;
    assert_int_equal(tstore_get(f->ts, KEY, "tokens", &got), ERR_NOTFOUND);
    assert_int_equal(tstore_forget(f->ts, KEY), ERR_NOTFOUND);
    assert_int_equal(tstore_get(f->ts, other, "tokens", &got), 0); /* other entries stay */
    json_decref(got);
    tstore_lease_release(f->ts, KEY, "auth"); /* gone with the entry: a no-op */
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, NULL), 0);
    tstore_lease_release(f->ts, KEY, "auth");
    free(dir);
    json_decref(doc);
}

static void test_lease_same_process(void **state)
{
    struct fx *f = *state;
    long holder = -1;
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), 0);
    char *lease = path_of(f, "auth.lease");
    assert_int_equal(mode_of(lease), 0600);
    char *text = read_text(lease), *want = xasprintf("%ld ", (long)getpid());
    assert_true(strncmp(text, want, strlen(want)) == 0);
    assert_true(text[strlen(text) - 1] == '\n');
    free(want);
    free(text);
    /* Not reentrant: we hold it, so ERR_EXISTS naming ourselves, through any handle. */
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), ERR_EXISTS);
    assert_int_equal(holder, (long)getpid());
    struct tstore *ts2 = NULL;
    char *dir = xasprintf("%s/store", f->tmp);
    assert_int_equal(tstore_open(dir, &ts2), 0);
    assert_int_equal(tstore_lease_take(ts2, KEY, "auth", 60, &holder), ERR_EXISTS);
    assert_int_equal(tstore_lease_take(ts2, KEY, "refresh", 60, NULL), 0); /* other name */
    tstore_lease_release(ts2, KEY, "refresh");
    tstore_close(ts2);
    free(dir);
    tstore_lease_release(f->ts, KEY, "auth");
    assert_int_equal(access(lease, F_OK), -1);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), 0);
    tstore_lease_release(f->ts, KEY, "auth");
    /* Our pid, but written by an earlier process that had it (container restart): stale. */
    char *line = xasprintf("%ld %lld\n", (long)getpid(), (long long)time(NULL));
    write_file(lease, line);
    free(line);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), 0);
    tstore_lease_release(f->ts, KEY, "auth");
    free(lease);
}

/* A child that takes the lease, reports, and holds it until told to go (or killed). */
static pid_t spawn_holder(struct fx *f, int *go_fd /* OUT */)
{
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        char c = tstore_lease_take(f->ts, KEY, "auth", 60, NULL) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        if (read(go[0], &c, 1) == 1 && c == 'r')
            tstore_lease_release(f->ts, KEY, "auth");
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(ready[0]);
    *go_fd = go[1];
    return pid;
}

static void test_lease_live_and_dead(void **state)
{
    struct fx *f = *state;
    int go;
    long holder = 0;
    pid_t child = spawn_holder(f, &go);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), ERR_EXISTS);
    assert_int_equal(holder, (long)child);
    tstore_lease_release(f->ts, KEY, "auth"); /* not ours: must not remove it */
    char *lease = path_of(f, "auth.lease");
    assert_int_equal(access(lease, F_OK), 0);
    /* The child dies without releasing: its lease is stale. */
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(go);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), 0);
    char *text = read_text(lease), *want = xasprintf("%ld ", (long)getpid());
    assert_true(strncmp(text, want, strlen(want)) == 0);
    free(want);
    free(text);
    tstore_lease_release(f->ts, KEY, "auth");
    assert_int_equal(access(lease, F_OK), -1);
    free(lease);
}

static void test_lease_old_and_garbage(void **state)
{
    struct fx *f = *state;
    json_t *doc = json_object();
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    json_decref(doc);
    char *lease = path_of(f, "auth.lease");
    long holder = 0;
    /* pid 1 is alive (EPERM or 0), but the lease is an hour old. */
    char *line = xasprintf("1 %lld\n", (long long)time(NULL) - 3600);
    write_file(lease, line);
    free(line);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 3601 + 60, &holder), ERR_EXISTS);
    assert_int_equal(holder, 1);
    assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, &holder), 0);
    tstore_lease_release(f->ts, KEY, "auth");
    /* Unparsable leases are stale. */
    static const char *const bad[] = {"",         "garbage\n", "123",
                                      "-5 100\n", "0 100\n",   "99999999999999999999 1\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        write_file(lease, bad[i]);
        assert_int_equal(tstore_lease_take(f->ts, KEY, "auth", 60, NULL), 0);
        tstore_lease_release(f->ts, KEY, "auth");
    }
    free(lease);
}

static void test_lease_race(void **state)
{
    struct fx *f = *state;
    enum { N = 8 };
    json_t *doc = json_object();
    assert_int_equal(tstore_put(f->ts, KEY, "tokens", doc), 0);
    json_decref(doc);
    for (int round = 0; round < 5; round++) {
        char *lease = path_of(f, "auth.lease");
        char *line = xasprintf("1 %lld\n", (long long)time(NULL) - 3600); /* stale by age */
        write_file(lease, line);
        free(line);
        free(lease);
        int start[2], res[2], leave[2];
        assert_int_equal(pipe(start), 0);
        assert_int_equal(pipe(res), 0);
        assert_int_equal(pipe(leave), 0);
        pid_t kids[N];
        for (int i = 0; i < N; i++) {
            kids[i] = fork();
            assert_true(kids[i] >= 0);
            if (kids[i] == 0) {
                close(start[1]);
                close(res[0]);
                close(leave[1]);
                char c;
                if (read(start[0], &c, 1) != 0) /* all released at once by the close */
                    _exit(2);
                int r = tstore_lease_take(f->ts, KEY, "auth", 60, NULL);
                c = r == 0 ? 'w' : r == ERR_EXISTS ? 'l' : 'e';
                if (write(res[1], &c, 1) != 1)
                    _exit(2);
                /* Stay alive until everyone tried: a dead winner's lease would be stale. */
                if (read(leave[0], &c, 1) < 0)
                    _exit(2);
                _exit(0);
            }
        }
        close(start[0]);
        close(res[1]);
        close(leave[0]);
        close(start[1]);
        int winners = 0, losers = 0;
        for (int i = 0; i < N; i++) {
            char c = 0;
            assert_int_equal(read(res[0], &c, 1), 1);
            winners += c == 'w';
            losers += c == 'l';
        }
        close(res[0]);
        close(leave[1]);
        for (int i = 0; i < N; i++)
            assert_int_equal(waitpid(kids[i], NULL, 0), kids[i]);
        if (winners != 1 || losers != N - 1)
            fail_msg("round %d: %d winners, %d losers", round, winners, losers);
    }
}

static void test_lease_wait(void **state)
{
    struct fx *f = *state;
    int go;
    /* Released after ~300 ms: wait returns soon after. */
    pid_t child = spawn_holder(f, &go);
    long long t0 = now_ms();
    pid_t releaser = fork();
    assert_true(releaser >= 0);
    if (releaser == 0) {
        sleep_ms(300);
        _exit(write(go, "r", 1) == 1 ? 0 : 1);
    }
    assert_int_equal(tstore_lease_wait(f->ts, KEY, "auth", 60, 5000), 0);
    long long took = now_ms() - t0;
    assert_true(took >= 250);
    if (took > 300 + 200 + 500)
        fail_msg("wait took %lld ms", took);
    assert_int_equal(waitpid(releaser, NULL, 0), releaser);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(go);
    tstore_lease_release(f->ts, KEY, "auth");
    /* Never released: ERR_TIMEOUT after the timeout, not before. */
    child = spawn_holder(f, &go);
    t0 = now_ms();
    assert_int_equal(tstore_lease_wait(f->ts, KEY, "auth", 60, 400), ERR_TIMEOUT);
    took = now_ms() - t0;
    assert_true(took >= 400 && took < 400 + 1000);
    close(go); /* the child exits without releasing */
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(tstore_lease_wait(f->ts, KEY, "auth", 60, 1000), 0); /* dead: taken */
    /* A lease we hold is not free for us either: waiting on it times out. */
    assert_int_equal(tstore_lease_wait(f->ts, KEY, "auth", 60, 100), ERR_TIMEOUT);
    tstore_lease_release(f->ts, KEY, "auth");
}

int main(void)
{
    log_set_level(LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tighten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_rewrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test(test_key),
        cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_same_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_live_and_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_old_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_wait, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
