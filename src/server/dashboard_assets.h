/* dashboard_assets.h: the dashboard's files as compiled into the binary (dashboard.c serves them).
 *
 * The rows are generated at build time by cmake/embed_assets.cmake from src/server/dashboard/
 * (the page, its script and style) and Debian's Chart.js (libjs-chart.js); see
 * docs/architecture.md, "The dashboard". Each file's bytes are followed by a NUL not counted in
 * len.
 */
#ifndef STRATA_SERVER_DASHBOARD_ASSETS_H
#define STRATA_SERVER_DASHBOARD_ASSETS_H

#include <stddef.h>

typedef struct dashboard_asset {
    const char *name;          /* "index.html", "app.js", "app.css", "chart.js" */
    const unsigned char *data; /* the file's bytes */
    size_t len;
    const char *etag; /* a strong ETag, quotes included: the file's SHA-256, 16 hex digits */
} dashboard_asset;

extern const dashboard_asset dashboard_assets[];
extern const size_t dashboard_asset_count;

#endif
