/* origin.c: the slow origin behind Varnish and nginx in bench/stampede: 100 ms per request.
 *
 * Every GET is one "computation": it is counted, and answered after a timer of --delay-ms (no
 * blocking sleep: the event loop keeps accepting, so concurrent requests overlap as a real
 * origin's would) with a small body and `Cache-Control: public, max-age=3600`, which both
 * proxies cache. `GET /count` answers the number of computations so far, at once and uncounted:
 * bench/stampede/run.sh reads it before and after each round.
 *
 *   stampede_origin --port 7410 [--delay-ms 100]
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event_base *base;
static unsigned long computations;
static struct timeval delay = {0, 100000};

struct pending {
    struct evhttp_request *req;
    struct event *timer;
};

static void answer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_printf(body, "the value, computed once\n");
    struct evkeyvalq *h = evhttp_request_get_output_headers(p->req);
    evhttp_add_header(h, "Content-Type", "text/plain");
    evhttp_add_header(h, "Cache-Control", "public, max-age=3600");
    evhttp_send_reply(p->req, 200, "OK", body);
    evbuffer_free(body);
    event_free(p->timer);
    free(p);
}

/* GET /count: the computations so far; GET anything else: one computation, answered later */
static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (strcmp(evhttp_request_get_uri(req), "/count") == 0) {
        struct evbuffer *body = evbuffer_new();
        evbuffer_add_printf(body, "%lu\n", computations);
        evhttp_send_reply(req, 200, "OK", body);
        evbuffer_free(body);
        return;
    }
    computations++;
    struct pending *p = malloc(sizeof *p);
    if (!p) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    p->req = req;
    p->timer = evtimer_new(base, answer, p);
    evtimer_add(p->timer, &delay);
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--delay-ms") == 0) {
            int ms = atoi(argv[i + 1]);
            delay.tv_sec = ms / 1000;
            delay.tv_usec = (ms % 1000) * 1000;
        }
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: stampede_origin --port PORT [--delay-ms MS]\n");
        return 2;
    }
    base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http || evhttp_bind_socket(http, "127.0.0.1", (unsigned short)port) != 0) {
        fprintf(stderr, "stampede_origin: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    evhttp_set_gencb(http, on_request, NULL);
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
