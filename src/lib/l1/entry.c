/* entry.c: building L1 entries and the strata_value accessors readers use.
 *
 * See entry.h for the layout. Reference counting: the cache holds one reference while the entry
 * is linked; each reader holds one from get until strata_value_release(). The last release
 * frees, so an entry evicted while a reader is sending it stays valid for that reader.
 */
#include <malloc.h>
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "l1/entry.h"

struct strata_value *strata__entry_new(const entry_spec *spec, const void *value, size_t len)
{
    size_t ctype_len = strlen(spec->content_type);
    size_t names = 0;
    for (size_t i = 0; i < spec->ntags; i++)
        names += strlen(spec->tags[i]) + 1;

    size_t off = spec->key_len;
    size_t ctype_off = off;
    off += ctype_len + 1;
    off = (off + alignof(entry_tag) - 1) & ~(alignof(entry_tag) - 1);
    size_t tags_off = off;
    off += spec->ntags * sizeof(entry_tag);
    size_t names_off = off;
    off += names;
    size_t value_off = off;
    off += len;
    if (off > UINT32_MAX || spec->key_len > UINT16_MAX || ctype_off > UINT16_MAX)
        return NULL;

    struct strata_value *e = malloc(sizeof *e + off);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->heap_idx = -1;
    atomic_init(&e->refs, 1);
    e->hash = spec->hash;
    atomic_init(&e->created_ms, spec->created_ms);
    atomic_init(&e->expires_ms, spec->expires_ms);
    e->grace_ms = (uint32_t)(spec->grace_ms < UINT32_MAX ? spec->grace_ms : UINT32_MAX);
    e->sie_ms = (uint32_t)(spec->sie_ms < UINT32_MAX ? spec->sie_ms : UINT32_MAX);
    e->compute_ms = (uint32_t)(spec->compute_ms < UINT32_MAX ? spec->compute_ms : UINT32_MAX);
    e->beta_centi = (uint16_t)(spec->beta_centi < UINT16_MAX ? spec->beta_centi : UINT16_MAX);
    e->key_len = (uint16_t)spec->key_len;
    e->tenant_off = (uint16_t)spec->tenant_off;
    e->tenant_len = (uint16_t)spec->tenant_len;
    e->user_off = (uint16_t)spec->user_off;
    e->ctype_off = (uint16_t)ctype_off;
    e->tags_off = (uint32_t)tags_off;
    e->value_off = (uint32_t)value_off;
    e->value_len = (uint32_t)len;
    e->flags = (uint16_t)(spec->flags & 0xffffu);
    e->ntags = (uint8_t)spec->ntags;

    memcpy(e->data, spec->key, spec->key_len);
    memcpy(e->data + ctype_off, spec->content_type, ctype_len + 1);
    entry_tag *tags = (entry_tag *)(void *)(e->data + tags_off);
    size_t name_at = names_off;
    for (size_t i = 0; i < spec->ntags; i++) {
        size_t n = strlen(spec->tags[i]) + 1;
        tags[i].hash = spec->tag_hashes[i];
        tags[i].version = spec->tag_versions[i];
        tags[i].name_off = (uint32_t)name_at;
        memcpy(e->data + name_at, spec->tags[i], n);
        name_at += n;
    }
    if (len > 0)
        memcpy(e->data + value_off, value, len);
    /* The real cost of this block to the process: what glibc gave plus its chunk header. */
    e->charge = (uint32_t)(malloc_usable_size(e) + sizeof(size_t));
    return e;
}

const void *strata_value_data(const strata_value *v)
{
    return v->data + v->value_off;
}

size_t strata_value_len(const strata_value *v)
{
    return v->value_len;
}

const char *strata_value_content_type(const strata_value *v)
{
    return v->data + v->ctype_off;
}

uint64_t strata_value_created_ms(const strata_value *v)
{
    return atomic_load_explicit(&v->created_ms, memory_order_relaxed);
}

uint64_t strata_value_expires_ms(const strata_value *v)
{
    return entry_expires(v);
}

uint64_t strata_value_grace_ms(const strata_value *v)
{
    return v->grace_ms;
}

uint64_t strata_value_stale_if_error_ms(const strata_value *v)
{
    return v->sie_ms;
}

uint64_t strata_value_compute_ms(const strata_value *v)
{
    return v->compute_ms;
}

double strata_value_beta(const strata_value *v)
{
    return v->beta_centi / 100.0;
}

int strata_value_freshness(const strata_value *v, uint64_t now_ms, double u)
{
    uint64_t x = entry_expires(v);
    if (x == 0)
        return STRATA_FRESH;
    if (now_ms < x) {
        /* XFetch: -ln(u) is an exponential draw, so the chance of refreshing grows as the
         * expiry nears, scaled by how long a refresh takes: one caller, early enough. */
        if (v->compute_ms == 0 || v->beta_centi == 0 || !(u > 0 && u < 1))
            return STRATA_FRESH;
        double ahead = (double)v->compute_ms * (v->beta_centi / 100.0) * -log(u);
        return (double)(x - now_ms) <= ahead ? STRATA_FRESH_EARLY : STRATA_FRESH;
    }
    if (now_ms - x < v->grace_ms)
        return STRATA_STALE;
    if (now_ms - x < v->sie_ms)
        return STRATA_STALE_IF_ERROR;
    return STRATA_EXPIRED;
}

uint64_t strata_value_ttl_left_ms(const strata_value *v, uint64_t now_ms)
{
    uint64_t x = entry_expires(v);
    if (x == 0)
        return UINT64_MAX;
    return now_ms < x ? x - now_ms : 0;
}

unsigned strata_value_flags(const strata_value *v)
{
    return v->flags;
}

size_t strata_value_tag_count(const strata_value *v)
{
    return v->ntags;
}

const char *strata_value_tag(const strata_value *v, size_t i)
{
    if (i >= v->ntags)
        return NULL;
    return v->data + entry_tags(v)[i].name_off;
}

strata_value *strata_value_retain(strata_value *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void strata_value_release(strata_value *v)
{
    if (v == NULL)
        return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        free(v);
}
