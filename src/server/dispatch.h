/* dispatch.h: strata serve's side of the HTTP layer: the callbacks a worker hands it. */
#ifndef STRATA_SERVER_DISPATCH_H
#define STRATA_SERVER_DISPATCH_H

#include "http/http_server.h"
#include "server.h"

/* Fills cb with the callbacks that serve w's requests (routing, authentication, rate limits,
 * the handlers, refusals as JSON) and limits with the server's settings for one worker. */
void dispatch_setup(worker *w, http_callbacks *cb, http_limits *limits);

#endif
