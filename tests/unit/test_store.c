/* store/: every operation of the SQLite backend against a temporary database file, the races
 * the single-use operations must win (threads with their own handles, threads sharing one, and
 * a second process), file permissions, and schema versioning (no migration twice; a database
 * from a newer mcpgate refused and left untouched). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "store/store.h"

#define SCHEMA_VERSION 2 /* migrations in store/sqlite_schema.c */

struct fx {
    char dir[64];
    char path[128];
    char url[160];
    struct store *st;
};

static void remove_db_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[192];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/storeXXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/mcpgate.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    if (store_open(f->url, &f->st) != 0) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->st);
    remove_db_files(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A recognizable hash with a NUL and a 0xff byte in it. */
static void mkhash(unsigned char h[STORE_HASH_LEN], int seed)
{
    for (int i = 0; i < STORE_HASH_LEN; i++)
        h[i] = (unsigned char)(seed * 31 + i * 7);
    h[3] = 0x00;
    h[17] = 0xff;
    h[0] = (unsigned char)seed;
}

static int64_t add_user(struct store *st, const char *name)
{
    int64_t id = 0;
    assert_int_equal(store_user_add(st, name, "$argon2id$v=19$x", 1000, &id), 0);
    assert_true(id > 0);
    return id;
}

static void put_grant(struct store *st, const char *grant_id, int64_t user_id,
                      const char *client_id, int64_t created_at)
{
    struct store_grant g = {.grant_id = (char *)grant_id,
                            .user_id = user_id,
                            .client_id = (char *)client_id,
                            .scope = "mcp read",
                            .resource = "https://mcp.example/mcp",
                            .created_at = created_at};
    assert_int_equal(store_grant_put(st, &g), 0);
}

static void put_code(struct store *st, int seed, const char *grant_id, int64_t expires_at)
{
    struct store_code c = {.grant_id = (char *)grant_id,
                           .client_id = "client-1",
                           .redirect_uri = "http://127.0.0.1:33418/cb",
                           .code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                           .scope = "mcp",
                           .resource = "https://mcp.example/mcp",
                           .user_id = 7,
                           .expires_at = expires_at};
    mkhash(c.hash, seed);
    assert_int_equal(store_code_put(st, &c), 0);
}

static void put_refresh(struct store *st, int seed, const char *grant_id, int64_t expires_at)
{
    struct store_refresh r = {
        .grant_id = (char *)grant_id, .created_at = 1000, .expires_at = expires_at};
    mkhash(r.hash, seed);
    assert_int_equal(store_refresh_put(st, &r), 0);
}

/* The database header's user_version: 4 bytes big-endian at offset 60 (SQLite file format). */
static uint32_t header_user_version(const char *path)
{
    unsigned char b[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 4, 60), 4);
    close(fd);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    char *p = malloc((size_t)n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

/* ---- opening ---- */

static void test_open_urls(void **state)
{
    struct fx *f = *state;
    struct store *st = (struct store *)1;
    assert_int_equal(store_open("postgres://u:secret@db/mcpgate", &st), ERR_UNSUPPORTED);
    assert_null(st);
    assert_int_equal(store_open("postgresql://db/mcpgate", &st), ERR_UNSUPPORTED);
    assert_int_equal(store_open("mysql://db/x", &st), ERR_UNSUPPORTED);
    assert_int_equal(store_open("", &st), ERR_INVALID);
    assert_int_equal(store_open("sqlite:", &st), ERR_INVALID);
    assert_null(st);

    /* A bare path and sqlite:// reach the same database. */
    assert_int_equal(store_open(f->path, &st), 0);
    add_user(st, "via-bare-path");
    store_close(st);
    char url[192];
    snprintf(url, sizeof(url), "sqlite://%s", f->path);
    assert_int_equal(store_open(url, &st), 0);
    struct store_user u;
    assert_int_equal(store_user_get(st, "via-bare-path", &u), 0);
    store_user_clear(&u);
    store_close(st);
    store_close(NULL);

    /* No such directory; not a database. */
    snprintf(url, sizeof(url), "sqlite:%s/missing/x.db", f->dir);
    assert_int_equal(store_open(url, &st), ERR_IO);
    char junk[160];
    snprintf(junk, sizeof(junk), "%s/junk.db", f->dir);
    FILE *fp = fopen(junk, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database. ", fp);
    fclose(fp);
    assert_int_equal(store_open(junk, &st), ERR_IO);
    assert_null(st);
    remove_db_files(junk);
}

static void test_file_mode(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* Whatever the umask: a fresh database and its WAL are private. */
    char path[160], wal[170];
    snprintf(path, sizeof(path), "%s/umask0.db", f->dir);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    mode_t old = umask(0);
    struct store *st;
    assert_int_equal(store_open(path, &st), 0);
    umask(old);
    add_user(st, "someone");
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(wal, &sb), 0); /* WAL mode, open: the log exists */
    assert_int_equal(sb.st_mode & 0777, 0600);
    store_close(st);
    remove_db_files(path);
}

static void test_reopen_no_migration_twice(void **state)
{
    struct fx *f = *state;
    int64_t id = add_user(f->st, "persisted");
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(header_user_version(f->path), SCHEMA_VERSION);
    /* The migrations use plain CREATE TABLE and ALTER TABLE ADD COLUMN: running one again
     * would fail the open. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_open(f->url, &f->st), 0);
        struct store_user u;
        assert_int_equal(store_user_get(f->st, "persisted", &u), 0);
        assert_int_equal(u.id, id);
        store_user_clear(&u);
        store_close(f->st);
        f->st = NULL;
        assert_int_equal(header_user_version(f->path), SCHEMA_VERSION);
    }
    assert_int_equal(store_open(f->url, &f->st), 0);
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    add_user(f->st, "precious");
    store_close(f->st); /* the last connection checkpoints the WAL into the file */
    f->st = NULL;
    int fd = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    static const unsigned char v99[4] = {0, 0, 0, 99};
    assert_int_equal(pwrite(fd, v99, 4, 60), 4);
    close(fd);
    size_t n0, n1;
    char *before = slurp(f->path, &n0);

    struct store *st = (struct store *)1;
    assert_int_equal(store_open(f->url, &st), ERR_UNSUPPORTED);
    assert_null(st);
    char *after = slurp(f->path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0); /* not a byte changed */
    assert_int_equal(header_user_version(f->path), 99);
    free(before);
    free(after);

    /* Back to our version, the data is all there. */
    static const unsigned char v1[4] = {0, 0, 0, SCHEMA_VERSION};
    fd = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, v1, 4, 60), 4);
    close(fd);
    assert_int_equal(store_open(f->url, &f->st), 0);
    int64_t n;
    assert_int_equal(store_user_count(f->st, &n), 0);
    assert_int_equal(n, 1);
}

