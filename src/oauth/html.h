/* Server-rendered pages of the authorization server: login, consent, device code entry, error,
 * connected apps, and the loopback "you may close this window" page. No JavaScript is needed.
 * Every string that can come from a client or a user is HTML-escaped here; callers pass raw
 * values. */
#ifndef MCPGATE_OAUTH_HTML_H
#define MCPGATE_OAUTH_HTML_H

#include <jansson.h>
#include <stdbool.h>

/* Escapes & < > " ' for element content and quoted attributes. Caller frees. */
char *html_escape(const char *s);

struct html_login {
    const char *server_name;   /* e.g. "mcpgate" */
    const char *action;        /* form action path, e.g. "/login" */
    const char *csrf;          /* hidden field "csrf" */
    const char *continue_to;   /* hidden field "continue" (the /authorize URL to return to) */
    const char *error;         /* a message to show, or NULL */
    const char *username;      /* prefill, or NULL */
    const char *client_name;   /* "Sign in to continue to <client>", or NULL */
};

struct html_consent {
    const char *server_name;
    const char *action;        /* e.g. "/authorize/consent" */
    const char *csrf;
    const char *request_id;    /* hidden field "request" identifying the pending authorization */
    const char *username;      /* who is signed in */
    const char *client_name;   /* as registered; NULL -> the client_id is shown */
    const char *client_id;
    const char *logo_uri;      /* https only; NULL for none */
    const char *client_uri;    /* NULL for none */
    const char *redirect_host; /* where the user will be sent */
    bool loopback_redirect;    /* warn: an app on this computer */
    bool unverified;           /* warn: dynamically registered, nobody vouched for it */
    json_t *scopes;            /* array of {"name", "description"} to list in words */
    const char *resource;      /* the MCP server the access is for */
    const char *user_code;     /* device flow: the code entered, to compare with the device's;
                                * NULL otherwise */
};

struct html_device {
    const char *server_name;
    const char *action;        /* e.g. "/device" */
    const char *csrf;
    const char *username;      /* who is signed in */
    const char *user_code;     /* prefill, or NULL */
    const char *error;         /* a message to show, or NULL */
    bool locked;               /* no more codes may be entered: the message, no form */
};

struct html_apps {
    const char *server_name;
    const char *action;        /* revoke form action, e.g. "/apps/revoke" */
    const char *csrf;
    const char *username;
    json_t *grants;            /* array of {grant_id, client_name, client_id, scope, created_at} */
    const char *notice;        /* e.g. "Access revoked." or NULL */
};

/* Each returns a complete UTF-8 HTML document (caller frees). */
char *html_login_page(const struct html_login *p);
char *html_consent_page(const struct html_consent *p);
char *html_device_page(const struct html_device *p);
char *html_error_page(const char *server_name, const char *title, const char *message);
char *html_apps_page(const struct html_apps *p);
char *html_done_page(const char *title, const char *message); /* simple final page */

#endif
