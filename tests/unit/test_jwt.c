/* core/crypto sealing and passwords; oauth/jwt: ES256 access tokens, their keys in a temporary
 * sqlite store, and the hostile tokens a verifier must refuse, each named after its rule.
 *
 * Hostile tokens are built here with OpenSSL directly. To show that a rule (not the signature)
 * refuses a token, many are signed with the real current key, which the test unseals from the
 * store with the master key, as only a holder of both could. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/jwt.h"
#include "store/store.h"

#define NOW 1700000000
#define KEEP 3600

static const unsigned char master_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char master_b[32] = "fedcba9876543210fedcba9876543210";

/* ---- helpers ---- */

static char *tmp_path(const char *what)
{
    static int seq;
    return xasprintf("/tmp/mcpgate-test-jwt-%ld-%d-%s", (long)getpid(), seq++, what);
}

static void db_remove(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s%s", path, sfx[i]);
        unlink(p);
        free(p);
    }
}

struct fx {
    char *path;
    struct store *st;
    struct jwt_keyset *ks;
    EVP_PKEY *real; /* the current private key, unsealed by the test */
    char *kid;
};

static char *b64s(const char *s)
{
    return b64url_encode(s, strlen(s));
}

static char *b64_decode_str(const char *s, size_t n)
{
    unsigned char *d;
    size_t dl;
    if (b64url_decode(s, n, &d, &dl) != 0)
        return NULL;
    char *out = xstrndup((const char *)d, dl);
    free(d);
    return out;
}

/* The decoded header of a compact token (new string). */
static char *token_header(const char *tok)
{
    const char *dot = strchr(tok, '.');
    assert_non_null(dot);
    return b64_decode_str(tok, (size_t)(dot - tok));
}

static BIGNUM *bn_b64(const char *s)
{
    unsigned char *d;
    size_t dl;
    assert_int_equal(b64url_decode(s, strlen(s), &d, &dl), 0);
    BIGNUM *bn = BN_bin2bn(d, (int)dl, NULL);
    crypto_wipe(d, dl);
    free(d);
    return bn;
}

/* 0x04 || x || y from base64url coordinates. */
static void point_from_xy(const char *x, const char *y, unsigned char pub[65])
{
    unsigned char *d;
    size_t dl;
    pub[0] = 4;
    assert_int_equal(b64url_decode(x, strlen(x), &d, &dl), 0);
    assert_int_equal(dl, 32);
    memcpy(pub + 1, d, 32);
    free(d);
    assert_int_equal(b64url_decode(y, strlen(y), &d, &dl), 0);
    assert_int_equal(dl, 32);
    memcpy(pub + 33, d, 32);
    free(d);
}

/* A P-256 EVP_PKEY from JWK members; d may be NULL for a public key. */
static EVP_PKEY *pkey_from_jwk(const char *d, const char *x, const char *y)
{
    unsigned char pub[65];
    EVP_PKEY *pk = NULL;
    BIGNUM *bn = d != NULL ? bn_b64(d) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    point_from_xy(x, y, pub);
    assert_int_equal(
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 65), 1);
    if (bn != NULL)
        assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(
        EVP_PKEY_fromdata(ctx, &pk, bn ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn);
    return pk;
}

/* x and y (base64url, new strings) of a P-256 EVP_PKEY. */
static void pkey_xy(EVP_PKEY *pk, char **x, char **y)
{
    unsigned char pub[65];
    size_t len = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
    assert_int_equal(len, 65);
    assert_int_equal(pub[0], 4);
    *x = b64url_encode(pub + 1, 32);
    *y = b64url_encode(pub + 33, 32);
}

/* ES256 over data: the JWS form R || S (64 bytes). */
static void es256_sign(EVP_PKEY *pk, const char *data, unsigned char sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t derlen = sizeof(der);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)data, strlen(data)),
                     1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
}

/* Independent ES256 check of a compact token with OpenSSL (interoperability of jwt_sign). */
static int es256_verify(EVP_PKEY *pk, const char *tok)
{
    const char *dot2 = strrchr(tok, '.');
    unsigned char *sig, *der = NULL;
    size_t sl;
    if (b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &sl) != 0 || sl != 64)
        return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    int derlen = i2d_ECDSA_SIG(es, &der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)tok,
                              (size_t)(dot2 - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    free(sig);
    return ok;
}

/* header.payload.signature from JSON texts; signed by pk (ES256) when not NULL, else with an
 * empty signature. */
static char *tok3(const char *header, const char *payload, EVP_PKEY *pk)
{
    char *h = b64s(header), *p = b64s(payload);
    char *input = xasprintf("%s.%s", h, p), *out;
    if (pk != NULL) {
        unsigned char sig[64];
        es256_sign(pk, input, sig);
        char *s = b64url_encode(sig, 64);
        out = xasprintf("%s.%s", input, s);
        free(s);
    } else {
        out = xasprintf("%s.", input);
    }
    free(h);
    free(p);
    free(input);
    return out;
}