/* ---- users ---- */

static void test_users(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    struct store_user u;
    int64_t n;

    assert_int_equal(store_user_count(st, &n), 0);
    assert_int_equal(n, 0);
    int64_t alice = add_user(st, "alice");
    int64_t bob = add_user(st, "bob");
    assert_true(bob != alice);
    assert_int_equal(store_user_add(st, "alice", "$argon2id$other", 2000, NULL), ERR_EXISTS);
    assert_int_equal(store_user_add(st, NULL, "h", 2000, NULL), ERR_INVALID);

    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_int_equal(u.id, alice);
    assert_string_equal(u.username, "alice");
    assert_string_equal(u.password_hash, "$argon2id$v=19$x");
    assert_int_equal(u.created_at, 1000);
    assert_int_equal(u.failed_logins, 0);
    assert_int_equal(u.locked_until, 0);
    store_user_clear(&u);
    assert_null(u.username);
    store_user_clear(NULL);
    assert_int_equal(store_user_get_id(st, bob, &u), 0);
    assert_string_equal(u.username, "bob");
    store_user_clear(&u);
    assert_int_equal(store_user_get(st, "carol", &u), ERR_NOTFOUND);
    assert_int_equal(store_user_get_id(st, 424242, &u), ERR_NOTFOUND);

    json_t *list;
    assert_int_equal(store_user_list(st, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "id")), alice);
    assert_string_equal(json_string_value(json_object_get(first, "username")), "alice");
    assert_int_equal(json_integer_value(json_object_get(first, "created_at")), 1000);
    assert_null(json_object_get(first, "password_hash"));
    json_decref(list);
    assert_int_equal(store_user_count(st, &n), 0);
    assert_int_equal(n, 2);

    assert_int_equal(store_user_set_password(st, "alice", "$argon2id$new"), 0);
    assert_int_equal(store_user_set_password(st, "carol", "$argon2id$new"), ERR_NOTFOUND);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.password_hash, "$argon2id$new");
    store_user_clear(&u);

    assert_int_equal(store_user_login_result(st, alice, false, 1500), 0);
    assert_int_equal(store_user_login_result(st, alice, false, 1600), 0);
    assert_int_equal(store_user_get_id(st, alice, &u), 0);
    assert_int_equal(u.failed_logins, 2);
    assert_int_equal(u.locked_until, 1600);
    store_user_clear(&u);
    assert_int_equal(store_user_login_result(st, alice, true, 0), 0);
    assert_int_equal(store_user_get_id(st, alice, &u), 0);
    assert_int_equal(u.failed_logins, 0);
    assert_int_equal(u.locked_until, 0);
    store_user_clear(&u);
    assert_int_equal(store_user_login_result(st, 424242, false, 1), ERR_NOTFOUND);

    assert_int_equal(store_user_remove(st, "bob"), 0);
    assert_int_equal(store_user_remove(st, "bob"), ERR_NOTFOUND);
    assert_int_equal(store_user_get(st, "bob", &u), ERR_NOTFOUND);
    assert_int_equal(store_user_count(st, &n), 0);
    assert_int_equal(n, 1);
    /* Ids are never reused. */
    int64_t dave = add_user(st, "dave");
    assert_true(dave > bob);
}

static void test_user_remove_cascades(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "leaver");
    int64_t other = add_user(st, "stayer");
    put_grant(st, "g-leaver", uid, "client-1", 100);
    put_grant(st, "g-stayer", other, "client-1", 100);
    unsigned char at[STORE_HASH_LEN], at2[STORE_HASH_LEN], bs[STORE_HASH_LEN], rt[32];
    mkhash(at, 1);
    mkhash(at2, 2);
    mkhash(bs, 3);
    mkhash(rt, 4);
    assert_int_equal(store_access_put(st, at, "g-leaver", 5000), 0);
    assert_int_equal(store_access_put(st, at2, "g-stayer", 5000), 0);
    put_refresh(st, 4, "g-leaver", 9000);
    put_code(st, 5, "g-leaver", 9000);
    assert_int_equal(store_consent_put(st, uid, "client-1", "mcp", 100), 0);
    assert_int_equal(store_consent_put(st, other, "client-1", "mcp", 100), 0);
    struct store_browser_session b = {.user_id = uid, .csrf = "csrf", .expires_at = 9000};
    memcpy(b.hash, bs, sizeof(bs));
    assert_int_equal(store_bsession_put(st, &b), 0);

    assert_int_equal(store_user_remove(st, "leaver"), 0);

    struct store_grant g;
    assert_int_equal(store_grant_get(st, "g-leaver", &g), 0);
    assert_true(g.revoked_at != 0);
    store_grant_clear(&g);
    assert_int_equal(store_access_check(st, at), ERR_INVALID);
    assert_int_equal(store_access_check(st, at2), 0);
    struct store_refresh r;
    assert_int_equal(store_refresh_get(st, rt, &r), ERR_NOTFOUND);
    struct store_code c;
    unsigned char ch[STORE_HASH_LEN];
    mkhash(ch, 5);
    assert_int_equal(store_code_take(st, ch, &c), ERR_EXISTS); /* spent */
    store_code_clear(&c);
    char *scope;
    assert_int_equal(store_consent_get(st, uid, "client-1", &scope), ERR_NOTFOUND);
    assert_int_equal(store_consent_get(st, other, "client-1", &scope), 0);
    free(scope);
    struct store_browser_session bo;
    assert_int_equal(store_bsession_get(st, bs, 100, &bo), ERR_NOTFOUND);
    json_t *grants;
    assert_int_equal(store_grants_of_user(st, other, &grants), 0);
    assert_int_equal(json_array_size(grants), 1);
    json_decref(grants);
}

/* ---- clients ---- */

