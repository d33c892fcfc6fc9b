/* cluster_harness.h: a real Redis Cluster for strata's integration tests: redis-server
 * processes with cluster-enabled on free loopback ports (harness.c starts each), joined by
 * `redis-cli --cluster create` with replicas, ready once every node says cluster_state:ok.
 * Faults are the harness' own: rh_kill / rh_pause a node and the cluster fails over by itself
 * (cluster-node-timeout RC_NODE_TIMEOUT_MS). */
#ifndef STRATA_CLUSTER_HARNESS_H
#define STRATA_CLUSTER_HARNESS_H

#include "harness.h"

#define RC_NODES_MAX       12
#define RC_NODE_TIMEOUT_MS 1000

typedef struct rc_cluster rc_cluster;

/* Starts primaries x (1 + replicas) nodes and joins them; waits until the cluster is ok.
 * extra: more redis-server arguments for every node (NULL: none). Returns NULL on failure
 * (with the reason on stderr). */
rc_cluster *rc_start(int primaries, int replicas, const char *const *extra);
/* rc_start over TLS: every node also listens with TLS (its certificate cert and key, clients
 * verified against ca when they present one), the cluster bus and replication run over TLS
 * (tls-cluster, tls-replication), and the nodes announce their TLS ports to TLS clients. The plain
 * ports stay for the harness' own commands (rh_command). rc_seeds names the TLS ports. */
rc_cluster *rc_start_tls(int primaries, int replicas, const char *cert, const char *key,
                         const char *ca);
/* A node's TLS port (rc_start_tls), else 0. */
int rc_tls_port(const rc_cluster *c, int i);

/* Stops every node and frees c. NULL is a no-op. */
void rc_stop(rc_cluster *c);

int rc_size(const rc_cluster *c);
rh_server *rc_node(rc_cluster *c, int i);
/* "127.0.0.1:P1,127.0.0.1:P2": the first two nodes, as REDIS_CLUSTER takes seeds. */
const char *rc_seeds(const rc_cluster *c);

/* The node serving key's slot now, as the cluster's live nodes say (CLUSTER SLOTS), or NULL. */
rh_server *rc_owner(rc_cluster *c, const char *key);
/* The node serving slot now, or NULL. */
rh_server *rc_slot_owner(rc_cluster *c, unsigned slot);
/* Whether every running node says cluster_state:ok and agrees on who serves slot 0; for
 * rh_wait_for. */
int rc_ok(void *cluster);
/* Whether node runs and says it is a primary (ROLE). */
int rc_is_primary(rh_server *node);
/* A running primary other than not, or NULL. */
rh_server *rc_other_primary(rc_cluster *c, rh_server *not_this);
/* Whether node holds stored (EXISTS); its key count (DBSIZE, -1 on failure). */
int rc_exists(rh_server *node, const char *stored);
long long rc_dbsize(rh_server *node);
/* A running node's CLUSTER MYID, into id (41 bytes). 0 or -1. */
int rc_node_id(rc_cluster *c, rh_server *node, char *id);

/* One command for the whole cluster (what rh_command does with a cluster handle, harness.h):
 * a key's command goes to the node serving the key, following MOVED and ASK; EXISTS, DEL, UNLINK
 * and TOUCH of several keys are split per key (the counts summed); DBSIZE is summed and KEYS
 * merged over the primaries; FLUSHALL and FLUSHDB run on every primary, SCRIPT, ACL, CONFIG and
 * CLIENT on every running node (integer replies summed, else the first error, else the first
 * reply); commands about one server (INFO, SELECT, SCAN, ...) answer an error saying so; others
 * without a key go to the first running primary. NULL if a node could not be reached. */
redisReply *rc_command_argv(rc_cluster *c, int argc, const char **argv, const size_t *len);

#endif