/* The current private key, unsealed from the store as only a master-key holder could. */
static EVP_PKEY *real_key(struct store *st, const unsigned char master[32], char **kid)
{
    struct store_key *keys;
    size_t n;
    EVP_PKEY *pk = NULL;
    assert_int_equal(store_key_list(st, &keys, &n), 0);
    for (size_t i = 0; i < n && pk == NULL; i++) {
        if (keys[i].retired_at != 0)
            continue;
        unsigned char *plain;
        size_t pl;
        assert_int_equal(crypto_open(master, keys[i].kid, strlen(keys[i].kid), keys[i].sealed,
                                     keys[i].sealed_len, &plain, &pl),
                         0);
        json_t *j = json_loadb((const char *)plain, pl, 0, NULL);
        assert_non_null(j);
        pk = pkey_from_jwk(json_string_value(json_object_get(j, "d")),
                           json_string_value(json_object_get(j, "x")),
                           json_string_value(json_object_get(j, "y")));
        json_decref(j);
        crypto_wipe(plain, pl);
        free(plain);
        *kid = xstrdup(keys[i].kid);
    }
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
    assert_non_null(pk);
    return pk;
}

static struct store *store_new(char **path)
{
    struct store *st = NULL;
    *path = tmp_path("db");
    char *url = xasprintf("sqlite:%s", *path);
    assert_int_equal(store_open(url, &st), 0);
    free(url);
    return st;
}

static int fx_setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    f->st = store_new(&f->path);
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW, KEEP, &f->ks), 0);
    f->real = real_key(f->st, master_a, &f->kid);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    jwt_keyset_free(f->ks);
    store_close(f->st);
    db_remove(f->path);
    free(f->path);
    EVP_PKEY_free(f->real);
    free(f->kid);
    free(f);
    return 0;
}

static json_t *claims_new(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "iss", "https://as.example", "sub",
                     "alice", "aud", "https://rs.example/mcp", "exp", (json_int_t)NOW + 300, "iat",
                     (json_int_t)NOW, "jti", "j-1", "client_id", "c1");
}

static const char *const payload_ok =
    "{\"iss\":\"https://as.example\",\"sub\":\"alice\",\"exp\":1700000300}";

/* The verdict on a token: returns why (a static string) or NULL when accepted. */
static const char *verdict(const struct jwt_keyset *ks, const char *tok)
{
    json_t *c = (json_t *)1;
    const char *why = NULL;
    int r = jwt_verify(ks, tok, &c, &why);
    if (r == 0) {
        assert_non_null(c);
        assert_null(why);
        json_decref(c);
        return NULL;
    }
    assert_int_equal(r, ERR_INVALID);
    assert_null(c);
    assert_non_null(why);
    return why;
}

static void refused(const struct jwt_keyset *ks, const char *tok, const char *want)
{
    const char *why = verdict(ks, tok);
    if (why == NULL)
        fail_msg("accepted: %s", tok);
    if (want != NULL && strcmp(why, want) != 0)
        fail_msg("refused with '%s', expected '%s'", why, want);
}

/* A header for kid with extra members appended (JSON text starting with a comma, or ""). */
static char *hdr(const char *kid, const char *extra)
{
    return xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"ES256\",\"kid\":\"%s\"%s}", kid, extra);
}

/* ---- crypto: seal / open ---- */

static void test_seal_roundtrip(void **state)
{
    static const char msg[] = "the private half of a signing key";
    unsigned char *s1, *s2, *p;
    size_t n1, n2, pl;
    assert_int_equal(crypto_seal(master_a, "kid-1", 5, msg, sizeof(msg) - 1, &s1, &n1), 0);
    assert_int_equal(n1, 12 + sizeof(msg) - 1 + 16);
    assert_int_equal(crypto_seal(master_a, "kid-1", 5, msg, sizeof(msg) - 1, &s2, &n2), 0);
    assert_memory_not_equal(s1, s2, 12); /* fresh nonce each time */
    assert_int_equal(crypto_open(master_a, "kid-1", 5, s1, n1, &p, &pl), 0);
    assert_int_equal(pl, sizeof(msg) - 1);
    assert_memory_equal(p, msg, pl);
    assert_int_equal(p[pl], '\0');
    free(p);
    free(s1);
    free(s2);
    /* No aad, and an empty plaintext. */
    assert_int_equal(crypto_seal(master_a, NULL, 0, "", 0, &s1, &n1), 0);
    assert_int_equal(n1, 28);
    assert_int_equal(crypto_open(master_a, NULL, 0, s1, n1, &p, &pl), 0);
    assert_int_equal(pl, 0);
    free(p);
    free(s1);
}