static void test_clients(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    json_error_t e;
    json_t *meta = json_loads("{\"client_name\":\"Caf\\u00e9 \\\"quoted\\\"\","
                              "\"redirect_uris\":[\"http://127.0.0.1/cb\",\"myapp:/cb\"],"
                              "\"token_endpoint_auth_method\":\"client_secret_basic\","
                              "\"n\":1.5,\"nested\":{\"a\":[null,true,false]}}",
                              0, &e);
    assert_non_null(meta);
    struct store_client c = {.client_id = "dcr-1",
                             .kind = CLIENT_DCR,
                             .has_secret = true,
                             .has_reg_token = true,
                             .metadata = meta,
                             .first_party = false,
                             .created_at = 1000,
                             .expires_at = 0};
    mkhash(c.secret_hash, 11);
    mkhash(c.reg_token_hash, 12);
    assert_int_equal(store_client_put(st, &c), 0);
    struct store_client pub = {.client_id = "https://app.example/cimd.json",
                               .kind = CLIENT_CIMD,
                               .first_party = true,
                               .created_at = 2000,
                               .expires_at = 5000};
    assert_int_equal(store_client_put(st, &pub), 0); /* NULL metadata: stored as {} */

    struct store_client out;
    assert_int_equal(store_client_get(st, "dcr-1", &out), 0);
    assert_string_equal(out.client_id, "dcr-1");
    assert_int_equal(out.kind, CLIENT_DCR);
    assert_true(out.has_secret);
    assert_memory_equal(out.secret_hash, c.secret_hash, STORE_HASH_LEN);
    assert_true(out.has_reg_token);
    assert_memory_equal(out.reg_token_hash, c.reg_token_hash, STORE_HASH_LEN);
    assert_true(json_equal(out.metadata, meta));
    assert_false(out.first_party);
    assert_int_equal(out.created_at, 1000);
    assert_int_equal(out.expires_at, 0);
    store_client_clear(&out);
    store_client_clear(NULL);

    assert_int_equal(store_client_get(st, "https://app.example/cimd.json", &out), 0);
    assert_int_equal(out.kind, CLIENT_CIMD);
    assert_false(out.has_secret);
    assert_false(out.has_reg_token);
    assert_true(json_is_object(out.metadata));
    assert_int_equal(json_object_size(out.metadata), 0);
    assert_true(out.first_party);
    assert_int_equal(out.expires_at, 5000);
    store_client_clear(&out);
    assert_int_equal(store_client_get(st, "nobody", &out), ERR_NOTFOUND);

    /* Upsert: everything replaced but the first registration time. */
    json_t *meta2 = json_pack("{s:s}", "client_name", "renamed");
    struct store_client c2 = {.client_id = "dcr-1",
                              .kind = CLIENT_DCR,
                              .has_secret = false,
                              .has_reg_token = true,
                              .metadata = meta2,
                              .created_at = 3000,
                              .expires_at = 0};
    mkhash(c2.reg_token_hash, 13);
    assert_int_equal(store_client_put(st, &c2), 0);
    assert_int_equal(store_client_get(st, "dcr-1", &out), 0);
    assert_false(out.has_secret);
    assert_memory_equal(out.reg_token_hash, c2.reg_token_hash, STORE_HASH_LEN);
    assert_true(json_equal(out.metadata, meta2));
    assert_int_equal(out.created_at, 1000);
    store_client_clear(&out);

    int64_t n;
    assert_int_equal(store_client_count(st, &n), 0);
    assert_int_equal(n, 2);
    json_t *list;
    assert_int_equal(store_client_list(st, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_t *o = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "dcr-1");
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "dcr");
    assert_true(json_is_false(json_object_get(o, "has_secret")));
    assert_true(json_equal(json_object_get(o, "metadata"), meta2));
    o = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "cimd");
    assert_true(json_is_true(json_object_get(o, "first_party")));
    json_decref(list);

    /* Removing a client revokes its grants and forgets the consents given to it. */
    int64_t uid = add_user(st, "user-of-dcr");
    put_grant(st, "g-dcr", uid, "dcr-1", 100);
    unsigned char at[STORE_HASH_LEN];
    mkhash(at, 14);
    assert_int_equal(store_access_put(st, at, "g-dcr", 9000), 0);
    assert_int_equal(store_consent_put(st, uid, "dcr-1", "mcp", 100), 0);
    assert_int_equal(store_client_remove(st, "dcr-1"), 0);
    assert_int_equal(store_client_remove(st, "dcr-1"), ERR_NOTFOUND);
    assert_int_equal(store_client_get(st, "dcr-1", &out), ERR_NOTFOUND);
    assert_int_equal(store_access_check(st, at), ERR_INVALID);
    char *scope;
    assert_int_equal(store_consent_get(st, uid, "dcr-1", &scope), ERR_NOTFOUND);
    struct store_grant g;
    assert_int_equal(store_grant_get(st, "g-dcr", &g), 0);
    assert_true(g.revoked_at != 0);
    store_grant_clear(&g);
    assert_int_equal(store_client_count(st, &n), 0);
    assert_int_equal(n, 1);
    json_decref(meta);
    json_decref(meta2);
}

/* ---- grants and access tokens ---- */

