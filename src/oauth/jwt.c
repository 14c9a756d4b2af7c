/* JWT access tokens (RFC 9068) with ES256, and the signing keys behind them (see jwt.h).
 *
 * Verification does not lean on cjose to judge a token: cjose 0.6 dispatches on the header's
 * alg (HS256 would run an HMAC keyed with whatever the JWK holds, "none" imports fine), so the
 * compact form, the header and the signature length are all checked here first, and cjose only
 * does the ECDSA arithmetic with the key picked by kid. */
#include "oauth/jwt.h"

#include <cjose/cjose.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store.h"

#define JWT_MAX_LEN 8192     /* longest token looked at */
#define JWT_ES256_SIG_LEN 64 /* R || S, 32 bytes each (RFC 7518 section 3.4) */
#define MASTER_KEY_LEN 32
#define MASTER_FILE_MAX 256 /* a key file is ~44 bytes */

struct jwt_key {
    char *kid;          /* owned */
    char *x, *y;        /* public point, base64url (owned) */
    cjose_jwk_t *pub;   /* public key (owned) */
    int64_t retired_at; /* 0: current */
};

struct jwt_keyset {
    cjose_jwk_t *signer; /* private key of keys[signer_index] (owned) */
    size_t signer_index;
    struct jwt_key *keys; /* every key that verifies, current first (owned) */
    size_t n;
};

/* ---- keys ---- */

static const char *cjose_msg(const cjose_err *err)
{
    return err->message != NULL ? err->message : "unknown cjose error";
}

static int is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Reads the public point of a P-256 JWK (JSON text). */
static int jwk_point(const char *json, size_t len, char **x /* OUT */, char **y /* OUT */)
{
    int r = ERR_PARSE;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    const char *kty, *crv, *xs, *ys;

    *x = *y = NULL;
    if (json_unpack(o, "{s:s, s:s, s:s, s:s}", "kty", &kty, "crv", &crv, "x", &xs, "y", &ys) != 0)
        goto out;
    /* 32-byte coordinates are 43 base64url characters. */
    if (strcmp(kty, "EC") != 0 || strcmp(crv, "P-256") != 0 || strlen(xs) != 43 ||
        strlen(ys) != 43 || !is_b64url(xs, 43) || !is_b64url(ys, 43))
        goto out;
    *x = xstrdup(xs);
    *y = xstrdup(ys);
    r = 0;
out:
    json_decref(o);
    return r;
}

/* RFC 7638 thumbprint: base64url(SHA-256 of the required members, sorted, no whitespace). The
 * coordinates were checked to be base64url, so they need no JSON escaping. */
static char *thumbprint(const char *x, const char *y)
{
    unsigned char d[CRYPTO_SHA256_LEN];
    char *canon = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    crypto_sha256(canon, strlen(canon), d);
    free(canon);
    return b64url_encode(d, sizeof(d));
}

/* The public JWK published for a key (new reference). */
static json_t *public_jwk(const char *kid, const char *x, const char *y)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x,
                     "y", y, "kid", kid, "use", "sig", "alg", "ES256");
}

static cjose_jwk_t *import_public(const char *x, const char *y)
{
    cjose_err err = {0};
    char *json = xasprintf("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    cjose_jwk_t *k = cjose_jwk_import(json, strlen(json), &err);
    free(json);
    if (k == NULL)
        log_error("cjose_jwk_import: %s", cjose_msg(&err));
    return k;
}

static void cjose_free_secret(char *s)
{
    if (s != NULL) {
        crypto_wipe(s, strlen(s));
        cjose_get_dealloc()(s);
    }
}

/* Makes a new ES256 key and puts it in the store as current; the caller has retired the
 * previous one when there was one. */
static int key_create(struct store *st, const unsigned char master[32], int64_t now,
                      char **kid_out /* OUT, may be NULL */)
{
    int r = ERR_CRYPTO;
    cjose_err err = {0};
    cjose_jwk_t *jwk = NULL;
    char *pub = NULL, *priv = NULL, *x = NULL, *y = NULL, *kid = NULL, *pubtext = NULL;
    char alg[] = "ES256";
    json_t *pj = NULL;
    struct store_key k;

    memset(&k, 0, sizeof(k));
    if (kid_out != NULL)
        *kid_out = NULL;
    if ((jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err)) == NULL ||
        (pub = cjose_jwk_to_json(jwk, false, &err)) == NULL ||
        (priv = cjose_jwk_to_json(jwk, true, &err)) == NULL) {
        log_error("cannot create an ES256 key: %s", cjose_msg(&err));
        goto out;
    }
    if ((r = jwk_point(pub, strlen(pub), &x, &y)) != 0) {
        log_error("cjose made a JWK without a P-256 point");
        r = ERR_INTERNAL;
        goto out;
    }
    kid = thumbprint(x, y);
    pj = public_jwk(kid, x, y);
    pubtext = json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS);
    if ((r = crypto_seal(master, kid, strlen(kid), priv, strlen(priv), &k.sealed, &k.sealed_len)) !=
        0)
        goto out;
    k.kid = kid;
    k.alg = alg;
    k.public_jwk = pubtext;
    k.created_at = now;
    k.retired_at = 0;
    if ((r = store_key_put(st, &k)) != 0) {
        log_error("cannot store the new signing key %s: %s", kid, err_str(r));
        goto out;
    }
    log_info("new ES256 signing key %s", kid);
    if (kid_out != NULL) {
        *kid_out = kid;
        kid = NULL;
    }
    r = 0;
