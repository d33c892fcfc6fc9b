/* origin.c: the counting origin behind the caching proxies of bench/stampede and bench/proxy.
 *
 * Every GET is one "computation": it is counted, and answered after a timer of --delay-ms (no
 * blocking sleep: the event loop keeps accepting, so concurrent requests overlap as a real
 * origin's would; 0 answers at once) with a small body and `Cache-Control: public,
 * max-age=3600`, which every proxy caches. The body is a sentence, or --body-bytes N bytes of
 * 'x' (bench/proxy's 100 B and 1 KB responses). `GET /count` answers the number of computations
 * so far, at once and uncounted: the scripts read it before and after a run.
 *
 *   stampede_origin --port 7410 [--delay-ms 100] [--body-bytes 1024]
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
static char *body_bytes; /* --body-bytes: the body, else NULL for the sentence */
static size_t body_len;

struct pending {
    struct evhttp_request *req;
    struct event *timer;
};

static void reply(struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();
    if (body_bytes)
        evbuffer_add(body, body_bytes, body_len);
    else
        evbuffer_add_printf(body, "the value, computed once\n");
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain");
    evhttp_add_header(h, "Cache-Control", "public, max-age=3600");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void answer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    reply(p->req);
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
    if (delay.tv_sec == 0 && delay.tv_usec == 0) {
        reply(req);
        return;
    }
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
        } else if (strcmp(argv[i], "--body-bytes") == 0) {
            long n = atol(argv[i + 1]);
            if (n <= 0 || n > (1L << 20) || !(body_bytes = malloc((size_t)n))) {
                fprintf(stderr, "stampede_origin: --body-bytes: 1 to 1048576\n");
                return 2;
            }
            memset(body_bytes, 'x', (size_t)n);
            body_len = (size_t)n;
        }
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: stampede_origin --port PORT [--delay-ms MS] [--body-bytes N]\n");
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
    free(body_bytes);
    return 0;
}
