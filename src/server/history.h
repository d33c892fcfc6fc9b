/* history.h: the server's last minutes, second by second: a bounded ring of snapshots of its
 * counters, taken by a thread of its own, answered as JSON by GET /cache/stats/history (what the
 * dashboard charts the moment it opens, and what other tools may read).
 *
 * A snapshot holds the counters as they stand (requests, reads by tier, the latency histogram,
 * L1's memory, evictions and expirations, Redis' state and invalidation link, rate-limit
 * decisions, sessions, the LLM gateway's answers, tokens and money saved); a point of the answer
 * is the difference of two consecutive ones, so every figure is per second. A snapshot also keeps
 * the second's own reads of the HISTORY_NAMESPACES namespaces read most in it. HISTORY_POINTS of
 * them are kept: older ones are overwritten.
 *
 *     history_start(s);                       // at start, after the workers exist
 *     json_t *j = history_json(s, since);     // GET /cache/stats/history?since=T
 *     history_stop(s);                        // at stop, before the workers go
 */
#ifndef STRATA_SERVER_HISTORY_H
#define STRATA_SERVER_HISTORY_H

#include <stdint.h>

#include <jansson.h>

#include "server.h"

#define HISTORY_POINTS      900 /* snapshots kept: 15 minutes at one a second */
#define HISTORY_INTERVAL_MS 1000
#define HISTORY_NAMESPACES  8 /* namespaces a snapshot keeps: those read most in its second */

/* Starts the sampling thread (s->history). Returns 0 or -1 (out of memory, no thread). */
int history_start(server *s);
/* Stops it and frees the ring; nothing when it was not started. */
void history_stop(server *s);
/* The points after since (unix seconds; 0: all kept), oldest first:
 * {"interval_s": 1, "capacity": N, "points": [{"t": ..., "requests": ..., ...}, ...]}. */
json_t *history_json(server *s, int64_t since);

#endif
