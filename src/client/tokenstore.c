/* The client's token store: one directory per server configuration under <dir>/v1/, JSON
 * documents written atomically, and lease files serializing sign-in and refresh between
 * processes. See tokenstore.h for the contract; the design notes are here.
 *
 * Everything below the store directory is reached relative to an fd of <dir>/v1 opened once by
 * tstore_open (openat/renameat/unlinkat with O_NOFOLLOW), so a symlink planted inside the store
 * is never followed. The store directory itself may be a symlink (dotfile managers do that).
 *
 * Leases. <key>/<name>.lease holds "<pid> <unix time>\n". Every step that reads, creates,
 * replaces or removes a lease file runs under flock(2) on <key>/.lock, held for a few syscalls
 * only and released by the kernel when its holder dies, so the guard itself can never go
 * stale. Under the guard the check "is the lease absent or stale?" and the action that follows
 * (O_CREAT|O_EXCL create, or a temporary file renamed over the stale lease) are one atomic
 * step: of N processes racing for the same stale lease exactly one replaces it, the others
 * then read the winner's live lease. Comparing inodes before a rename, without such a guard,
 * leaves a window between the comparison and the rename in which two takers both win.
 * Release re-reads the file under the guard and unlinks it only if it is still the file this
 * process created (its pid and its dev/inode), so it never removes a successor's lease. */
#include "client/tokenstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define TSTORE_MAX_DOC (1024 * 1024) /* documents are a few KiB; anything past 1 MiB is corrupt */
#define TSTORE_NAME_MAX 64
#define TSTORE_KEY_LEN (2 * CRYPTO_SHA256_LEN)
#define LEASE_MAX 64       /* "<pid> <time>\n" is at most ~32 bytes */
#define GUARD_NAME ".lock" /* names cannot start with '.', so no clash with documents */
#define GUARD_WAIT_MS 2000 /* the guard is held for microseconds; past this, report busy */

struct tstore {
    char *dir; /* owned: the store directory as given or resolved */
    int v1fd;  /* <dir>/v1, O_DIRECTORY */
};

/* Leases this process holds, across every struct tstore of the process: a lease file that
 * names our pid but is not in this list was left by an earlier process that had the same pid
 * (containers restart with the same small pids) and is stale. */
struct held {
    pid_t pid;
    dev_t dev;
    ino_t ino;
};
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct held *held_v;
static size_t held_n, held_cap;

static bool held_find(pid_t pid, dev_t dev, ino_t ino, bool remove)
{
    bool found = false;
    pthread_mutex_lock(&held_mu);
    for (size_t i = 0; i < held_n; i++) {
        if (held_v[i].pid == pid && held_v[i].dev == dev && held_v[i].ino == ino) {
            found = true;
            if (remove)
                held_v[i] = held_v[--held_n];
            break;
        }
    }
    pthread_mutex_unlock(&held_mu);
    return found;
}

static void held_add(pid_t pid, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&held_mu);
    if (held_n == held_cap) {
        held_cap = held_cap ? 2 * held_cap : 8;
        held_v = xrealloc(held_v, held_cap * sizeof(*held_v));
    }
    held_v[held_n++] = (struct held){pid, dev, ino};
    pthread_mutex_unlock(&held_mu);
}