static void test_grants_and_access(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    put_grant(st, "g1", 7, "client-1", 100);
    put_grant(st, "g2", 7, "client-2", 200);
    put_grant(st, "g3", 8, "client-1", 300);
    struct store_grant g = {.grant_id = "g1", .client_id = "x", .created_at = 1};
    assert_int_equal(store_grant_put(st, &g), ERR_EXISTS);
    struct store_grant cc = {.grant_id = "g-cc", .user_id = 0, .client_id = "svc"};
    assert_int_equal(store_grant_put(st, &cc), 0); /* client_credentials: no user, no scope */

    assert_int_equal(store_grant_get(st, "g1", &g), 0);
    assert_string_equal(g.grant_id, "g1");
    assert_int_equal(g.user_id, 7);
    assert_string_equal(g.client_id, "client-1");
    assert_string_equal(g.scope, "mcp read");
    assert_string_equal(g.resource, "https://mcp.example/mcp");
    assert_int_equal(g.created_at, 100);
    assert_int_equal(g.revoked_at, 0);
    store_grant_clear(&g);
    assert_int_equal(store_grant_get(st, "g-cc", &g), 0);
    assert_null(g.scope);
    assert_null(g.resource);
    store_grant_clear(&g);
    assert_int_equal(store_grant_get(st, "nope", &g), ERR_NOTFOUND);

    json_t *list;
    assert_int_equal(store_grants_of_user(st, 7, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "grant_id")),
                        "g2"); /* newest first */
    json_t *o = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "client-1");
    assert_string_equal(json_string_value(json_object_get(o, "scope")), "mcp read");
    assert_int_equal(json_integer_value(json_object_get(o, "created_at")), 100);
    json_decref(list);

    unsigned char a1[STORE_HASH_LEN], a2[STORE_HASH_LEN], a3[STORE_HASH_LEN];
    unsigned char unknown[STORE_HASH_LEN];
    mkhash(a1, 21);
    mkhash(a2, 22);
    mkhash(a3, 23);
    mkhash(unknown, 99);
    assert_int_equal(store_access_put(st, a1, "g1", 5000), 0);
    assert_int_equal(store_access_put(st, a2, "g1", 5000), 0);
    assert_int_equal(store_access_put(st, a3, "g2", 5000), 0);
    assert_int_equal(store_access_put(st, a3, "g2", 5000), ERR_EXISTS);
    assert_int_equal(store_access_put(st, unknown, "no-such-grant", 5000), ERR_NOTFOUND);
    assert_int_equal(store_access_check(st, a1), 0);
    assert_int_equal(store_access_check(st, unknown), ERR_NOTFOUND);
    char *gid;
    assert_int_equal(store_access_grant(st, a3, &gid), 0);
    assert_string_equal(gid, "g2");
    free(gid);
    assert_int_equal(store_access_grant(st, unknown, &gid), ERR_NOTFOUND);
    assert_null(gid);

    /* One by one. */
    assert_int_equal(store_access_revoke(st, a1, 600), 0);
    assert_int_equal(store_access_revoke(st, a1, 700), 0); /* idempotent */
    assert_int_equal(store_access_revoke(st, unknown, 600), ERR_NOTFOUND);
    assert_int_equal(store_access_check(st, a1), ERR_INVALID);
    assert_int_equal(store_access_check(st, a2), 0);

    /* Through the grant: tokens, refresh tokens, codes. */
    put_refresh(st, 24, "g1", 9000);
    put_code(st, 25, "g1", 9000);
    assert_int_equal(store_grant_revoke(st, "g1", 800), 0);
    assert_int_equal(store_access_check(st, a2), ERR_INVALID);
    assert_int_equal(store_access_check(st, a3), 0); /* other grant */
    unsigned char h[STORE_HASH_LEN];
    struct store_refresh r;
    mkhash(h, 24);
    assert_int_equal(store_refresh_get(st, h, &r), ERR_NOTFOUND);
    struct store_code c;
    mkhash(h, 25);
    assert_int_equal(store_code_take(st, h, &c), ERR_EXISTS);
    store_code_clear(&c);
    assert_int_equal(store_grant_get(st, "g1", &g), 0);
    assert_int_equal(g.revoked_at, 800);
    store_grant_clear(&g);
    assert_int_equal(store_grant_revoke(st, "g1", 900), 0); /* idempotent, keeps the time */
    assert_int_equal(store_grant_get(st, "g1", &g), 0);
    assert_int_equal(g.revoked_at, 800);
    store_grant_clear(&g);
    assert_int_equal(store_grant_revoke(st, "nope", 900), ERR_NOTFOUND);
    /* A revoked grant's token checks as revoked even if its own row is not marked. */
    unsigned char late[STORE_HASH_LEN];
    mkhash(late, 26);
    assert_int_equal(store_access_put(st, late, "g1", 5000), 0);
    assert_int_equal(store_access_check(st, late), ERR_INVALID);

    assert_int_equal(store_grants_of_user(st, 7, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(store_grants_of_user(st, 12345, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

/* ---- codes ---- */

static void test_codes(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    put_grant(st, "gc", 7, "client-1", 100);
    put_code(st, 31, "gc", 2000);
    unsigned char h[STORE_HASH_LEN], unknown[STORE_HASH_LEN];
    mkhash(h, 31);
    mkhash(unknown, 32);
    struct store_code dup = {.grant_id = "gc", .client_id = "c", .redirect_uri = "r"};
    memcpy(dup.hash, h, sizeof(h));
    assert_int_equal(store_code_put(st, &dup), ERR_EXISTS);

    struct store_code c;
    assert_int_equal(store_code_take(st, h, &c), 0);
    assert_memory_equal(c.hash, h, STORE_HASH_LEN);
    assert_string_equal(c.grant_id, "gc");
    assert_string_equal(c.client_id, "client-1");
    assert_string_equal(c.redirect_uri, "http://127.0.0.1:33418/cb");
    assert_string_equal(c.code_challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert_string_equal(c.scope, "mcp");
    assert_string_equal(c.resource, "https://mcp.example/mcp");
    assert_int_equal(c.user_id, 7);
    assert_int_equal(c.expires_at, 2000);
    assert_true(c.used);
    store_code_clear(&c);
    store_code_clear(NULL);

    /* A replay: refused, with the record so the caller can revoke the grant. */
    assert_int_equal(store_code_take(st, h, &c), ERR_EXISTS);
    assert_string_equal(c.grant_id, "gc");
    assert_true(c.used);
    store_code_clear(&c);
    assert_int_equal(store_code_take(st, unknown, &c), ERR_NOTFOUND);
    assert_null(c.grant_id);

    /* Optional fields round-trip as NULL. */
    struct store_code bare = {
        .grant_id = "gc", .client_id = "c", .redirect_uri = "r", .expires_at = 1};
    memcpy(bare.hash, unknown, sizeof(unknown));
    assert_int_equal(store_code_put(st, &bare), 0);
    assert_int_equal(store_code_take(st, unknown, &c), 0);
    assert_null(c.code_challenge);
    assert_null(c.scope);
    assert_null(c.resource);
    store_code_clear(&c);
}

/* Racers: each takes the same code, on its own handle or on a shared one. */
#define RACERS 8
struct racer {
    const char *url; /* own handle when non-NULL */
    struct store *shared;
    pthread_barrier_t *barrier;
    const unsigned char *hash;
    int result;
};

static void *race_take(void *arg)
{
    struct racer *r = arg;
    struct store *st = r->shared;
    r->result = 1;
    if (r->url != NULL && store_open(r->url, &st) != 0)
        st = NULL;
    pthread_barrier_wait(r->barrier);
    if (st != NULL) {
        struct store_code c;
        r->result = store_code_take(st, r->hash, &c);
        store_code_clear(&c);
    }
    if (r->url != NULL)
        store_close(st);
    return NULL;
}

static void race(struct fx *f, int seed, bool own_handles)
{
    unsigned char h[STORE_HASH_LEN];
    mkhash(h, seed);
    put_code(f->st, seed, "race", 9000);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACERS);
    struct racer racers[RACERS];
    pthread_t tid[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.url = own_handles ? f->url : NULL,
                                   .shared = own_handles ? NULL : f->st,
                                   .barrier = &barrier,
                                   .hash = h};
        assert_int_equal(pthread_create(&tid[i], NULL, race_take, &racers[i]), 0);
    }
    int won = 0, replayed = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(tid[i], NULL);
        if (racers[i].result == 0)
            won++;
        else if (racers[i].result == ERR_EXISTS)
            replayed++;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(won, 1);
    assert_int_equal(replayed, RACERS - 1);
}

static void test_code_race(void **state)
{
    struct fx *f = *state;
    put_grant(f->st, "race", 7, "client-1", 100);
    for (int round = 0; round < 5; round++) {
        race(f, 40 + round, true);
        race(f, 50 + round, false);
    }
}

/* ---- refresh tokens ---- */

/* In a child process: reusing r1 is detected, rotating r2 to r3 works. */
static int child_rotate(const char *url)
{
    struct store *st;
    struct store_refresh old;
    unsigned char r1[STORE_HASH_LEN], r2[STORE_HASH_LEN];
    int bad = 0;
    if (store_open(url, &st) != 0)
        return 10;
    mkhash(r1, 61);
    mkhash(r2, 62);
    struct store_refresh r3 = {.grant_id = "gr", .created_at = 1200, .expires_at = 9000};
    mkhash(r3.hash, 63);
    if (store_refresh_rotate(st, r1, &r3, 1200, &old) != ERR_EXISTS)
        bad |= 1;
    store_refresh_clear(&old);
    if (store_refresh_rotate(st, r2, &r3, 1200, &old) != 0 || old.rotated_at != 1200)
        bad |= 2;
    store_refresh_clear(&old);
    store_close(st);
    return bad;
}

static void test_refresh_rotation(void **state)
{
    struct fx *f = *state;
    struct store *st = f->st;
    put_grant(st, "gr", 7, "client-1", 100);
    put_grant(st, "other", 7, "client-1", 100);
    put_refresh(st, 61, "gr", 9000);
    unsigned char r1[STORE_HASH_LEN], r2[STORE_HASH_LEN], r3[STORE_HASH_LEN], u[STORE_HASH_LEN];
    mkhash(r1, 61);
    mkhash(r2, 62);
    mkhash(r3, 63);
    mkhash(u, 64);

    struct store_refresh cur, old;
    assert_int_equal(store_refresh_get(st, r1, &cur), 0);
    assert_memory_equal(cur.hash, r1, STORE_HASH_LEN);
    assert_string_equal(cur.grant_id, "gr");
    assert_int_equal(cur.created_at, 1000);
    assert_int_equal(cur.expires_at, 9000);
    assert_int_equal(cur.rotated_at, 0);
    store_refresh_clear(&cur);

    struct store_refresh next = {.created_at = 1100, .expires_at = 9100}; /* grant: old's */
    memcpy(next.hash, r2, sizeof(r2));
    assert_int_equal(store_refresh_rotate(st, r1, &next, 1100, &old), 0);
    assert_memory_equal(old.hash, r1, STORE_HASH_LEN);
    assert_string_equal(old.grant_id, "gr");
    assert_int_equal(old.rotated_at, 1100);
    store_refresh_clear(&old);

    /* Reuse of the old one: refused with its record. */
    struct store_refresh other = {.created_at = 1150, .expires_at = 9100};
    memcpy(other.hash, u, sizeof(u));
    assert_int_equal(store_refresh_rotate(st, r1, &other, 1150, &old), ERR_EXISTS);
    assert_string_equal(old.grant_id, "gr");
    assert_int_equal(old.rotated_at, 1100);
    store_refresh_clear(&old);
    assert_int_equal(store_refresh_get(st, u, &cur), ERR_NOTFOUND); /* nothing stored */
    assert_int_equal(store_refresh_rotate(st, u, &other, 1150, &old), ERR_NOTFOUND);
    assert_null(old.grant_id);
    /* Next must stay in the old one's grant. */
    other.grant_id = "other";
    assert_int_equal(store_refresh_rotate(st, r2, &other, 1150, &old), ERR_INVALID);
    assert_null(old.grant_id);

    assert_int_equal(store_refresh_get(st, r2, &cur), 0);
    assert_string_equal(cur.grant_id, "gr");
    assert_int_equal(cur.rotated_at, 0);
    assert_int_equal(cur.expires_at, 9100);
    store_refresh_clear(&cur);

    /* Another process sees the same state and continues the chain. */
    store_close(f->st); /* SQLite connections must not cross fork() */
    f->st = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_rotate(f->url));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(store_open(f->url, &f->st), 0);
    st = f->st;

    assert_int_equal(store_refresh_get(st, r2, &cur), 0);
    assert_int_equal(cur.rotated_at, 1200);
    store_refresh_clear(&cur);
    assert_int_equal(store_refresh_get(st, r3, &cur), 0);
    assert_int_equal(cur.rotated_at, 0);
    store_refresh_clear(&cur);

    /* A second handle in this process agrees. */
    struct store *st2;
    assert_int_equal(store_open(f->url, &st2), 0);
    assert_int_equal(store_refresh_rotate(st2, r2, &other, 1300, &old), ERR_EXISTS);
    store_refresh_clear(&old);
    store_close(st2);
}

/* ---- consents, browser sessions ---- */

static void test_consents(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "consenter");
    char *scope;
    assert_int_equal(store_consent_get(st, uid, "client-1", &scope), ERR_NOTFOUND);
    assert_null(scope);
    assert_int_equal(store_consent_put(st, uid, "client-1", "mcp", 100), 0);
    assert_int_equal(store_consent_get(st, uid, "client-1", &scope), 0);
    assert_string_equal(scope, "mcp");
    free(scope);
    assert_int_equal(store_consent_put(st, uid, "client-1", "mcp read", 200), 0);
    assert_int_equal(store_consent_get(st, uid, "client-1", &scope), 0);
    assert_string_equal(scope, "mcp read");
    free(scope);
    assert_int_equal(store_consent_get(st, uid, "client-2", &scope), ERR_NOTFOUND);
    assert_int_equal(store_consent_put(st, 424242, "client-1", "mcp", 100), ERR_NOTFOUND);
    assert_int_equal(store_consent_remove(st, uid, "client-1"), 0);
    assert_int_equal(store_consent_remove(st, uid, "client-1"), ERR_NOTFOUND);
    assert_int_equal(store_consent_get(st, uid, "client-1", &scope), ERR_NOTFOUND);
}

static void test_bsessions(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "browser");
    struct store_browser_session b = {
        .user_id = uid, .csrf = "csrf-token-1", .created_at = 100, .expires_at = 1000};
    mkhash(b.hash, 71);
    assert_int_equal(store_bsession_put(st, &b), 0);
    assert_int_equal(store_bsession_put(st, &b), ERR_EXISTS);
    struct store_browser_session other = {.user_id = 424242, .csrf = "x", .expires_at = 1000};
    mkhash(other.hash, 72);
    assert_int_equal(store_bsession_put(st, &other), ERR_NOTFOUND); /* no such user */

    struct store_browser_session out;
    assert_int_equal(store_bsession_get(st, b.hash, 999, &out), 0);
    assert_memory_equal(out.hash, b.hash, STORE_HASH_LEN);
    assert_int_equal(out.user_id, uid);
    assert_string_equal(out.csrf, "csrf-token-1");
    assert_int_equal(out.created_at, 100);
    assert_int_equal(out.expires_at, 1000);
    store_bsession_clear(&out);
    store_bsession_clear(NULL);
    assert_int_equal(store_bsession_get(st, b.hash, 1000, &out), ERR_NOTFOUND); /* expired */
    assert_null(out.csrf);
    assert_int_equal(store_bsession_get(st, other.hash, 1, &out), ERR_NOTFOUND);
    assert_int_equal(store_bsession_remove(st, b.hash), 0);
    assert_int_equal(store_bsession_remove(st, b.hash), ERR_NOTFOUND);
    assert_int_equal(store_bsession_get(st, b.hash, 1, &out), ERR_NOTFOUND);
}