static void test_seal_tamper_any_byte(void **state)
{
    static const char msg[] = "secret";
    unsigned char *s, *p;
    size_t n, pl;
    assert_int_equal(crypto_seal(master_a, "aad", 3, msg, 6, &s, &n), 0);
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            s[i] ^= (unsigned char)(1u << bit);
            p = (unsigned char *)1;
            assert_int_equal(crypto_open(master_a, "aad", 3, s, n, &p, &pl), ERR_INTEGRITY);
            assert_null(p);
            s[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* Truncated by one byte (the tag shortened): integrity; below nonce + tag: parse. */
    assert_int_equal(crypto_open(master_a, "aad", 3, s, n - 1, &p, &pl), ERR_INTEGRITY);
    assert_int_equal(crypto_open(master_a, "aad", 3, s, 27, &p, &pl), ERR_PARSE);
    assert_int_equal(crypto_open(master_a, "aad", 3, s, 0, &p, &pl), ERR_PARSE);
    assert_int_equal(crypto_open(master_a, "aad", 3, s, n, &p, &pl), 0);
    free(p);
    free(s);
}

static void test_seal_wrong_key(void **state)
{
    unsigned char *s, *p;
    size_t n, pl;
    assert_int_equal(crypto_seal(master_a, "aad", 3, "x", 1, &s, &n), 0);
    assert_int_equal(crypto_open(master_b, "aad", 3, s, n, &p, &pl), ERR_INTEGRITY);
    free(s);
}

static void test_seal_wrong_aad(void **state)
{
    unsigned char *s, *p;
    size_t n, pl;
    assert_int_equal(crypto_seal(master_a, "kid-1", 5, "x", 1, &s, &n), 0);
    assert_int_equal(crypto_open(master_a, "kid-2", 5, s, n, &p, &pl), ERR_INTEGRITY);
    assert_int_equal(crypto_open(master_a, "kid-", 4, s, n, &p, &pl), ERR_INTEGRITY);
    assert_int_equal(crypto_open(master_a, NULL, 0, s, n, &p, &pl), ERR_INTEGRITY);
    free(s);
    assert_int_equal(crypto_seal(master_a, NULL, 0, "x", 1, &s, &n), 0);
    assert_int_equal(crypto_open(master_a, "kid-1", 5, s, n, &p, &pl), ERR_INTEGRITY);
    free(s);
}

/* ---- crypto: passwords ---- */

static void test_password_hash_verify(void **state)
{
    char *h1, *h2;
    assert_int_equal(crypto_password_hash("correct horse battery staple", &h1), 0);
    assert_true(strncmp(h1, "$argon2id$v=19$m=65536,t=3,p=1$", 31) == 0);
    assert_int_equal(crypto_password_verify(h1, "correct horse battery staple"), 1);
    assert_int_equal(crypto_password_verify(h1, "correct horse battery stapl"), 0);
    assert_int_equal(crypto_password_verify(h1, ""), 0);
    assert_int_equal(crypto_password_hash("correct horse battery staple", &h2), 0);
    assert_string_not_equal(h1, h2); /* random salt */
    free(h1);
    free(h2);
}

static void test_password_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "plaintext",
        "$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=65536,t=3,p=1$",
        "$argon2id$v=19$m=65536,t=3,p=1$!!!$!!!",
        "$argon2id$v=19$m=65536,t=3$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=-1,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        /* 4 TiB of memory: refused before argon2 tries to allocate it */
        "$argon2id$v=19$m=4294967295,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=65536,t=4000000000,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int r = crypto_password_verify(bad[i], "pw");
        if (r >= 0)
            fail_msg("'%s' gave %d", bad[i], r);
    }
}

/* ---- jwt: signing and verifying ---- */

static void test_sign_verify(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new(), *got = NULL;
    char *tok;
    const char *why = "unset";
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    assert_int_equal(jwt_verify(f->ks, tok, &got, &why), 0);
    assert_null(why);
    assert_true(json_equal(c, got));
    /* The header is exactly typ, alg, kid. */
    char *h = token_header(tok);
    json_t *hj = json_loads(h, 0, NULL);
    json_t *want = json_pack("{s:s, s:s, s:s}", "typ", "at+jwt", "alg", "ES256", "kid", f->kid);
    assert_true(json_equal(hj, want));
    /* An independent ES256 implementation accepts the signature (R || S, zero-padded). */
    assert_true(es256_verify(f->real, tok));
    json_decref(want);
    json_decref(hj);
    free(h);
    json_decref(got);
    json_decref(c);
    free(tok);
    /* Many signatures: every one verifies (R or S with leading zero bytes included). */
    for (int i = 0; i < 300; i++) {
        json_t *ci = json_pack("{s:i}", "n", i);
        assert_int_equal(jwt_sign(f->ks, ci, &tok), 0);
        assert_null(verdict(f->ks, tok));
        assert_true(es256_verify(f->real, tok));
        free(tok);
        json_decref(ci);
    }
    /* Claims must be an object. */
    json_t *arr = json_array();
    assert_int_equal(jwt_sign(f->ks, arr, &tok), ERR_INVALID);
    assert_null(tok);
    json_decref(arr);
}

static void test_claims_roundtrip(void **state)
{
    struct fx *f = *state;
    json_t *c = json_loads("{\"sub\":\"\\u00e9l\\u00e8ve \\ud83d\\ude00\",\"n\":-12345678901,"
                           "\"f\":1.5,\"t\":true,\"z\":null,\"a\":[1,\"two\",{\"3\":[]}],"
                           "\"o\":{\"nested\":{\"deep\":\"x\\\"y\\\\z\"}},\"scope\":\"a b\"}",
                           0, NULL);
    assert_non_null(c);
    char *tok;
    json_t *got;
    const char *why;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    assert_int_equal(jwt_verify(f->ks, tok, &got, &why), 0);
    assert_true(json_equal(c, got));
    json_decref(got);
    json_decref(c);
    free(tok);
}

/* Whatever the case of typ, and its media-type form, is accepted (RFC 9068 section 4). */
static void test_typ_variants_accepted(void **state)
{
    struct fx *f = *state;
    static const char *const typs[] = {"at+jwt", "AT+JWT", "application/at+jwt",
                                       "Application/At+JWT"};
    for (size_t i = 0; i < 4; i++) {
        char *h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"%s\"}", f->kid, typs[i]);
        char *t = tok3(h, payload_ok, f->real);
        assert_null(verdict(f->ks, t));
        free(t);
        free(h);
    }
}

/* ---- hostile tokens, one rule each ---- */