out:
    free(k.sealed);
    free(pubtext);
    json_decref(pj);
    free(kid);
    free(x);
    free(y);
    if (pub != NULL)
        cjose_get_dealloc()(pub);
    cjose_free_secret(priv);
    cjose_jwk_release(jwk);
    return r;
}

int jwt_key_rotate(struct store *st, const unsigned char master[32], int64_t now, char **kid)
{
    int r;
    if (kid != NULL)
        *kid = NULL;
    if ((r = store_key_retire_current(st, now)) != 0) {
        log_error("cannot retire the current signing key: %s", err_str(r));
        return r;
    }
    return key_create(st, master, now, kid);
}

static void key_clear(struct jwt_key *k)
{
    free(k->kid);
    free(k->x);
    free(k->y);
    cjose_jwk_release(k->pub);
    memset(k, 0, sizeof(*k));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        key_clear(&ks->keys[i]);
    free(ks->keys);
    cjose_jwk_release(ks->signer);
    free(ks);
}

/* Opens the sealed private half of the current key and checks it matches its kid. */
static int unseal_signer(const struct store_key *sk, const unsigned char master[32],
                         cjose_jwk_t **out /* OUT */)
{
    int r = ERR_INTERNAL;
    unsigned char *priv = NULL;
    size_t privlen = 0;
    char *pub = NULL, *x = NULL, *y = NULL, *tp = NULL;
    cjose_jwk_t *jwk = NULL;
    cjose_err err = {0};

    *out = NULL;
    r = crypto_open(master, sk->kid, strlen(sk->kid), sk->sealed, sk->sealed_len, &priv, &privlen);
    if (r == ERR_INTEGRITY) {
        log_error("cannot unseal signing key %s: wrong master key (MCPGATE_MASTER_KEY or the "
                  "master key file differs from the one that sealed it)",
                  sk->kid);
        goto out;
    } else if (r != 0) {
        log_error("cannot unseal signing key %s: %s", sk->kid, err_str(r));
        goto out;
    }
    r = ERR_INVALID;
    if ((jwk = cjose_jwk_import((const char *)priv, privlen, &err)) == NULL) {
        log_error("signing key %s: cannot import: %s", sk->kid, cjose_msg(&err));
        goto out;
    }
    if ((pub = cjose_jwk_to_json(jwk, false, &err)) == NULL ||
        jwk_point(pub, strlen(pub), &x, &y) != 0) {
        log_error("signing key %s is not a P-256 key", sk->kid);
        goto out;
    }
    tp = thumbprint(x, y);
    if (strcmp(tp, sk->kid) != 0) {
        log_error("signing key %s does not match its kid", sk->kid);
        goto out;
    }
    *out = jwk;
    jwk = NULL;
    r = 0;
out:
    if (priv != NULL) {
        crypto_wipe(priv, privlen);
        free(priv);
    }
    if (pub != NULL)
        cjose_get_dealloc()(pub);
    free(tp);
    free(x);
    free(y);
    cjose_jwk_release(jwk);
    return r;
}

