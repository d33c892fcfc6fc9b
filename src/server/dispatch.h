/* dispatch.h: strata serve's side of the HTTP layer: the callbacks a worker hands it.
 *
 * The layer below knows no routes; this is where a request meets them. A worker gets its
 * callbacks and limits here and gives them to its http_server: nothing in src/server/http calls
 * back up by name. */
#ifndef STRATA_SERVER_DISPATCH_H
#define STRATA_SERVER_DISPATCH_H

#include "http/http_server.h"
#include "server.h"

/* Fills cb with the callbacks that serve the requests of a worker's listener l (routing as l's
 * kind says, authentication, rate limits, the handlers, refusals as JSON) and limits with the
 * server's settings for one worker. l must outlive the HTTP server it is given to. */
void dispatch_setup(listener *l, http_callbacks *cb, http_limits *limits);

#endif
