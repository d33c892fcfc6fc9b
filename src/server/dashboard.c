/* dashboard.c: GET /dashboard and its files: the page, its script, its style and Chart.js, all
 * compiled into the binary (dashboard_assets.h), served without a token.
 *
 * The page holds no secret: what it shows it asks for with the operator's token, which it reads
 * from the URL's fragment or asks for, and sends in Authorization only. The answers here are
 * strict about what the browser may do with them: a Content-Security-Policy that allows scripts,
 * styles and requests from this server alone and no inline script or style, no framing, no
 * referrer, no content sniffing. The files change only with the binary, so each carries a strong
 * ETag (their SHA-256, computed at build time) and "Cache-Control: no-cache": a browser keeps
 * them and asks again with If-None-Match, answered 304 without the body.
 */
#include <string.h>

#include "codec.h"
#include "dashboard_assets.h"
#include "handlers.h"

#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* Each route of the dashboard, the file it answers with and the file's type. */
static const struct {
    int route;
    const char *asset, *type;
} files[] = {
    {R_DASHBOARD, "index.html", "text/html; charset=utf-8"},
    {R_DASHBOARD_JS, "app.js", "text/javascript; charset=utf-8"},
    {R_DASHBOARD_CSS, "app.css", "text/css; charset=utf-8"},
    {R_DASHBOARD_CHART, "chart.js", "text/javascript; charset=utf-8"},
};

static const dashboard_asset *find_asset(const char *name)
{
    for (size_t i = 0; i < dashboard_asset_count; i++)
        if (strcmp(dashboard_assets[i].name, name) == 0)
            return &dashboard_assets[i];
    return NULL;
}

/* GET, HEAD /dashboard, /dashboard/app.js, /dashboard/app.css, /dashboard/chart.js
 *   If-None-Match: "<etag>"  ->  304 */
void dashboard_handle(req *q)
{
    const dashboard_asset *a = NULL;
    const char *type = NULL;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && a == NULL; i++)
        if (files[i].route == (int)q->r.id)
            a = find_asset(files[i].asset), type = files[i].type;
    if (a == NULL) { /* a row of routes.h without its file: a build error, said plainly */
        reply_error(q, 500, "internal", "this build has no file for %s", get_path(q));
        return;
    }
    add_header(q, "ETag", a->etag);
    add_header(q, "Cache-Control", "no-cache");
    add_header(q, "Content-Security-Policy", DASHBOARD_CSP);
    add_header(q, "X-Content-Type-Options", "nosniff");
    add_header(q, "Referrer-Policy", "no-referrer");
    add_header(q, "X-Frame-Options", "DENY");
    const char *inm = get_header(q, "If-None-Match");
    if (inm != NULL && codec_etag_listed(inm, a->etag)) {
        reply_empty(q, 304);
        return;
    }
    add_header(q, "Content-Type", type);
    reply_static(q, 200, a->data, a->len);
}