static bool name_valid(const char *name)
{
    size_t n = 0;
    if (name == NULL)
        return false;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        if (n >= TSTORE_NAME_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                      (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return n > 0;
}

/* Exactly what tstore_key produces: 64 lowercase hex digits. */
static bool key_valid(const char *key)
{
    size_t n = 0;
    if (key == NULL)
        return false;
    for (; key[n] != '\0'; n++) {
        char c = key[n];
        if (n >= TSTORE_KEY_LEN || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return n == TSTORE_KEY_LEN;
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

/* Reads at most cap bytes plus one (to detect oversize) into a new NUL-terminated buffer. */
static int read_capped(int fd, size_t cap, char **out /* OUT */, size_t *outlen /* OUT */)
{
    size_t len = 0, size = 4096;
    char *buf = xmalloc(size);
    *out = NULL;
    for (;;) {
        if (len + 1 >= size) {
            if (size > cap + 1)
                break;
            size *= 2;
            buf = xrealloc(buf, size);
        }
        ssize_t n = read(fd, buf + len, size - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            crypto_wipe(buf, size);
            free(buf);
            return ERR_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > cap) {
        crypto_wipe(buf, size);
        free(buf);
        return ERR_TOOBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* fstat an opened store directory or file; refuse one owned by another user (it could read
 * our tokens); tighten one that group/other can access, with a warning. */
static int check_private(int fd, const char *what, mode_t want)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return ERR_IO;
    if (st.st_uid != geteuid() && geteuid() != 0) {
        log_error("%s is owned by uid %ld, not by us: refusing to use it", what, (long)st.st_uid);
        return ERR_INVALID;
    }
    if ((st.st_mode & 077) != 0) {
        log_warn("%s had mode %04o: tightening to %04o", what, (unsigned)(st.st_mode & 07777),
                 (unsigned)want);
        if (fchmod(fd, want) != 0) {
            log_error("%s: chmod failed: %s", what, strerror(errno));
            return ERR_IO;
        }
    }
    return 0;
}

/* Opens (creating with 0700 when asked) the directory name under parentfd, never through a
 * symlink unless follow, and makes sure it is private. *created tells whether we made it. */
static int open_private_dir(int parentfd, const char *name, bool create, bool follow,
                            bool *created /* OUT, may be NULL */, int *out /* OUT */)
{
    int r = ERR_INTERNAL, fd = -1;
    bool made = false;
    *out = -1;
    if (create) {
        if (mkdirat(parentfd, name, 0700) == 0)
            made = true;
        else if (errno != EEXIST) {
            log_error("cannot create %s: %s", name, strerror(errno));
            r = ERR_IO;
            goto out;
        }
    }
    fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        if (errno == ENOENT) {
            r = ERR_NOTFOUND;
        } else if (errno == ELOOP || errno == ENOTDIR) {
            log_error("%s is not a directory (or is a symlink): refusing it", name);
            r = ERR_INVALID;
        } else {
            log_error("cannot open %s: %s", name, strerror(errno));
            r = ERR_IO;
        }
        goto out;
    }
    if (made) {
        struct stat st; /* a umask wider than 077 must not leave us with 0500 or 0300 */
        if (fstat(fd, &st) != 0 || ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0)) {
            r = ERR_IO;
            goto out;
        }
    } else if ((r = check_private(fd, name, 0700)) != 0) {
        goto out;
    }
    if (created != NULL)
        *created = made;
    *out = fd;
    fd = -1;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

/* mkdir -p of every missing ancestor of path, each created 0700; existing ones are left as
 * they are (~/.config is not ours to change). */
static int make_parents(const char *path)
{
    int r = 0;
    char *p = xstrdup(path);
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/' || s[-1] == '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) == 0) {
            if (chmod(p, 0700) != 0) /* only a umask wider than 077 needs it */
                r = ERR_IO;
        } else if (errno != EEXIST) {
            log_error("cannot create %s: %s", p, strerror(errno));
            r = ERR_IO;
        }
        *s = '/';
        if (r != 0)
            break;
    }
    free(p);
    return r;
}

static char *default_dir(void)
{
    const char *e = getenv("MCPGATE_CONFIG_DIR");
    if (e != NULL && *e != '\0')
        return xstrdup(e);
    e = getenv("XDG_CONFIG_HOME");
    if (e != NULL && e[0] == '/') /* the XDG spec: a relative value is invalid and ignored */
        return xasprintf("%s/mcpgate", e);
    e = getenv("HOME");
    if (e == NULL || *e == '\0') {
        struct passwd *pw = getpwuid(geteuid());
        e = pw != NULL ? pw->pw_dir : NULL;
    }
    if (e == NULL || *e == '\0')
        return NULL;
    return xasprintf("%s/.config/mcpgate", e);
}

int tstore_open(const char *dir, struct tstore **out)
{
    int r = ERR_INTERNAL, rootfd = -1, v1fd = -1;
    char *path = NULL;
    *out = NULL;
    if (dir != NULL && *dir == '\0')
        return ERR_INVALID;
    if ((path = dir != NULL ? xstrdup(dir) : default_dir()) == NULL) {
        log_error("no store directory: set MCPGATE_CONFIG_DIR, XDG_CONFIG_HOME or HOME");
        r = ERR_INVALID;
        goto out;
    }
    if ((r = make_parents(path)) != 0 ||
        (r = open_private_dir(AT_FDCWD, path, true, true, NULL, &rootfd)) != 0 ||
        (r = open_private_dir(rootfd, "v1", true, false, NULL, &v1fd)) != 0)
        goto out;
    struct tstore *ts = xcalloc(1, sizeof(*ts));
    ts->dir = path;
    ts->v1fd = v1fd;
    path = NULL;
    v1fd = -1;
    *out = ts;
    r = 0;
out:
    if (rootfd >= 0)
        close(rootfd);
    if (v1fd >= 0)
        close(v1fd);
    free(path);
    return r;
}

void tstore_close(struct tstore *ts)
{
    if (ts == NULL)
        return;
    close(ts->v1fd);
    free(ts->dir);
    free(ts);
}

const char *tstore_dir(const struct tstore *ts)
{
    return ts->dir;
}

char *tstore_key(const char *server_url, const char *const *identity_parts, size_t nparts)
{
    size_t len = server_url != NULL ? strlen(server_url) : 0;
    for (size_t i = 0; i < nparts; i++)
        len += 1 + (identity_parts[i] != NULL ? strlen(identity_parts[i]) : 0);
    char *msg = xmalloc(len + 1), *p = msg;
    if (server_url != NULL)
        p = stpcpy(p, server_url);
    for (size_t i = 0; i < nparts; i++) {
        *p++ = '\n';
        if (identity_parts[i] != NULL)
            p = stpcpy(p, identity_parts[i]);
    }
    unsigned char md[CRYPTO_SHA256_LEN];
    crypto_sha256(msg, len, md);
    free(msg);
    static const char hex[] = "0123456789abcdef";
    char *key = xmalloc(TSTORE_KEY_LEN + 1);
    for (size_t i = 0; i < CRYPTO_SHA256_LEN; i++) {
        key[2 * i] = hex[md[i] >> 4];
        key[2 * i + 1] = hex[md[i] & 15];
    }
    key[TSTORE_KEY_LEN] = '\0';
    return key;
}

/* Opens <v1>/<key>, creating it (0700, then an fsync of v1/) when asked. */
static int open_keydir(struct tstore *ts, const char *key, bool create, int *out /* OUT */)
{
    bool created = false;
    int r = open_private_dir(ts->v1fd, key, create, false, &created, out);
    if (r == 0 && created && fsync(ts->v1fd) != 0)
        log_warn("fsync of %s/v1 failed: %s", ts->dir, strerror(errno));
    return r;
}

/* A fresh temporary file beside the target: ".<target>.<pid>.<random>.tmp", 0600. */
static int open_temp(int dirfd, const char *target, char **tmpname /* OUT */, int *out /* OUT */)
{
    unsigned char rnd[8];
    *out = -1;
    *tmpname = NULL;
    if (crypto_random(rnd, sizeof(rnd)) != 0)
        return ERR_CRYPTO;
    char *name = xasprintf(".%s.%ld.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", target, (long)getpid(),
                           rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        free(name);
        errno = e;
        return ERR_IO;
    }
    if (fchmod(fd, 0600) != 0) { /* in case the umask took away our own bits */
        close(fd);
        unlinkat(dirfd, name, 0);
        free(name);
        return ERR_IO;
    }
    *tmpname = name;
    *out = fd;
    return 0;
}

/* Temporary file, write, fsync, rename over target, fsync of the directory. */
static int write_atomic(int dirfd, const char *target, const char *data, size_t len, bool sync)
{
    int r = ERR_INTERNAL, fd = -1;
    char *tmp = NULL;
    if ((r = open_temp(dirfd, target, &tmp, &fd)) != 0)
        goto out;
    if ((r = write_all(fd, data, len)) != 0 || (sync && fsync(fd) != 0)) {
        log_error("writing %s failed: %s", target, strerror(errno));
        r = ERR_IO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        r = ERR_IO;
        goto out;
    }
    fd = -1;
    if (renameat(dirfd, tmp, dirfd, target) != 0) {
        log_error("renaming onto %s failed: %s", target, strerror(errno));
        r = ERR_IO;
        goto out;
    }
    free(tmp);
    tmp = NULL;
    if (sync && fsync(dirfd) != 0) {
        log_error("fsync of the directory of %s failed: %s", target, strerror(errno));
        r = ERR_IO;
        goto out;
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlinkat(dirfd, tmp, 0);
        free(tmp);
    }
    return r;
}

int tstore_get(struct tstore *ts, const char *key, const char *name, json_t **out)
{
    int r = ERR_INTERNAL, dfd = -1, fd = -1;
    char *file = NULL, *buf = NULL;
    size_t len = 0;
    *out = NULL;
    if (!key_valid(key) || !name_valid(name))
        return ERR_INVALID;
    if ((r = open_keydir(ts, key, false, &dfd)) != 0)
        goto out;
    file = xasprintf("%s.json", name);
    /* O_NONBLOCK: a FIFO planted here must not hang us (it is refused below). */
    if ((fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
        if (errno == ENOENT) {
            r = ERR_NOTFOUND;
        } else if (errno == ELOOP) {
            log_warn("%.8s/%s is a symlink: not following it", key, file);
            r = ERR_INVALID;
        } else {
            log_error("cannot open %.8s/%s: %s", key, file, strerror(errno));
            r = ERR_IO;
        }
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = ERR_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        log_warn("%.8s/%s is not a regular file: refusing it", key, file);
        r = ERR_INVALID;
        goto out;
    }
    if ((r = check_private(fd, file, 0600)) != 0)
        goto out;
    if (st.st_size > TSTORE_MAX_DOC ||
        (r = read_capped(fd, TSTORE_MAX_DOC, &buf, &len)) == ERR_TOOBIG) {
        log_warn("%.8s/%s is larger than %d bytes: treating it as corrupt", key, file,
                 TSTORE_MAX_DOC);
        r = ERR_PARSE;
        goto out;
    }
    if (r != 0)
        goto out;
    json_error_t jerr;
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        /* Position only: jerr.text may quote the file, which holds tokens. */
        if (doc == NULL)
            log_warn("%.8s/%s is corrupt (JSON error at line %d, column %d): ignoring it", key,
                     file, jerr.line, jerr.column);
        else
            log_warn("%.8s/%s is corrupt (not a JSON object): ignoring it", key, file);
        json_decref(doc);
        r = ERR_PARSE;
        goto out;
    }
    *out = doc;
    r = 0;
out:
    if (buf != NULL) {
        crypto_wipe(buf, len);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(file);
    return r;
}

int tstore_put(struct tstore *ts, const char *key, const char *name, json_t *doc)
{
    int r = ERR_INTERNAL, dfd = -1;
    char *file = NULL, *text = NULL;
    size_t len = 0;
    if (!key_valid(key) || !name_valid(name) || !json_is_object(doc))
        return ERR_INVALID;
    if ((text = json_dumps(doc, JSON_COMPACT)) == NULL) {
        r = ERR_INVALID;
        goto out;
    }
    if ((len = strlen(text)) > TSTORE_MAX_DOC) {
        r = ERR_TOOBIG;
        goto out;
    }
    file = xasprintf("%s.json", name);
    /* Twice: a concurrent tstore_forget may remove the directory between open and create. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((r = open_keydir(ts, key, true, &dfd)) != 0)
            goto out;
        r = write_atomic(dfd, file, text, len, true);
        bool gone = r == ERR_IO && errno == ENOENT;
        close(dfd);
        dfd = -1;
        if (!gone)
            break;
    }
out:
    if (text != NULL) {
        crypto_wipe(text, len);
        free(text);
    }
    free(file);
    return r;
}

int tstore_remove(struct tstore *ts, const char *key, const char *name)
{
    int r = ERR_INTERNAL, dfd = -1;
    char *file = NULL;
    if (!key_valid(key) || !name_valid(name))
        return ERR_INVALID;
    if ((r = open_keydir(ts, key, false, &dfd)) != 0)
        goto out;
    file = xasprintf("%s.json", name);
    if (unlinkat(dfd, file, 0) != 0) {
        r = errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
        goto out;
    }
    if (fsync(dfd) != 0)
        log_warn("fsync of %.8s/ failed: %s", key, strerror(errno));
    r = 0;
out:
    if (dfd >= 0)
        close(dfd);
    free(file);
    return r;
}

/* Takes the per-entry guard (flock on <key>/.lock), polling for at most GUARD_WAIT_MS so a
 * stopped process cannot hang us. ERR_EXISTS when busy. */
static int guard_lock(int dfd, int *out /* OUT */)
{
    *out = -1;
    int fd = openat(dfd, GUARD_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR_IO;
    for (int waited = 0;; waited++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= GUARD_WAIT_MS) {
            int e = errno;
            close(fd);
            log_warn("lease guard busy or unusable: %s", strerror(e));
            return e == EWOULDBLOCK ? ERR_EXISTS : ERR_IO;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    *out = fd;
    return 0;
}

static void guard_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only fd of the open file description drops the flock */
}

/* Parses "<pid> <time>\n" exactly; false when malformed. */
static bool lease_parse(const char *s, long *pid, long long *when)
{
    char *end;
    if (*s < '1' || *s > '9')
        return false;
    errno = 0;
    long p = strtol(s, &end, 10);
    if (errno != 0 || *end != ' ' || p <= 0 || p > INT_MAX)
        return false;
    s = end + 1;
    if (*s < '0' || *s > '9')
        return false;
    long long t = strtoll(s, &end, 10);
    if (errno != 0 || end[0] != '\n' || end[1] != '\0')
        return false;
    *pid = p;
    *when = t;
    return true;
}

enum lease_state { LEASE_ABSENT, LEASE_LIVE, LEASE_OURS, LEASE_STALE };

/* Reads the lease file (under the guard) and classifies it. */
static int lease_inspect(int dfd, const char *file, int stale_seconds, enum lease_state *state,
                         long *pid /* OUT */, struct stat *st /* OUT */)
{
    int r = ERR_INTERNAL;
    char *buf = NULL;
    size_t len = 0;
    long long when = 0;
    *pid = 0;
    int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *state = LEASE_ABSENT;
            return 0;
        }
        if (errno == ELOOP) { /* a symlink is no lease of ours: replace it */
            *state = LEASE_STALE;
            return 0;
        }
        return ERR_IO;
    }
    if (fstat(fd, st) != 0) {
        r = ERR_IO;
        goto out;
    }
    *state = LEASE_STALE;
    if (!S_ISREG(st->st_mode)) {
        r = 0;
        goto out;
    }
    if ((r = read_capped(fd, LEASE_MAX, &buf, &len)) == ERR_TOOBIG) {
        r = 0;
        goto out;
    }
    if (r != 0)
        goto out;
    if (!lease_parse(buf, pid, &when)) {
        log_debug("lease %s is unparsable: stale", file);
        r = 0;
        goto out;
    }
    long long now = (long long)time(NULL);
    if (*pid == (long)getpid()) {
        if (held_find(getpid(), st->st_dev, st->st_ino, false))
            *state = LEASE_OURS;
        else
            log_debug("lease %s names our pid but was left by an earlier process: stale", file);
    } else if (kill((pid_t)*pid, 0) != 0 && errno == ESRCH) {
        log_debug("lease %s: holder %ld is dead: stale", file, *pid);
    } else if (stale_seconds > 0 && (now - when > stale_seconds || when - now > stale_seconds)) {
        log_debug("lease %s: taken %lld s ago, limit %d s: stale", file, now - when, stale_seconds);
    } else {
        *state = LEASE_LIVE;
    }
    r = 0;
out:
    free(buf);
    close(fd);
    return r;
}

static int lease_take_in(int dfd, const char *file, int stale_seconds, long *holder)
{
    int r = ERR_INTERNAL, gfd = -1, fd = -1;
    enum lease_state state = LEASE_ABSENT;
    long pid = 0;
    struct stat st;
    char line[LEASE_MAX];
    if ((r = guard_lock(dfd, &gfd)) != 0)
        goto out;
    if ((r = lease_inspect(dfd, file, stale_seconds, &state, &pid, &st)) != 0)
        goto out;
    if (state == LEASE_LIVE || state == LEASE_OURS) {
        if (holder != NULL)
            *holder = pid;
        r = ERR_EXISTS;
        goto out;
    }
    int n = snprintf(line, sizeof(line), "%ld %lld\n", (long)getpid(), (long long)time(NULL));
    if (state == LEASE_ABSENT) {
        fd = openat(dfd, file, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            r = ERR_IO; /* EEXIST cannot happen under the guard; ENOENT: directory forgotten */
            goto out;
        }
        if ((r = write_all(fd, line, (size_t)n)) != 0) {
            unlinkat(dfd, file, 0);
            goto out;
        }
    } else {
        log_info("taking over stale lease %s (holder %ld)", file, pid);
        if ((r = write_atomic(dfd, file, line, (size_t)n, false)) != 0)
            goto out;
        if ((fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
            r = ERR_IO;
            goto out;
        }
    }
    if (fstat(fd, &st) != 0) {
        unlinkat(dfd, file, 0);
        r = ERR_IO;
        goto out;
    }
    held_add(getpid(), st.st_dev, st.st_ino);
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    guard_unlock(gfd);
    return r;
}

int tstore_lease_take(struct tstore *ts, const char *key, const char *name, int stale_seconds,
                      long *holder)
{
    int r = ERR_INTERNAL, dfd = -1;
    char *file = NULL;
    if (holder != NULL)
        *holder = 0;
    if (!key_valid(key) || !name_valid(name))
        return ERR_INVALID;
    file = xasprintf("%s.lease", name);
    for (int attempt = 0; attempt < 2; attempt++) { /* see tstore_put */
        if ((r = open_keydir(ts, key, true, &dfd)) != 0)
            break;
        r = lease_take_in(dfd, file, stale_seconds, holder);
        bool gone = r == ERR_IO && errno == ENOENT;
        close(dfd);
        dfd = -1;
        if (!gone)
            break;
    }
    free(file);
    return r;
}

void tstore_lease_release(struct tstore *ts, const char *key, const char *name)
{
    int dfd = -1, gfd = -1;
    char *file = NULL;
    enum lease_state state = LEASE_ABSENT;
    long pid = 0;
    struct stat st;
    if (!key_valid(key) || !name_valid(name))
        return;
    if (open_keydir(ts, key, false, &dfd) != 0)
        goto out;
    file = xasprintf("%s.lease", name);
    if (guard_lock(dfd, &gfd) != 0) {
        log_warn("lease %s not released: guard unavailable", file);
        goto out;
    }
    /* Any stale_seconds: ours is ours however old; a successor's file is not ours. */
    if (lease_inspect(dfd, file, 0, &state, &pid, &st) != 0 || state != LEASE_OURS) {
        log_debug("lease %s is no longer ours: leaving it", file);
        goto out;
    }
    held_find(getpid(), st.st_dev, st.st_ino, true);
    if (unlinkat(dfd, file, 0) != 0)
        log_warn("cannot remove lease %s: %s", file, strerror(errno));
out:
    guard_unlock(gfd);
    if (dfd >= 0)
        close(dfd);
    free(file);
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int tstore_lease_wait(struct tstore *ts, const char *key, const char *name, int stale_seconds,
                      int timeout_ms)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int r = tstore_lease_take(ts, key, name, stale_seconds, NULL);
        if (r != ERR_EXISTS)
            return r;
        long long left = deadline - now_ms();
        if (left <= 0)
            return ERR_TIMEOUT;
        unsigned short rnd = 0;
        if (crypto_random(&rnd, sizeof(rnd)) != 0)
            rnd = (unsigned short)getpid();
        long long ms = 50 + rnd % 151; /* 50-200 ms, jittered so waiters do not move in step */
        if (ms > left)
            ms = left;
        struct timespec d = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            ;
    }
}

int tstore_forget(struct tstore *ts, const char *key)
{
    int r = ERR_INTERNAL;
    if (!key_valid(key))
        return ERR_INVALID;
    /* A few rounds: a concurrent put may add a file between the sweep and the rmdir. */
    for (int round = 0; round < 3; round++) {
        int dfd = -1, gfd = -1;
        if ((r = open_keydir(ts, key, false, &dfd)) != 0)
            return r;
        (void)guard_lock(dfd, &gfd); /* keeps lease takers out while we sweep; best effort */
        int lfd = dup(dfd);
        DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
        if (d == NULL) {
            if (lfd >= 0)
                close(lfd);
            guard_unlock(gfd);
            close(dfd);
            return ERR_IO;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (unlinkat(dfd, e->d_name, 0) != 0 && errno != ENOENT)
                log_warn("cannot remove %.8s/%s: %s", key, e->d_name, strerror(errno));
        }
        closedir(d);
        guard_unlock(gfd);
        close(dfd);
        if (unlinkat(ts->v1fd, key, AT_REMOVEDIR) == 0 || errno == ENOENT) {
            if (fsync(ts->v1fd) != 0)
                log_warn("fsync of %s/v1 failed: %s", ts->dir, strerror(errno));
            return 0;
        }
        r = ERR_IO;
        if (errno != ENOTEMPTY && errno != EEXIST)
            break;
    }
    log_error("cannot remove entry %.8s: %s", key, strerror(errno));
    return r;
}

FILE *tstore_open_log(struct tstore *ts, const char *key)
{
    int dfd = -1;
    if (!key_valid(key) || open_keydir(ts, key, true, &dfd) != 0)
        return NULL;
    int fd = openat(dfd, "debug.log", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    close(dfd);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "a");
    if (f == NULL)
        close(fd);
    return f;
}