static void test_alg_none_refused(void **state)
{
    struct fx *f = *state;
    static const char *const algs[] = {"none", "None", "NONE", "nOnE"};
    char *t = tok3("{\"alg\":\"none\"}", payload_ok, NULL);
    refused(f->ks, t, "alg must be ES256");
    free(t);
    for (size_t i = 0; i < 4; i++) {
        char *h = xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i], f->kid);
        t = tok3(h, payload_ok, NULL);
        refused(f->ks, t, "alg must be ES256");
        free(t);
        /* Not even with a real signature attached. */
        t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "alg must be ES256");
        free(t);
        free(h);
    }
}

/* HS256 keyed with the public key (the classic confusion): the JWKS entry text, its x and y,
 * and the raw point are all tried as the HMAC secret. */
static void test_alg_hs256_confusion_refused(void **state)
{
    struct fx *f = *state;
    json_t *jwks = jwt_keyset_jwks(f->ks);
    json_t *k = json_array_get(json_object_get(jwks, "keys"), 0);
    char *ktext = json_dumps(k, JSON_COMPACT);
    char *ktext_sorted = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char point[65];
    point_from_xy(json_string_value(json_object_get(k, "x")),
                  json_string_value(json_object_get(k, "y")), point);
    const struct {
        const void *key;
        size_t len;
    } secrets[] = {
        {ktext, strlen(ktext)}, {ktext_sorted, strlen(ktext_sorted)}, {point, 65}, {point + 1, 64}};
    char *h = xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"HS256\",\"kid\":\"%s\"}", f->kid);
    char *hb = b64s(h), *pb = b64s(payload_ok);
    char *input = xasprintf("%s.%s", hb, pb);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
        unsigned char mac[32];
        assert_int_equal(
            crypto_hmac_sha256(secrets[i].key, secrets[i].len, input, strlen(input), mac), 0);
        char *mb = b64url_encode(mac, 32);
        char *t = xasprintf("%s.%s", input, mb);
        refused(f->ks, t, "alg must be ES256");
        free(t);
        free(mb);
    }
    free(input);
    free(hb);
    free(pb);
    free(h);
    free(ktext);
    free(ktext_sorted);
    json_decref(jwks);
}

static void test_alg_rs256_refused(void **state)
{
    struct fx *f = *state;
    static const char *const algs[] = {"RS256", "PS256", "ES384",  "ES512", "ES256K",
                                       "EdDSA", "es256", "ES256 ", ""};
    for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++) {
        char *h = xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i], f->kid);
        char *t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "alg must be ES256");
        free(t);
        free(h);
    }
    /* An RS256-shaped token: a 256-byte signature. */
    unsigned char sig[256];
    memset(sig, 0x5a, sizeof(sig));
    char *h = xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"RS256\",\"kid\":\"%s\"}", f->kid);
    char *t = tok3(h, payload_ok, NULL), *sb = b64url_encode(sig, sizeof(sig));
    char *t2 = xasprintf("%s%s", t, sb);
    refused(f->ks, t2, "alg must be ES256");
    /* alg missing or not a string. */
    free(t);
    t = tok3("{\"typ\":\"at+jwt\",\"alg\":[\"ES256\"]}", payload_ok, f->real);
    refused(f->ks, t, "alg must be ES256");
    free(t);
    char *h2 = xasprintf("{\"typ\":\"at+jwt\",\"kid\":\"%s\"}", f->kid);
    t = tok3(h2, payload_ok, f->real);
    refused(f->ks, t, "alg must be ES256");
    free(h2);
    free(t);
    free(t2);
    free(sb);
    free(h);
}

static void test_tampered_payload_refused(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new();
    char *tok;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    json_decref(c);
    /* One byte of the decoded payload changed ("alice" -> "alicf"), re-encoded. */
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char *payload = b64_decode_str(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    char *a = strstr(payload, "alice");
    assert_non_null(a);
    a[4] = 'f';
    char *pb = b64s(payload);
    char *t = xasprintf("%.*s.%s%s", (int)(dot1 - tok), tok, pb, dot2);
    refused(f->ks, t, "bad signature");
    free(t);
    free(pb);
    free(payload);
    /* Every single-character change anywhere in the token is refused. */
    static const char alphabet[] = "Aa0-_.";
    size_t len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        char orig = tok[i];
        for (const char *c2 = alphabet; *c2; c2++) {
            if (*c2 == orig)
                continue;
            tok[i] = *c2;
            if (verdict(f->ks, tok) == NULL)
                fail_msg("accepted with byte %zu changed to '%c'", i, *c2);
        }
        tok[i] = orig;
    }
    assert_null(verdict(f->ks, tok));
    free(tok);
}

static void test_tampered_signature_refused(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new();
    char *tok;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    json_decref(c);
    char *dot2 = strrchr(tok, '.');
    unsigned char *sig;
    size_t sl;
    assert_int_equal(b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &sl), 0);
    assert_int_equal(sl, 64);
    for (size_t i = 0; i < sl; i += 7) {
        sig[i] ^= 1;
        char *sb = b64url_encode(sig, sl);
        char *t = xasprintf("%.*s.%s", (int)(dot2 - tok), tok, sb);
        refused(f->ks, t, "bad signature");
        free(t);
        free(sb);
        sig[i] ^= 1;
    }
    /* Wrong lengths: one byte short or long, empty, zero. */
    static const size_t lens[] = {63, 65, 0, 128};
    unsigned char big[128] = {0};
    memcpy(big, sig, 64);
    for (size_t i = 0; i < 4; i++) {
        char *sb = b64url_encode(big, lens[i]);
        char *t = xasprintf("%.*s.%s", (int)(dot2 - tok), tok, sb);
        refused(f->ks, t, "bad signature");
        free(t);
        free(sb);
    }
    /* r = s = 0 */
    memset(big, 0, 64);
    char *sb = b64url_encode(big, 64);
    char *t = xasprintf("%.*s.%s", (int)(dot2 - tok), tok, sb);
    refused(f->ks, t, "bad signature");
    free(t);
    free(sb);
    free(sig);
    free(tok);
}