/* Fills k from a stored key's public JWK, checking that the kid is its thumbprint. */
static int key_from_store(const struct store_key *sk, struct jwt_key *k)
{
    char *tp = NULL;
    int r = ERR_INVALID;

    memset(k, 0, sizeof(*k));
    if (sk->kid == NULL || sk->public_jwk == NULL ||
        jwk_point(sk->public_jwk, strlen(sk->public_jwk), &k->x, &k->y) != 0)
        goto out;
    tp = thumbprint(k->x, k->y);
    if (strcmp(tp, sk->kid) != 0 || (k->pub = import_public(k->x, k->y)) == NULL)
        goto out;
    k->kid = xstrdup(sk->kid);
    k->retired_at = sk->retired_at;
    r = 0;
out:
    free(tp);
    if (r != 0)
        key_clear(k);
    return r;
}

static void store_keys_free(struct store_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
}

int jwt_keyset_load(struct store *st, const unsigned char master[32], int64_t now,
                    int64_t keep_seconds, struct jwt_keyset **out)
{
    int r = ERR_INTERNAL;
    struct store_key *keys = NULL;
    size_t n = 0, cur = 0;
    struct jwt_keyset *ks = NULL;

    *out = NULL;
    if (keep_seconds < 0)
        keep_seconds = 0;
    /* At most two passes: the second after creating a current key when there was none (first
     * start, or a rotation that retired the old key but failed to put the new one). */
    for (int pass = 0;; pass++) {
        if ((r = store_key_list(st, &keys, &n)) != 0) {
            log_error("cannot list signing keys: %s", err_str(r));
            goto out;
        }
        for (cur = 0; cur < n; cur++)
            if (keys[cur].retired_at == 0 && keys[cur].alg != NULL &&
                strcmp(keys[cur].alg, "ES256") == 0)
                break;
        if (cur < n)
            break;
        if (pass > 0) {
            log_error("no current signing key after creating one");
            r = ERR_INTERNAL;
            goto out;
        }
        store_keys_free(keys, n);
        keys = NULL;
        n = 0;
        if ((r = key_create(st, master, now, NULL)) != 0)
            goto out;
    }

    ks = xcalloc(1, sizeof(*ks));
    ks->keys = xcalloc(n, sizeof(*ks->keys));
    if ((r = unseal_signer(&keys[cur], master, &ks->signer)) != 0)
        goto out;
    /* The signer first, then every other current key (another instance may have created one
     * concurrently) and the retired keys still inside the keep window. */
    if ((r = key_from_store(&keys[cur], &ks->keys[0])) != 0) {
        log_error("signing key %s: bad public key in the store", keys[cur].kid);
        goto out;
    }
    ks->signer_index = 0;
    ks->n = 1;
    for (size_t i = 0; i < n; i++) {
        const struct store_key *sk = &keys[i];
        if (i == cur)
            continue;
        if (sk->alg == NULL || strcmp(sk->alg, "ES256") != 0) {
            log_warn("signing key %s: alg %s not supported, skipped", sk->kid ? sk->kid : "?",
                     sk->alg ? sk->alg : "?");
            continue;
        }
        if (sk->retired_at != 0 && sk->retired_at <= now - keep_seconds) {
            log_debug("signing key %s retired at %lld: past the keep window, dropped", sk->kid,
                      (long long)sk->retired_at);
            continue;
        }
        if (key_from_store(sk, &ks->keys[ks->n]) != 0) {
            log_warn("signing key %s: bad public key in the store, skipped", sk->kid);
            continue;
        }
        ks->n++;
    }
    log_debug("signing keys loaded: current %s, %zu verifying", ks->keys[0].kid, ks->n);
    *out = ks;
    ks = NULL;
    r = 0;
out:
    jwt_keyset_free(ks);
    store_keys_free(keys, n);
    return r;
}

json_t *jwt_keyset_jwks(const struct jwt_keyset *ks)
{
    json_t *arr = json_array();
    for (size_t i = 0; ks != NULL && i < ks->n; i++)
        json_array_append_new(arr, public_jwk(ks->keys[i].kid, ks->keys[i].x, ks->keys[i].y));
    return json_pack("{s:o}", "keys", arr);
}

/* ---- tokens ---- */

