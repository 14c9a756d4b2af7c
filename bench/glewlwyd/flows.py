#!/usr/bin/env python3
"""OAuth set-up for bench/oauth.sh: configures Glewlwyd through its admin API and runs the
authorization code flows (PKCE S256) that give the load generator (bench/token_load.c) its
refresh tokens, on mcpgate and on Glewlwyd. Standard library only (http.client: no proxies).

    flows.py glewlwyd-setup URL KEY.pem PUB.pem
        admin/password (seeded by the database script) signs in, then adds the OIDC plugin
        instance "oidc" (ES256 with the given P-256 key, code + refresh_token + client_credentials
        grants, PKCE S256, one-use refresh tokens "always", no rolling), the scope "mcp", the
        user "bench" and the confidential client "bench" (client_secret_basic).
    flows.py chains mcpgate URL N OUT [--password P] [--src-base 127.0.0.2]
    flows.py chains glewlwyd URL N OUT [--src-base 127.0.0.2]
        signs in once as the user, approves the client once, then runs N authorization code
        flows and writes OUT for token_load: line 1 the token path, line 2 the Authorization
        header value (Basic), then N refresh tokens, one a line. Each flow's token request comes
        from its own source address (SRC-BASE + i) because mcpgate limits /token per address.
        mcpgate: the client is registered with DCR (/register), the user is "admin" with the
        password mcpgate printed at its first start; the browser flow is /authorize -> /login
        (cookie mcpgate_login, form username/password/csrf/continue) -> cookie mcpgate_session
        -> consent form (csrf, request, decision=approve) -> code; later flows reuse the session
        and the remembered consent. Glewlwyd: POST /api/auth/ (cookie), PUT /api/auth/grant/
        bench/ (the user's consent), GET /api/oidc/auth?g_continue&... -> code.
    flows.py cc-token URL
        mcpgate: with a client added by `mcpgate client add`, prints a client_credentials
        access token.

Exit status: 0 on success, 1 when a server answers wrongly (the message says which step).
"""

import base64
import hashlib
import html.parser
import http.client
import ipaddress
import json
import os
import sys
import urllib.parse

REDIRECT = "http://127.0.0.1:9/cb"
GW_USER, GW_PASSWORD = "bench", "bench-password-1"
GW_CLIENT, GW_SECRET = "bench", "bench-client-secret-1"


class Wrong(Exception):
    pass


def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


def request(url, method, path, body=None, headers=None, src=None, want=None, step=""):
    host, port = split_url(url)
    c = http.client.HTTPConnection(host, port, timeout=30,
                                   source_address=(src, 0) if src else None)
    h = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body, h)
    r = c.getresponse()
    data = r.read()
    c.close()
    if want is not None and r.status not in (want if isinstance(want, tuple) else (want,)):
        raise Wrong("%s: %s %s -> %d %s" % (step or path, method, path, r.status,
                                             data[:300].decode("utf-8", "replace")))
    return r, data


def form(d):
    return urllib.parse.urlencode(d)


def cookie_of(resp, name):
    for k, v in resp.getheaders():
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0]
    raise Wrong("no %s cookie in the answer" % name)


def pkce():
    v = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    c = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
    return v, c


def basic(cid, secret):
    raw = "%s:%s" % (urllib.parse.quote(cid, safe=""), urllib.parse.quote(secret, safe=""))
    return "Basic " + base64.b64encode(raw.encode()).decode()


def code_of(location, state):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(location or "").query)
    if "code" not in q:
        raise Wrong("no code in the redirect: %s" % location)
    if q.get("state", [None])[0] != state:
        raise Wrong("state not echoed in the redirect: %s" % location)
    return q["code"][0]


class Inputs(html.parser.HTMLParser):
    """The hidden and named inputs of an HTML page (login and consent forms)."""

    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value") or ""


def hidden(page):
    p = Inputs()
    p.feed(page.decode("utf-8", "replace"))
    return p.fields