static void test_other_key_same_kid_refused(void **state)
{
    struct fx *f = *state;
    EVP_PKEY *evil = EVP_EC_gen("P-256");
    assert_non_null(evil);
    char *h = hdr(f->kid, "");
    char *t = tok3(h, payload_ok, evil);
    refused(f->ks, t, "bad signature");
    free(t);
    /* The same header signed by the real key passes: the signature made the difference. */
    t = tok3(h, payload_ok, f->real);
    assert_null(verdict(f->ks, t));
    free(t);
    free(h);
    EVP_PKEY_free(evil);
}

static void test_unknown_kid_refused(void **state)
{
    struct fx *f = *state;
    static const char *const kids[] = {"nope", "", "../../etc/passwd"};
    for (size_t i = 0; i < 3; i++) {
        char *h = hdr(kids[i], "");
        char *t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "unknown kid");
        free(t);
        free(h);
    }
    /* A prefix of the real kid. */
    char *k = xstrndup(f->kid, strlen(f->kid) - 1);
    char *h = hdr(k, "");
    char *t = tok3(h, payload_ok, f->real);
    refused(f->ks, t, "unknown kid");
    free(t);
    free(h);
    free(k);
}

static void test_missing_kid_refused(void **state)
{
    struct fx *f = *state;
    char *t = tok3("{\"typ\":\"at+jwt\",\"alg\":\"ES256\"}", payload_ok, f->real);
    refused(f->ks, t, "missing kid");
    free(t);
    t = tok3("{\"typ\":\"at+jwt\",\"alg\":\"ES256\",\"kid\":7}", payload_ok, f->real);
    refused(f->ks, t, "missing kid");
    free(t);
    t = tok3("{\"typ\":\"at+jwt\",\"alg\":\"ES256\",\"kid\":null}", payload_ok, f->real);
    refused(f->ks, t, "missing kid");
    free(t);
}

static void test_typ_jwt_refused(void **state)
{
    struct fx *f = *state;
    static const char *const typs[] = {"JWT", "jwt", "at+jwt ", "application/jwt", "at+jwt;x", ""};
    for (size_t i = 0; i < sizeof(typs) / sizeof(*typs); i++) {
        char *h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"%s\"}", f->kid, typs[i]);
        char *t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "typ must be at+jwt");
        free(t);
        free(h);
    }
    char *h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\"}", f->kid); /* no typ at all */
    char *t = tok3(h, payload_ok, f->real);
    refused(f->ks, t, "typ must be at+jwt");
    free(t);
    free(h);
}