static void test_bsession_device_failures(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "guesser");
    struct store_browser_session b = {.user_id = uid, .csrf = "c", .expires_at = 1000}, out;
    mkhash(b.hash, 73);
    assert_int_equal(store_bsession_put(st, &b), 0);
    assert_int_equal(store_bsession_get(st, b.hash, 1, &out), 0);
    assert_int_equal(out.device_failures, 0);
    store_bsession_clear(&out);
    int n = -1;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_bsession_device_failure(st, b.hash, &n), 0);
        assert_int_equal(n, i);
    }
    assert_int_equal(store_bsession_get(st, b.hash, 1, &out), 0);
    assert_int_equal(out.device_failures, 3);
    store_bsession_clear(&out);
    unsigned char unknown[STORE_HASH_LEN];
    mkhash(unknown, 74);
    assert_int_equal(store_bsession_device_failure(st, unknown, &n), ERR_NOTFOUND);
    assert_int_equal(n, 0);
}

/* ---- device authorizations ---- */

static void put_device(struct store *st, int seed, int64_t created_at, int64_t expires_at)
{
    struct store_device d = {.client_id = "device-client",
                             .scope = "mcp",
                             .resource = "https://mcp.example/mcp",
                             .created_at = created_at,
                             .expires_at = expires_at,
                             .interval = 5};
    mkhash(d.hash, seed);
    mkhash(d.user_hash, seed + 100);
    assert_int_equal(store_device_put(st, &d), 0);
}

