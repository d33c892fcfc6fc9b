/* origin_harness.h: the test origin (tests/origin/strata_test_origin.c) as a process the tests
 * start, kill, pause and restart, plus a test CA made at test time for its TLS mode.
 *
 * As harness.c does for redis-server: a free 127.0.0.1 port, a fresh temp dir (its log,
 * origin.log, and the TLS files), PR_SET_PDEATHSIG so the origin dies with the test, and an
 * atexit() handler that kills what is left. A test drives the origin through request headers
 * (the origin's own comment lists them) and reads what it counted with oh_count.
 *
 *     oh_tls tls;
 *     assert_int_equal(oh_make_tls(&tls), 0);     // CA, server cert for localhost/127.0.0.1
 *     oh_origin *o = oh_start(&tls);              // or oh_start(NULL): plain HTTP
 *     ... "https://127.0.0.1:%d", oh_port(o) with ca_file = tls.ca ...
 *     oh_stop(o);
 */
#ifndef STRATA_TESTS_ORIGIN_HARNESS_H
#define STRATA_TESTS_ORIGIN_HARNESS_H

typedef struct oh_origin oh_origin;

/* PEM files made by oh_make_tls in a temp dir of their own: a CA, a server certificate it signed
 * for DNS:localhost and IP:127.0.0.1 (and its key), a client certificate it signed (and its
 * key), and another CA that signed nothing. */
typedef struct oh_tls {
    char *dir, *ca, *cert, *key, *other_ca, *client_cert, *client_key;
} oh_tls;

/* Makes the files with the openssl command line. Returns 0, or -1 with a message. */
int oh_make_tls(oh_tls *t);
/* Removes the files and frees the names. */
void oh_free_tls(oh_tls *t);

/* Starts the origin on a free port (TLS with t's certificate, or plain with NULL) and waits
 * until it accepts connections. NULL with a message on failure. */
oh_origin *oh_start(const oh_tls *t);
int oh_port(const oh_origin *o);
/* SIGKILL, and wait for it to be gone: its connections are reset by the kernel. */
int oh_kill(oh_origin *o);
/* Starts it again on the same port (after oh_kill). */
int oh_restart(oh_origin *o);
/* SIGSTOP / SIGCONT: it stops answering while its sockets stay open. */
int oh_pause(oh_origin *o);
int oh_resume(oh_origin *o);
/* What a plain origin counted: connections and request heads, read with GET /__count on a
 * connection of its own (neither is counted). Returns 0, or -1. */
int oh_count(const oh_origin *o, unsigned long *connections, unsigned long *requests);
/* Kills it and removes its dir; NULL is a no-op. */
void oh_stop(oh_origin *o);

#endif