static void test_two_or_four_parts_refused(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new();
    char *tok;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    json_decref(c);
    char *dot2 = strrchr(tok, '.');
    char *two = xstrndup(tok, (size_t)(dot2 - tok));
    char *four = xasprintf("%s.%s", tok, dot2 + 1);
    char *four_empty = xasprintf("%s.", tok);
    char *lead = xasprintf(".%s", tok);
    const char *const bad[] = {two,  four,  four_empty, lead,  "",       ".",
                               "..", "...", "abc",      "a.b", "a.b.c.d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        refused(f->ks, bad[i], NULL);
    refused(f->ks, two, "not a JWS (three parts expected)");
    refused(f->ks, four, "not a JWS (three parts expected)");
    const char *why = NULL;
    json_t *got = NULL;
    assert_int_equal(jwt_verify(f->ks, NULL, &got, &why), ERR_INVALID);
    assert_non_null(why);
    free(two);
    free(four);
    free(four_empty);
    free(lead);
    free(tok);
}

static void test_non_base64url_refused(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new();
    char *tok;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    json_decref(c);
    static const char bad[] = {'+', '/', '=', ' ', '\n', '*', '\x80', '\xff'};
    size_t len = strlen(tok);
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    size_t where[] = {0, (size_t)(dot1 - tok) + 1, (size_t)(dot2 - tok) + 1, len - 1};
    for (size_t w = 0; w < 4; w++) {
        for (size_t b = 0; b < sizeof(bad); b++) {
            char *t = xstrdup(tok);
            t[where[w]] = bad[b];
            refused(f->ks, t, NULL);
            free(t);
        }
    }
    /* Padding appended to a part. */
    char *t = xasprintf("%.*s=%s", (int)(dot1 - tok), tok, dot1);
    refused(f->ks, t, "not a JWS (bad base64url)");
    free(t);
    t = xasprintf("%s==", tok);
    refused(f->ks, t, "bad signature");
    free(t);
    /* Standard base64 instead of base64url in the header. */
    char *h = hdr(f->kid, ",\"x\":\"\\u00ff\\u00fe\\u00ff\"");
    t = tok3(h, payload_ok, f->real);
    assert_null(verdict(f->ks, t));
    char *p;
    int changed = 0;
    for (p = t; *p != '.'; p++) {
        if (*p == '-' || *p == '_') {
            *p = *p == '-' ? '+' : '/';
            changed = 1;
        }
    }
    if (changed)
        refused(f->ks, t, "not a JWS (bad base64url)");
    free(t);
    free(h);
    free(tok);
}

static void test_oversized_token_refused(void **state)
{
    struct fx *f = *state;
    char *big = xmalloc(9000);
    memset(big, 'a', 8999);
    big[8999] = '\0';
    json_t *c = json_pack("{s:s}", "pad", big);
    char *tok;
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    assert_true(strlen(tok) > 8192);
    refused(f->ks, tok, "token too long");
    free(tok);
    json_decref(c);
    /* Garbage of any length is refused quickly; a long run without dots too. */
    char *junk = xmalloc(1 << 20);
    memset(junk, 'A', (1 << 20) - 1);
    junk[(1 << 20) - 1] = '\0';
    refused(f->ks, junk, "token too long");
    free(junk);
    /* Just under the cap: accepted. */
    big[5000] = '\0';
    c = json_pack("{s:s}", "pad", big);
    assert_int_equal(jwt_sign(f->ks, c, &tok), 0);
    assert_true(strlen(tok) <= 8192);
    assert_null(verdict(f->ks, tok));
    free(tok);
    json_decref(c);
    free(big);
}

static void test_header_jku_jwk_refused(void **state)
{
    struct fx *f = *state;
    /* An attacker's key embedded as jwk, the token signed by it, with its own thumbprint as
     * kid or with ours. */
    EVP_PKEY *evil = EVP_EC_gen("P-256");
    char *x, *y;
    pkey_xy(evil, &x, &y);
    char *jwk =
        xasprintf(",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    char *h = hdr(f->kid, jwk);
    char *t = tok3(h, payload_ok, evil);
    refused(f->ks, t, "header must not name a key (jku/jwk/x5u/x5c/x5t)");
    free(t);
    free(h);
    h = hdr("attacker", jwk);
    t = tok3(h, payload_ok, evil);
    refused(f->ks, t, NULL);
    free(t);
    free(h);
    /* Key-locating headers are refused even on a token the real key signed. */
    static const char *const extras[] = {
        ",\"jku\":\"https://attacker.example/jwks.json\"",
        ",\"x5u\":\"https://attacker.example/cert.pem\"",
        ",\"x5c\":[\"MIIB\"]",
        ",\"x5t\":\"abc\"",
        ",\"x5t#S256\":\"abc\"",
    };
    for (size_t i = 0; i < sizeof(extras) / sizeof(*extras); i++) {
        h = hdr(f->kid, extras[i]);
        t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "header must not name a key (jku/jwk/x5u/x5c/x5t)");
        free(t);
        free(h);
    }
    h = hdr(f->kid, jwk);
    t = tok3(h, payload_ok, f->real);
    refused(f->ks, t, "header must not name a key (jku/jwk/x5u/x5c/x5t)");
    free(t);
    free(h);
    free(jwk);
    free(x);
    free(y);
    EVP_PKEY_free(evil);
}

static void test_header_crit_refused(void **state)
{
    struct fx *f = *state;
    static const char *const extras[] = {",\"crit\":[\"exp\"],\"exp\":1",
                                         ",\"crit\":[\"b64\"],\"b64\":false", ",\"crit\":[]",
                                         ",\"crit\":null"};
    for (size_t i = 0; i < sizeof(extras) / sizeof(*extras); i++) {
        char *h = hdr(f->kid, extras[i]);
        char *t = tok3(h, payload_ok, f->real);
        refused(f->ks, t, "crit header is not supported");
        free(t);
        free(h);
    }
}

static void test_header_not_object_refused(void **state)
{
    struct fx *f = *state;
    static const char *const hdrs[] = {
        "[]", "\"ES256\"",          "null",
        "{",  "{\"alg\":\"ES256\"", "{\"alg\":\"ES256\",\"alg\":\"ES256\"}"};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(*hdrs); i++) {
        char *t = tok3(hdrs[i], payload_ok, f->real);
        refused(f->ks, t, "header is not a JSON object");
        free(t);
    }
    /* Duplicate alg hiding a second value. */
    char *h =
        xasprintf("{\"typ\":\"at+jwt\",\"alg\":\"none\",\"kid\":\"%s\",\"alg\":\"ES256\"}", f->kid);
    char *t = tok3(h, payload_ok, f->real);
    refused(f->ks, t, "header is not a JSON object");
    free(t);
    free(h);
}

static void test_payload_not_object_refused(void **state)
{
    struct fx *f = *state;
    static const char *const payloads[] = {"[1,2]",    "\"sub\"",           "42",         "null",
                                           "{\"a\":1", "{\"a\":1,\"a\":2}", "{} trailing"};
    char *h = hdr(f->kid, "");
    for (size_t i = 0; i < sizeof(payloads) / sizeof(*payloads); i++) {
        char *t = tok3(h, payloads[i], f->real);
        refused(f->ks, t, "payload is not a JSON object");
        free(t);
    }
    free(h);
}

/* ---- keys ---- */