static void test_device(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "approver");
    unsigned char h[STORE_HASH_LEN], uh[STORE_HASH_LEN], other[STORE_HASH_LEN];
    mkhash(h, 91);
    mkhash(uh, 191);
    mkhash(other, 92);
    put_device(st, 91, 1000, 1600);

    /* The device code and the user code are each unique. */
    struct store_device dup = {.client_id = "c", .created_at = 1000, .expires_at = 1600,
                               .interval = 5};
    memcpy(dup.hash, h, sizeof(h));
    mkhash(dup.user_hash, 93);
    assert_int_equal(store_device_put(st, &dup), ERR_EXISTS);
    memcpy(dup.hash, other, sizeof(other));
    memcpy(dup.user_hash, uh, sizeof(uh));
    assert_int_equal(store_device_put(st, &dup), ERR_EXISTS);

    struct store_device d;
    assert_int_equal(store_device_get(st, h, &d), 0);
    assert_memory_equal(d.hash, h, STORE_HASH_LEN);
    assert_memory_equal(d.user_hash, uh, STORE_HASH_LEN);
    assert_string_equal(d.client_id, "device-client");
    assert_string_equal(d.scope, "mcp");
    assert_string_equal(d.resource, "https://mcp.example/mcp");
    assert_int_equal(d.created_at, 1000);
    assert_int_equal(d.expires_at, 1600);
    assert_int_equal(d.interval, 5);
    assert_int_equal(d.last_poll, 0);
    assert_int_equal(d.status, DEVICE_PENDING);
    assert_int_equal(d.user_id, 0);
    assert_null(d.grant_id);
    store_device_clear(&d);
    store_device_clear(NULL);
    assert_int_equal(store_device_get_user(st, uh, &d), 0);
    assert_memory_equal(d.hash, h, STORE_HASH_LEN);
    store_device_clear(&d);
    assert_int_equal(store_device_get(st, other, &d), ERR_NOTFOUND);
    assert_int_equal(store_device_get_user(st, other, &d), ERR_NOTFOUND);

    /* Polls while pending: the first is never too soon; one sooner than the interval slows
     * the client down by step; one after the (grown) interval does not. */
    bool slow = true;
    assert_int_equal(store_device_poll(st, h, 1010, 5, &d, &slow), 0);
    assert_int_equal(d.status, DEVICE_PENDING);
    assert_false(slow);
    store_device_clear(&d);
    assert_int_equal(store_device_poll(st, h, 1012, 5, &d, &slow), 0);
    assert_true(slow);
    assert_int_equal(d.last_poll, 1010);
    assert_int_equal(d.interval, 5);
    store_device_clear(&d);
    assert_int_equal(store_device_poll(st, h, 1020, 5, &d, &slow), 0);
    assert_true(slow); /* 8 s after the last poll, the interval is 10 now */
    assert_int_equal(d.interval, 10);
    store_device_clear(&d);
    assert_int_equal(store_device_poll(st, h, 1040, 5, &d, &slow), 0);
    assert_false(slow);
    assert_int_equal(d.interval, 15);
    assert_int_equal(d.last_poll, 1020);
    store_device_clear(&d);
    assert_int_equal(store_device_poll(st, other, 1040, 5, &d, &slow), ERR_NOTFOUND);
    assert_false(slow);

    /* Approval stores the grant with it; a second decision finds nothing pending. */
    struct store_grant g = {.grant_id = "gd", .user_id = uid, .client_id = "device-client",
                            .scope = "mcp", .resource = "https://mcp.example/mcp",
                            .created_at = 1050};
    assert_int_equal(store_device_decide(st, uh, 1600, uid, &g), ERR_NOTFOUND); /* expired */
    assert_int_equal(store_device_decide(st, other, 1050, uid, &g), ERR_NOTFOUND);
    struct store_grant gout;
    assert_int_equal(store_grant_get(st, "gd", &gout), ERR_NOTFOUND); /* rolled back */
    assert_int_equal(store_device_decide(st, uh, 1050, uid, &g), 0);
    assert_int_equal(store_grant_get(st, "gd", &gout), 0);
    assert_int_equal(gout.user_id, uid);
    store_grant_clear(&gout);
    assert_int_equal(store_device_decide(st, uh, 1051, uid, NULL), ERR_NOTFOUND);
    assert_int_equal(store_device_get(st, h, &d), 0);
    assert_int_equal(d.status, DEVICE_APPROVED);
    assert_int_equal(d.user_id, uid);
    assert_string_equal(d.grant_id, "gd");
    store_device_clear(&d);

    /* Exactly one poll takes the approval; later ones see the code spent. */
    assert_int_equal(store_device_poll(st, h, 1060, 5, &d, &slow), 0);
    assert_int_equal(d.status, DEVICE_APPROVED);
    assert_string_equal(d.grant_id, "gd");
    store_device_clear(&d);
    assert_int_equal(store_device_poll(st, h, 1061, 5, &d, &slow), 0);
    assert_int_equal(d.status, DEVICE_ISSUED);
    assert_false(slow);
    store_device_clear(&d);

    /* Denial; an approved code past its expiry is not taken. */
    put_device(st, 94, 1000, 1600);
    mkhash(uh, 194);
    mkhash(h, 94);
    assert_int_equal(store_device_decide(st, uh, 1100, uid, NULL), 0);
    assert_int_equal(store_device_poll(st, h, 1101, 5, &d, &slow), 0);
    assert_int_equal(d.status, DEVICE_DENIED);
    assert_null(d.grant_id);
    store_device_clear(&d);
    put_device(st, 95, 1000, 1600);
    mkhash(uh, 195);
    mkhash(h, 95);
    g.grant_id = "gd2";
    assert_int_equal(store_device_decide(st, uh, 1100, uid, &g), 0);
    assert_int_equal(store_device_poll(st, h, 1600, 5, &d, &slow), 0);
    assert_int_equal(d.status, DEVICE_APPROVED);
    store_device_clear(&d);
    assert_int_equal(store_device_get(st, h, &d), 0);
    assert_int_equal(d.status, DEVICE_APPROVED); /* unchanged: the caller says expired */
    store_device_clear(&d);

    /* A new code clears the ones expired before it. */
    put_device(st, 96, 1600, 2200);
    assert_int_equal(store_device_get(st, h, &d), ERR_NOTFOUND);
    mkhash(h, 96);
    assert_int_equal(store_device_get(st, h, &d), 0);
    store_device_clear(&d);
}