def exchange(url, path, auth, code, verifier, src, extra=None):
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    body.update(extra or {})
    _, data = request(url, "POST", path, form(body),
                      {"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth},
                      src=src, want=200, step="code exchange")
    j = json.loads(data)
    if not j.get("access_token") or not j.get("refresh_token"):
        raise Wrong("code exchange: no access or refresh token: %s" % data[:300])
    return j["refresh_token"]


def mcpgate_register(url, grants):
    _, data = request(url, "POST", "/register", {
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": grants, "client_name": "bench"}, want=(200, 201), step="DCR")
    j = json.loads(data)
    return j["client_id"], j["client_secret"]


def mcpgate_chains(url, n, password, srcs):
    cid, secret = mcpgate_register(url, ["authorization_code", "refresh_token"])
    auth = basic(cid, secret)
    resource = url.rstrip("/") + "/mcp"
    session = None
    tokens = []
    for i in range(n):
        verifier, challenge = pkce()
        state = "s%d" % i
        q = form({"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT,
                  "state": state, "scope": "mcp", "code_challenge": challenge,
                  "code_challenge_method": "S256", "resource": resource})
        hdr = {"Cookie": session} if session else {}
        r, page = request(url, "GET", "/authorize?" + q, headers=hdr, want=(200, 302),
                          step="authorize")
        if session is None:
            # Signed out: /authorize -> /login?continue=..., sign in, come back.
            if r.status != 302 or not r.getheader("Location", "").startswith("/login"):
                raise Wrong("authorize without a session: expected a redirect to /login")
            r, page = request(url, "GET", r.getheader("Location"), want=200, step="login page")
            login = cookie_of(r, "mcpgate_login")
            f = hidden(page)
            if "csrf" not in f or "continue" not in f:
                raise Wrong("login page without csrf/continue fields")
            r, _ = request(url, "POST", "/login",
                           form({"username": "admin", "password": password, "csrf": f["csrf"],
                                 "continue": f["continue"]}),
                           {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login},
                           want=303, step="login")
            session = cookie_of(r, "mcpgate_session")
            r, page = request(url, "GET", r.getheader("Location"), headers={"Cookie": session},
                              want=200, step="authorize after login (consent page)")
            f = hidden(page)
            if "csrf" not in f or "request" not in f:
                raise Wrong("consent page without csrf/request fields")
            r, _ = request(url, "POST", "/authorize/consent",
                           form({"csrf": f["csrf"], "request": f["request"],
                                 "decision": "approve"}),
                           {"Content-Type": "application/x-www-form-urlencoded",
                            "Cookie": session}, want=303, step="consent")
        elif r.status != 302:
            raise Wrong("authorize with a session and a remembered consent: expected 302, "
                        "got %d" % r.status)
        code = code_of(r.getheader("Location"), state)
        tokens.append(exchange(url, "/token", auth, code, verifier, srcs[i],
                               {"resource": resource}))
    return "/token", auth, tokens


def glewlwyd_admin(url):
    r, _ = request(url, "POST", "/api/auth/", {"username": "admin", "password": "password"},
                   want=200, step="admin sign-in")
    return {"Cookie": cookie_of(r, "GLEWLWYD2_SESSION_ID")}


def glewlwyd_setup(url, key_file, pub_file):
    ck = glewlwyd_admin(url)
    with open(key_file) as f:
        key = f.read()
    with open(pub_file) as f:
        pub = f.read()
    plugin = {
        "module": "oidc", "name": "oidc", "display_name": "OIDC", "enabled": True,
        "parameters": {
            "iss": url, "jwt-type": "ecdsa", "jwt-key-size": "256", "key": key, "cert": pub,
            "access-token-duration": 3600, "refresh-token-duration": 1209600,
            "code-duration": 600, "refresh-token-rolling": False,
            # Rotation: every refresh disables the token used and returns a new one; a reuse
            # breaks the chain (Glewlwyd's "one-time use refresh token").
            "refresh-token-one-use": "always",
            "client-refresh-token-one-use-parameter": "refresh-token-one-use",
            "allow-non-oidc": True, "auth-type-code-enabled": True,
            "auth-type-code-revoke-replayed": True, "auth-type-token-enabled": False,
            "auth-type-id-token-enabled": True, "auth-type-none-enabled": False,
            "auth-type-password-enabled": False, "auth-type-client-enabled": True,
            "auth-type-device-enabled": False, "auth-type-refresh-enabled": True,
            "pkce-allowed": True, "pkce-method-plain-allowed": False,
            "subject-type": "public", "jwks-show": True, "scope": [],
            "additional-parameters": [], "claims": [], "allowed-scope": ["openid", "mcp"],
        },
    }
    request(url, "POST", "/api/mod/plugin/", plugin, ck, want=200, step="add the OIDC plugin")
    request(url, "POST", "/api/scope/", {"name": "mcp", "display_name": "MCP",
                                         "description": "MCP access", "password_required": False,
                                         "scheme": {}}, ck, want=200, step="add the scope")
    request(url, "POST", "/api/user/", {"username": GW_USER, "password": GW_PASSWORD,
                                        "scope": ["g_profile", "openid", "mcp"],
                                        "enabled": True}, ck, want=200, step="add the user")
    request(url, "POST", "/api/client/", {
        "client_id": GW_CLIENT, "name": "bench", "confidential": True,
        "client_secret": GW_SECRET, "redirect_uri": [REDIRECT],
        "authorization_type": ["code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_method": ["client_secret_basic"], "scope": ["mcp"],
        "enabled": True}, ck, want=200, step="add the client")


def glewlwyd_chains(url, n, srcs):
    r, _ = request(url, "POST", "/api/auth/", {"username": GW_USER, "password": GW_PASSWORD},
                   want=200, step="user sign-in")
    ck = {"Cookie": cookie_of(r, "GLEWLWYD2_SESSION_ID")}
    request(url, "PUT", "/api/auth/grant/%s/" % GW_CLIENT, {"scope": "openid mcp"}, ck, want=200,
            step="consent (grant scopes)")
    auth = basic(GW_CLIENT, GW_SECRET)
    tokens = []
    for i in range(n):
        verifier, challenge = pkce()
        state = "s%d" % i
        q = form({"response_type": "code", "client_id": GW_CLIENT, "redirect_uri": REDIRECT,
                  "state": state, "nonce": "n%d" % i, "scope": "openid mcp",
                  "code_challenge": challenge, "code_challenge_method": "S256"})
        r, _ = request(url, "GET", "/api/oidc/auth?g_continue&" + q, headers=ck, want=302,
                       step="authorize")
        code = code_of(r.getheader("Location"), state)
        tokens.append(exchange(url, "/api/oidc/token", auth, code, verifier, srcs[i]))
    return "/api/oidc/token", auth, tokens


def main(argv):
    if len(argv) >= 4 and argv[0] == "glewlwyd-setup":
        glewlwyd_setup(argv[1], argv[2], argv[3])
        return 0
    if len(argv) >= 4 and argv[0] == "cc-token":
        # client_credentials is for clients an administrator registered (mcpgate client add):
        # oauth.sh registers one and passes its id and secret.
        url, cid, secret = argv[1], argv[2], argv[3]
        _, data = request(url, "POST", "/token", form({"grant_type": "client_credentials"}),
                          {"Content-Type": "application/x-www-form-urlencoded",
                           "Authorization": basic(cid, secret)}, want=200,
                          step="client_credentials")
        tok = json.loads(data).get("access_token")
        if not tok:
            raise Wrong("client_credentials: no access token: %s" % data[:300])
        print(tok)
        return 0
    if len(argv) >= 5 and argv[0] == "chains":
        kind, url, n, out = argv[1], argv[2], int(argv[3]), argv[4]
        opts = dict(zip(argv[5::2], argv[6::2]))
        base = ipaddress.IPv4Address(opts.get("--src-base", "127.0.0.2"))
        srcs = [str(base + i) for i in range(n)]
        if kind == "mcpgate":
            path, auth, tokens = mcpgate_chains(url, n, opts["--password"], srcs)
        elif kind == "glewlwyd":
            path, auth, tokens = glewlwyd_chains(url, n, srcs)
        else:
            raise SystemExit("flows.py: unknown server kind %s" % kind)
        with open(out, "w") as f:
            f.write("%s\n%s\n" % (path, auth))
            for t in tokens:
                f.write(t + "\n")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Wrong as e:
        sys.stderr.write("flows.py: wrong answer: %s\n" % e)
        sys.exit(1)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        sys.stderr.write("flows.py: %s: %s\n" % (type(e).__name__, e))
        sys.exit(2)