static void test_key_rotation(void **state)
{
    struct fx *f = *state;
    json_t *c = claims_new();
    char *old_tok, *new_tok, *kid2;
    assert_int_equal(jwt_sign(f->ks, c, &old_tok), 0);
    assert_int_equal(jwt_key_rotate(f->st, master_a, NOW + 100, &kid2), 0);
    assert_string_not_equal(kid2, f->kid);

    /* Within the keep window: the old token verifies; new tokens use the new kid. */
    struct jwt_keyset *ks2;
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW + 100, KEEP, &ks2), 0);
    assert_null(verdict(ks2, old_tok));
    assert_int_equal(jwt_sign(ks2, c, &new_tok), 0);
    char *h = token_header(new_tok);
    json_t *hj = json_loads(h, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(hj, "kid")), kid2);
    json_decref(hj);
    free(h);
    assert_null(verdict(ks2, new_tok));
    json_t *jwks = jwt_keyset_jwks(ks2);
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 2);
    json_decref(jwks);
    /* The old keyset does not know the new key. */
    refused(f->ks, new_tok, "unknown kid");

    /* One second before the window closes: still kept; at its end: gone. */
    struct jwt_keyset *ks3;
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW + 100 + KEEP - 1, KEEP, &ks3), 0);
    assert_null(verdict(ks3, old_tok));
    jwt_keyset_free(ks3);
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW + 100 + KEEP, KEEP, &ks3), 0);
    refused(ks3, old_tok, "unknown kid");
    assert_null(verdict(ks3, new_tok));
    jwks = jwt_keyset_jwks(ks3);
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(jwks, "keys"), 0), "kid")),
        kid2);
    json_decref(jwks);
    jwt_keyset_free(ks3);
    jwt_keyset_free(ks2);

    /* Reloading does not create keys: the kid is stable across loads. */
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW + 200, KEEP, &ks2), 0);
    assert_int_equal(jwt_sign(ks2, c, &h), 0);
    char *hh = token_header(h);
    assert_non_null(strstr(hh, kid2));
    free(hh);
    free(h);
    jwt_keyset_free(ks2);

    free(kid2);
    free(old_tok);
    free(new_tok);
    json_decref(c);
}

static void test_wrong_master_key_refused(void **state)
{
    struct fx *f = *state;
    struct jwt_keyset *ks = (struct jwt_keyset *)1;
    assert_int_equal(jwt_keyset_load(f->st, master_b, NOW, KEEP, &ks), ERR_INTEGRITY);
    assert_null(ks);
    /* No key was created behind the failure. */
    struct store_key *keys;
    size_t n;
    assert_int_equal(store_key_list(f->st, &keys, &n), 0);
    assert_int_equal(n, 1);
    store_key_clear(&keys[0]);
    free(keys);
}

/* The first load of an empty store creates one key; the kid is its RFC 7638 thumbprint; the
 * stored private half is sealed with the kid as aad. */