/* Racers poll one approved code: exactly one takes it. */
struct poller {
    const char *url;
    pthread_barrier_t *barrier;
    const unsigned char *hash;
    int status;
};

static void *race_poll(void *arg)
{
    struct poller *p = arg;
    struct store *st = NULL;
    p->status = -1;
    if (store_open(p->url, &st) != 0)
        st = NULL;
    pthread_barrier_wait(p->barrier);
    struct store_device d;
    bool slow;
    if (st != NULL && store_device_poll(st, p->hash, 1100, 5, &d, &slow) == 0)
        p->status = (int)d.status;
    store_device_clear(&d);
    store_close(st);
    return NULL;
}

static void test_device_race(void **state)
{
    struct fx *f = *state;
    int64_t uid = add_user(f->st, "racer");
    for (int round = 0; round < 3; round++) {
        unsigned char h[STORE_HASH_LEN], uh[STORE_HASH_LEN];
        char gid[16];
        snprintf(gid, sizeof(gid), "race-%d", round);
        put_device(f->st, 110 + round, 1000, 1600);
        mkhash(h, 110 + round);
        mkhash(uh, 210 + round);
        struct store_grant g = {.grant_id = gid, .user_id = uid, .client_id = "device-client",
                                .created_at = 1050};
        assert_int_equal(store_device_decide(f->st, uh, 1050, uid, &g), 0);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, RACERS);
        struct poller p[RACERS];
        pthread_t tid[RACERS];
        for (int i = 0; i < RACERS; i++) {
            p[i] = (struct poller){.url = f->url, .barrier = &barrier, .hash = h};
            assert_int_equal(pthread_create(&tid[i], NULL, race_poll, &p[i]), 0);
        }
        int took = 0, spent = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(tid[i], NULL);
            took += p[i].status == DEVICE_APPROVED;
            spent += p[i].status == DEVICE_ISSUED;
        }
        pthread_barrier_destroy(&barrier);
        assert_int_equal(took, 1);
        assert_int_equal(spent, RACERS - 1);
    }
}

/* ---- signing keys ---- */