int jwt_sign(const struct jwt_keyset *ks, json_t *claims, char **token)
{
    int r = ERR_CRYPTO;
    cjose_err err = {0};
    cjose_header_t *hdr = NULL;
    cjose_jws_t *jws = NULL;
    char *payload = NULL;
    const char *ser = NULL;

    *token = NULL;
    if (ks == NULL || ks->signer == NULL || !json_is_object(claims))
        return ERR_INVALID;
    if ((payload = json_dumps(claims, JSON_COMPACT)) == NULL) {
        r = ERR_INVALID;
        goto out;
    }
    if ((hdr = cjose_header_new(&err)) == NULL || !cjose_header_set(hdr, "typ", "at+jwt", &err) ||
        !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err) ||
        !cjose_header_set(hdr, CJOSE_HDR_KID, ks->keys[ks->signer_index].kid, &err) ||
        (jws = cjose_jws_sign(ks->signer, hdr, (const uint8_t *)payload, strlen(payload), &err)) ==
            NULL ||
        !cjose_jws_export(jws, &ser, &err)) {
        log_error("cannot sign a token: %s", cjose_msg(&err));
        goto out;
    }
    *token = xstrdup(ser);
    r = 0;
out:
    cjose_jws_release(jws);
    cjose_header_release(hdr);
    free(payload);
    return r;
}

static const struct jwt_key *key_find(const struct jwt_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* Decodes one part of a compact JWS: non-empty, base64url without padding, canonical. */
static int part_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (n == 0 || !is_b64url(s, n))
        return ERR_PARSE;
    return b64url_decode(s, n, out, outlen);
}

/* Header parameters naming a key or a key location: never honoured, so refused outright. */
static const char *const key_headers[] = {"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256"};

/* The header checks; returns the reason for refusing, or NULL with *key set. */
static const char *header_check(const struct jwt_keyset *ks, const unsigned char *h, size_t hlen,
                                const struct jwt_key **key /* OUT */)
{
    const char *why = NULL, *alg, *typ, *kid;
    json_t *o = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, NULL);

    *key = NULL;
    if (!json_is_object(o)) {
        why = "header is not a JSON object";
        goto out;
    }
    if ((alg = json_string_value(json_object_get(o, "alg"))) == NULL || strcmp(alg, "ES256") != 0) {
        why = "alg must be ES256";
        goto out;
    }
    if (json_object_get(o, "crit") != NULL) {
        why = "crit header is not supported";
        goto out;
    }
    for (size_t i = 0; i < sizeof(key_headers) / sizeof(*key_headers); i++)
        if (json_object_get(o, key_headers[i]) != NULL) {
            why = "header must not name a key (jku/jwk/x5u/x5c/x5t)";
            goto out;
        }
    if ((typ = json_string_value(json_object_get(o, "typ"))) == NULL ||
        (strcasecmp(typ, "at+jwt") != 0 && strcasecmp(typ, "application/at+jwt") != 0)) {
        why = "typ must be at+jwt";
        goto out;
    }
    if ((kid = json_string_value(json_object_get(o, "kid"))) == NULL) {
        why = "missing kid";
        goto out;
    }
    if ((*key = key_find(ks, kid)) == NULL)
        why = "unknown kid";
out:
    json_decref(o);
    return why;
}