static void test_first_key_and_thumbprint(void **state)
{
    struct fx *f = *state;
    json_t *jwks = jwt_keyset_jwks(f->ks);
    json_t *keys = json_object_get(jwks, "keys");
    assert_int_equal(json_array_size(keys), 1);
    json_t *k = json_array_get(keys, 0);
    const char *x = json_string_value(json_object_get(k, "x"));
    const char *y = json_string_value(json_object_get(k, "y"));
    char *canon = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    unsigned char d[32];
    SHA256((const unsigned char *)canon, strlen(canon), d);
    char *tp = b64url_encode(d, 32);
    assert_string_equal(tp, f->kid);
    assert_string_equal(json_string_value(json_object_get(k, "kid")), f->kid);
    free(tp);
    free(canon);
    json_decref(jwks);

    struct store_key *sk;
    size_t n;
    assert_int_equal(store_key_list(f->st, &sk, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(sk[0].alg, "ES256");
    assert_int_equal(sk[0].retired_at, 0);
    assert_int_equal(sk[0].created_at, NOW);
    assert_null(strstr(sk[0].public_jwk, "\"d\""));
    unsigned char *p;
    size_t pl;
    assert_int_equal(crypto_open(master_a, "other", 5, sk[0].sealed, sk[0].sealed_len, &p, &pl),
                     ERR_INTEGRITY);
    store_key_clear(&sk[0]);
    free(sk);
}

static void test_jwks_public_only(void **state)
{
    struct fx *f = *state;
    char *kid2;
    assert_int_equal(jwt_key_rotate(f->st, master_a, NOW + 1, &kid2), 0);
    struct jwt_keyset *ks;
    assert_int_equal(jwt_keyset_load(f->st, master_a, NOW + 1, KEEP, &ks), 0);
    json_t *jwks = jwt_keyset_jwks(ks);
    assert_int_equal(json_object_size(jwks), 1);
    json_t *keys = json_object_get(jwks, "keys");
    assert_int_equal(json_array_size(keys), 2);
    /* Current key first. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), kid2);
    size_t i;
    json_t *k;
    json_array_foreach (keys, i, k) {
        static const char *const allowed[] = {"kty", "crv", "x", "y", "kid", "use", "alg"};
        const char *name;
        json_t *v;
        assert_null(json_object_get(k, "d"));
        json_object_foreach (k, name, v) {
            int ok = 0;
            for (size_t a = 0; a < 7; a++)
                ok |= strcmp(name, allowed[a]) == 0;
            if (!ok)
                fail_msg("JWKS member '%s'", name);
        }
        assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
        assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(k, "alg")), "ES256");
        assert_int_equal(strlen(json_string_value(json_object_get(k, "x"))), 43);
        assert_int_equal(strlen(json_string_value(json_object_get(k, "y"))), 43);
    }
    char *text = json_dumps(jwks, 0);
    assert_null(strstr(text, "\"d\""));
    free(text);
    json_decref(jwks);
    jwt_keyset_free(ks);
    free(kid2);
}

/* ---- master key ---- */

static void test_master_key_file_created_0600(void **state)
{
    unsetenv("MCPGATE_MASTER_KEY");
    char *path = tmp_path("master");
    unsigned char k1[32], k2[32];
    assert_int_equal(jwt_master_key_load(path, k1), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* The file holds base64url of 32 bytes and a newline; loading again gives the same key. */
    FILE *fp = fopen(path, "r");
    char line[128];
    assert_non_null(fgets(line, sizeof(line), fp));
    fclose(fp);
    assert_int_equal(strlen(line), 44);
    assert_int_equal(line[43], '\n');
    unsigned char *d;
    size_t dl;
    assert_int_equal(b64url_decode(line, 43, &d, &dl), 0);
    assert_int_equal(dl, 32);
    assert_memory_equal(d, k1, 32);
    free(d);
    assert_int_equal(jwt_master_key_load(path, k2), 0);
    assert_memory_equal(k1, k2, 32);
    unlink(path);
    free(path);
}

static void test_master_key_file_0644_refused(void **state)
{
    unsetenv("MCPGATE_MASTER_KEY");
    char *path = tmp_path("master");
    unsigned char k[32];
    assert_int_equal(jwt_master_key_load(path, k), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(jwt_master_key_load(path, k), 0);
    unlink(path);
    /* A file of the wrong length or alphabet is refused too. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "c2hvcnQ\n", 8), 8);
    close(fd);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    unlink(path);
    /* A symlink is not followed. */
    char *target = tmp_path("target");
    assert_int_equal(jwt_master_key_load(target, k), 0);
    assert_int_equal(symlink(target, path), 0);
    assert_true(jwt_master_key_load(path, k) < 0);
    unlink(path);
    unlink(target);
    free(target);
    free(path);
}

static void test_master_key_env_wins(void **state)
{
    unsigned char want[32], k[32];
    for (int i = 0; i < 32; i++)
        want[i] = (unsigned char)(i * 7 + 1);
    char *b = b64url_encode(want, 32);
    char *path = tmp_path("master");
    assert_int_equal(setenv("MCPGATE_MASTER_KEY", b, 1), 0);
    assert_int_equal(jwt_master_key_load(path, k), 0);
    assert_memory_equal(k, want, 32);
    assert_int_equal(access(path, F_OK), -1); /* the file was not created */
    /* Also over an existing (even badly permissioned) file. */
    unsetenv("MCPGATE_MASTER_KEY");
    assert_int_equal(jwt_master_key_load(path, k), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(setenv("MCPGATE_MASTER_KEY", b, 1), 0);
    assert_int_equal(jwt_master_key_load(path, k), 0);
    assert_memory_equal(k, want, 32);
    /* A bad value is an error, not a fallback to the file. */
    assert_int_equal(setenv("MCPGATE_MASTER_KEY", "c2hvcnQ", 1), 0);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    assert_int_equal(setenv("MCPGATE_MASTER_KEY", "not base64!", 1), 0);
    assert_int_equal(jwt_master_key_load(path, k), ERR_INVALID);
    unsetenv("MCPGATE_MASTER_KEY");
    unlink(path);
    free(path);
    free(b);
}

/* End to end: a key sealed under one master key does not load under another. */
static void test_master_key_wrong_fails_to_unseal(void **state)
{
    unsetenv("MCPGATE_MASTER_KEY");
    char *kp1 = tmp_path("master"), *kp2 = tmp_path("master"), *dbp;
    unsigned char m1[32], m2[32];
    assert_int_equal(jwt_master_key_load(kp1, m1), 0);
    assert_int_equal(jwt_master_key_load(kp2, m2), 0);
    struct store *st = store_new(&dbp);
    struct jwt_keyset *ks;
    assert_int_equal(jwt_keyset_load(st, m1, NOW, KEEP, &ks), 0);
    jwt_keyset_free(ks);
    assert_int_equal(jwt_keyset_load(st, m2, NOW, KEEP, &ks), ERR_INTEGRITY);
    assert_null(ks);
    assert_int_equal(jwt_keyset_load(st, m1, NOW, KEEP, &ks), 0);
    jwt_keyset_free(ks);
    store_close(st);
    db_remove(dbp);
    unlink(kp1);
    unlink(kp2);
    free(dbp);
    free(kp1);
    free(kp2);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    if (getenv("MCPGATE_TEST_LOG") == NULL)
        log_set_level(LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_tamper_any_byte),
        cmocka_unit_test(test_seal_wrong_key),
        cmocka_unit_test(test_seal_wrong_aad),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_password_malformed),
        FX(test_sign_verify),
        FX(test_claims_roundtrip),
        FX(test_typ_variants_accepted),
        FX(test_alg_none_refused),
        FX(test_alg_hs256_confusion_refused),
        FX(test_alg_rs256_refused),
        FX(test_tampered_payload_refused),
        FX(test_tampered_signature_refused),
        FX(test_other_key_same_kid_refused),
        FX(test_unknown_kid_refused),
        FX(test_missing_kid_refused),
        FX(test_typ_jwt_refused),
        FX(test_two_or_four_parts_refused),
        FX(test_non_base64url_refused),
        FX(test_oversized_token_refused),
        FX(test_header_jku_jwk_refused),
        FX(test_header_crit_refused),
        FX(test_header_not_object_refused),
        FX(test_payload_not_object_refused),
        FX(test_key_rotation),
        FX(test_wrong_master_key_refused),
        FX(test_first_key_and_thumbprint),
        FX(test_jwks_public_only),
        cmocka_unit_test(test_master_key_file_created_0600),
        cmocka_unit_test(test_master_key_file_0644_refused),
        cmocka_unit_test(test_master_key_env_wins),
        cmocka_unit_test(test_master_key_wrong_fails_to_unseal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