static void test_keys(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    struct store_key *keys;
    size_t n;
    assert_int_equal(store_key_list(st, &keys, &n), 0);
    assert_int_equal(n, 0);
    free(keys);

    static const unsigned char sealed1[] = {0x00, 0x01, 0xff, 0x00, 0x7f};
    static const unsigned char sealed2[] = {0xde, 0xad, 0x00, 0xbe, 0xef, 0x00};
    struct store_key k1 = {.kid = "k1",
                           .alg = "ES256",
                           .sealed = (unsigned char *)sealed1,
                           .sealed_len = sizeof(sealed1),
                           .public_jwk = "{\"kty\":\"EC\",\"kid\":\"k1\"}",
                           .created_at = 100};
    assert_int_equal(store_key_put(st, &k1), 0);
    assert_int_equal(store_key_put(st, &k1), ERR_EXISTS);
    struct store_key k2 = k1;
    k2.kid = "k2";
    k2.sealed = (unsigned char *)sealed2;
    k2.sealed_len = sizeof(sealed2);
    k2.public_jwk = "{\"kty\":\"EC\",\"kid\":\"k2\"}";
    k2.created_at = 200;
    assert_int_equal(store_key_retire_current(st, 200), 0);
    assert_int_equal(store_key_put(st, &k2), 0);
    assert_int_equal(store_key_retire_current(st, 300), 0);
    struct store_key k3 = k2;
    k3.kid = "k3";
    k3.created_at = 300;
    assert_int_equal(store_key_put(st, &k3), 0);
    /* Two instances racing at first start may both put a current key: both are kept. */
    struct store_key k4 = k3;
    k4.kid = "k4";
    k4.created_at = 310;
    assert_int_equal(store_key_put(st, &k4), 0);

    assert_int_equal(store_key_list(st, &keys, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(keys[0].kid, "k4"); /* current first, newest first */
    assert_int_equal(keys[0].retired_at, 0);
    assert_string_equal(keys[1].kid, "k3");
    assert_int_equal(keys[1].retired_at, 0);
    assert_string_equal(keys[2].kid, "k2"); /* then the most recently retired */
    assert_int_equal(keys[2].retired_at, 300);
    assert_memory_equal(keys[2].sealed, sealed2, sizeof(sealed2));
    assert_int_equal(keys[2].sealed_len, sizeof(sealed2));
    assert_string_equal(keys[3].kid, "k1");
    assert_int_equal(keys[3].retired_at, 200);
    assert_string_equal(keys[3].alg, "ES256");
    assert_int_equal(keys[3].sealed_len, sizeof(sealed1));
    assert_memory_equal(keys[3].sealed, sealed1, sizeof(sealed1));
    assert_string_equal(keys[3].public_jwk, "{\"kty\":\"EC\",\"kid\":\"k1\"}");
    assert_int_equal(keys[3].created_at, 100);
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
    store_key_clear(NULL);

    /* Retiring marks every current key. */
    assert_int_equal(store_key_retire_current(st, 400), 0);
    assert_int_equal(store_key_list(st, &keys, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_true(keys[i].retired_at != 0);
        store_key_clear(&keys[i]);
    }
    assert_int_equal(keys[0].retired_at, 0); /* cleared */
    free(keys);
}

/* ---- audit ---- */

static void test_audit(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    assert_int_equal(store_audit_add(st, 100, "login_ok", "alice", NULL, "127.0.0.1", NULL), 0);
    assert_int_equal(store_audit_add(st, 200, "client_registered", NULL, "dcr-1", "::1",
                                     json_pack("{s:s}", "client_name", "x")),
                     0);
    assert_int_equal(store_audit_add(st, 300, "token_issued", "alice", "dcr-1", NULL,
                                     json_pack("{s:[i,i],s:b}", "n", 1, 2, "ok", 1)),
                     0);
    assert_int_equal(store_audit_add(st, 300, "refreshed", "bob", "dcr-1", NULL, NULL), 0);

    json_t *list;
    assert_int_equal(store_audit_list(st, 0, NULL, 10, &list), 0);
    assert_int_equal(json_array_size(list), 4);
    json_t *o = json_array_get(list, 0); /* newest first; ties newest added first */
    assert_string_equal(json_string_value(json_object_get(o, "event")), "refreshed");
    o = json_array_get(list, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "ts")), 300);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "token_issued");
    assert_string_equal(json_string_value(json_object_get(o, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(o, "client")), "dcr-1");
    assert_true(json_is_null(json_object_get(o, "ip")));
    json_t *want = json_pack("{s:[i,i],s:b}", "n", 1, 2, "ok", 1);
    assert_true(json_equal(json_object_get(o, "detail"), want));
    json_decref(want);
    o = json_array_get(list, 3);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "login_ok");
    assert_true(json_is_null(json_object_get(o, "client")));
    assert_true(json_is_null(json_object_get(o, "detail")));
    json_decref(list);

    assert_int_equal(store_audit_list(st, 200, NULL, 10, &list), 0);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    assert_int_equal(store_audit_list(st, 0, "alice", 10, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "event")),
                        "login_ok");
    json_decref(list);
    assert_int_equal(store_audit_list(st, 150, "alice", 10, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(store_audit_list(st, 0, NULL, 2, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    assert_int_equal(store_audit_list(st, 0, "nobody", 10, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

/* ---- purge ---- */

static void test_purge(void **state)
{
    struct store *st = ((struct fx *)*state)->st;
    int64_t uid = add_user(st, "purged");
    put_grant(st, "gp", uid, "client-1", 100);
    put_code(st, 81, "gp", 150);
    put_code(st, 82, "gp", 250);
    put_refresh(st, 83, "gp", 150);
    put_refresh(st, 84, "gp", 250);
    unsigned char a1[STORE_HASH_LEN], a2[STORE_HASH_LEN], h[STORE_HASH_LEN];
    mkhash(a1, 85);
    mkhash(a2, 86);
    assert_int_equal(store_access_put(st, a1, "gp", 150), 0);
    assert_int_equal(store_access_put(st, a2, "gp", 250), 0);
    struct store_browser_session b1 = {.user_id = uid, .csrf = "c", .expires_at = 150};
    struct store_browser_session b2 = {.user_id = uid, .csrf = "c", .expires_at = 250};
    mkhash(b1.hash, 87);
    mkhash(b2.hash, 88);
    assert_int_equal(store_bsession_put(st, &b1), 0);
    assert_int_equal(store_bsession_put(st, &b2), 0);

    put_device(st, 89, 100, 150);
    put_device(st, 90, 100, 250);

    assert_int_equal(store_purge(st, 200), 0);

    struct store_code c;
    mkhash(h, 81);
    assert_int_equal(store_code_take(st, h, &c), ERR_NOTFOUND);
    mkhash(h, 82);
    assert_int_equal(store_code_take(st, h, &c), 0);
    store_code_clear(&c);
    struct store_refresh r;
    mkhash(h, 83);
    assert_int_equal(store_refresh_get(st, h, &r), ERR_NOTFOUND);
    mkhash(h, 84);
    assert_int_equal(store_refresh_get(st, h, &r), 0);
    store_refresh_clear(&r);
    assert_int_equal(store_access_check(st, a1), ERR_NOTFOUND);
    assert_int_equal(store_access_check(st, a2), 0);
    struct store_device d;
    mkhash(h, 89);
    assert_int_equal(store_device_get(st, h, &d), ERR_NOTFOUND);
    mkhash(h, 90);
    assert_int_equal(store_device_get(st, h, &d), 0);
    store_device_clear(&d);
    struct store_browser_session bo;
    assert_int_equal(store_bsession_get(st, b1.hash, 0, &bo), ERR_NOTFOUND);
    assert_int_equal(store_bsession_get(st, b2.hash, 0, &bo), 0);
    store_bsession_clear(&bo);
    /* Grants and users stay. */
    struct store_grant g;
    assert_int_equal(store_grant_get(st, "gp", &g), 0);
    store_grant_clear(&g);
}

int main(void)
{
    log_set_level(LOG_OFF);
    if (getenv("STORE_TEST_LOG") != NULL)
        log_set_level(LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_no_migration_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_remove_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grants_and_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bsessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bsession_device_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