int jwt_verify(const struct jwt_keyset *ks, const char *token, json_t **claims, const char **why)
{
    int r = ERR_INVALID;
    const char *dot1, *dot2, *p2, *p3;
    unsigned char *hdr = NULL, *payload = NULL, *sig = NULL;
    size_t len, hlen = 0, plen = 0, slen = 0;
    const struct jwt_key *key = NULL;
    cjose_jws_t *jws = NULL;
    cjose_err err = {0};
    json_t *o = NULL;

    *claims = NULL;
    *why = "not a JWS";
    if (ks == NULL || token == NULL)
        goto out;
    if ((len = strnlen(token, JWT_MAX_LEN + 1)) > JWT_MAX_LEN) {
        *why = "token too long";
        goto out;
    }
    /* Exactly three parts. */
    if ((dot1 = memchr(token, '.', len)) == NULL ||
        (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        *why = "not a JWS (three parts expected)";
        goto out;
    }
    p2 = dot1 + 1;
    p3 = dot2 + 1;
    if (part_decode(token, (size_t)(dot1 - token), &hdr, &hlen) != 0 ||
        part_decode(p2, (size_t)(dot2 - p2), &payload, &plen) != 0) {
        *why = "not a JWS (bad base64url)";
        goto out;
    }
    if ((*why = header_check(ks, hdr, hlen, &key)) != NULL)
        goto out;
    if (part_decode(p3, len - (size_t)(p3 - token), &sig, &slen) != 0 ||
        slen != JWT_ES256_SIG_LEN) {
        *why = "bad signature";
        goto out;
    }
    /* cjose hashes the header and payload parts exactly as received. */
    if ((jws = cjose_jws_import(token, len, &err)) == NULL) {
        *why = "not a JWS";
        goto out;
    }
    if (!cjose_jws_verify(jws, key->pub, &err)) {
        *why = "bad signature";
        goto out;
    }
    if ((o = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_object(o)) {
        *why = "payload is not a JSON object";
        goto out;
    }
    *claims = o;
    o = NULL;
    *why = NULL;
    r = 0;
out:
    if (r != 0)
        log_debug("token refused: %s", *why);
    json_decref(o);
    cjose_jws_release(jws);
    free(hdr);
    free(payload);
    free(sig);
    return r;
}

/* ---- master key ---- */

/* Decodes base64url text (trailing whitespace ignored) into exactly 32 bytes. */
static int master_decode(const char *s, size_t n, unsigned char key[32])
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int r;

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!is_b64url(s, n) || b64url_decode(s, n, &raw, &rawlen) != 0 || rawlen != MASTER_KEY_LEN)
        r = ERR_INVALID;
    else {
        memcpy(key, raw, MASTER_KEY_LEN);
        r = 0;
    }
    if (raw != NULL) {
        crypto_wipe(raw, rawlen);
        free(raw);
    }
    return r;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates the key file; ERR_EXISTS when another process got there first. */
static int master_create(const char *path, unsigned char key[32])
{
    int r = ERR_IO, fd;
    unsigned char raw[MASTER_KEY_LEN];
    char *text = NULL, *line = NULL;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return ERR_EXISTS;
        log_error("cannot create master key file %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if ((r = crypto_random(raw, sizeof(raw))) != 0)
        goto out;
    text = b64url_encode(raw, sizeof(raw));
    line = xasprintf("%s\n", text);
    if ((r = write_all(fd, line, strlen(line))) != 0 || fsync(fd) != 0) {
        log_error("cannot write master key file %s: %s", path, strerror(errno));
        r = ERR_IO;
        goto out;
    }
    memcpy(key, raw, sizeof(raw));
    log_info("created master key file %s (keep it: it unseals the signing keys)", path);
    r = 0;
out:
    if (close(fd) != 0 && r == 0) {
        log_error("cannot write master key file %s: %s", path, strerror(errno));
        r = ERR_IO;
    }
    if (r != 0)
        unlink(path);
    crypto_wipe(raw, sizeof(raw));
    if (text != NULL) {
        crypto_wipe(text, strlen(text));
        free(text);
    }
    if (line != NULL) {
        crypto_wipe(line, strlen(line));
        free(line);
    }
    return r;
}

static int master_read(const char *path, unsigned char key[32])
{
    int r = ERR_IO, fd;
    struct stat sb;
    char buf[MASTER_FILE_MAX + 1];
    size_t n = 0;

    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        if (errno == ENOENT)
            return ERR_NOTFOUND;
        log_error("cannot open master key file %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if (fstat(fd, &sb) != 0) {
        log_error("cannot stat master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        log_error("master key file %s is not a regular file", path);
        r = ERR_INVALID;
        goto out;
    }
    if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        log_error("master key file %s has mode %03o: group/other may access it; chmod 600 it", path,
                  (unsigned)(sb.st_mode & 0777));
        r = ERR_INVALID;
        goto out;
    }
    while (n < sizeof(buf)) {
        ssize_t got = read(fd, buf + n, sizeof(buf) - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            log_error("cannot read master key file %s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > MASTER_FILE_MAX || (r = master_decode(buf, n, key)) != 0) {
        log_error("master key file %s does not hold base64url of 32 bytes", path);
        r = ERR_INVALID;
        goto out;
    }
    r = 0;
out:
    crypto_wipe(buf, sizeof(buf));
    close(fd);
    return r;
}

int jwt_master_key_load(const char *path, unsigned char key[32])
{
    int r;
    const char *env = getenv("MCPGATE_MASTER_KEY");

    if (env != NULL && env[0] != '\0') {
        if ((r = master_decode(env, strlen(env), key)) != 0)
            log_error("MCPGATE_MASTER_KEY must be base64url of 32 bytes");
        return r;
    }
    if (path == NULL || path[0] == '\0') {
        log_error("no master key: set MCPGATE_MASTER_KEY or give a key file");
        return ERR_INVALID;
    }
    if ((r = master_read(path, key)) != ERR_NOTFOUND)
        return r;
    if ((r = master_create(path, key)) != ERR_EXISTS)
        return r;
    return master_read(path, key); /* created meanwhile by another process */
}
