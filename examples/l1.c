/* examples/l1.c: the README's library example: cache a value in L1, read it back, invalidate it
 * by tag. Built and run by `make test` so the README cannot drift from the API. */
#include <stdio.h>
#include <string.h>

#include <strata/strata.h>

int main(void)
{
    strata_l1_config cfg;
    strata_l1_config_init(&cfg);
    strata_l1 *l1;
    int rc = strata_l1_new(&cfg, &l1);
    if (rc != 0) {
        fprintf(stderr, "strata_l1_new: %s\n", strata_strerror(rc));
        return 1;
    }

    strata_key k = {.ns = "llm", .tenant = "acme", .key = "prompt:42", .len = 9};
    const char *tags[] = {"model:gpt"};
    strata_set_opts opts = {
        .ttl_ms = 60000, .content_type = "text/plain", .tags = tags, .ntags = 1};
    rc = strata_l1_set(l1, &k, "42 is the answer", 16, &opts, strata_now_ms());
    if (rc != 0) {
        fprintf(stderr, "strata_l1_set: %s\n", strata_strerror(rc));
        return 1;
    }

    strata_value *v;
    if (strata_l1_get(l1, &k, strata_now_ms(), &v) != 0 || strata_value_len(v) != 16) {
        fprintf(stderr, "expected a hit\n");
        return 1;
    }
    printf("hit: %.*s (%s)\n", (int)strata_value_len(v), (const char *)strata_value_data(v),
           strata_value_content_type(v));
    strata_value_release(v);

    strata_l1_tag_invalidate(l1, "acme", "model:gpt");
    rc = strata_l1_get(l1, &k, strata_now_ms(), &v);
    printf("after invalidating the tag: %s\n", strata_err_name(rc));

    strata_l1_free(l1);
    return rc == STRATA_ENOTFOUND ? 0 : 1;
}
