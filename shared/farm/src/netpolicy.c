/* netpolicy: the address classifier and the allowed CIDRs; see sf/netpolicy.h. */
#include "sf/netpolicy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 64 /* bytes of one CIDR item: an IPv6 address, "/128" */

typedef struct range {
    unsigned char net[16];
    int prefix;
    const char *cls;
} range;

/* Most specific first: the first range containing the address names it. */
static const range V4[] = {
    {{169, 254, 169, 254}, 32, "cloud metadata"},
    {{168, 63, 129, 16}, 32, "cloud metadata"},
    {{255, 255, 255, 255}, 32, "broadcast"},
    {{0}, 8, "unspecified"},
    {{127}, 8, "loopback"},
    {{10}, 8, "private"},
    {{172, 16}, 12, "private"},
    {{192, 168}, 16, "private"},
    {{100, 64}, 10, "shared (CGNAT)"},
    {{169, 254}, 16, "link-local"},
    {{192, 0, 0}, 24, "reserved"},
    {{192, 0, 2}, 24, "reserved"},
    {{192, 88, 99}, 24, "reserved"},
    {{198, 18}, 15, "reserved"},
    {{198, 51, 100}, 24, "reserved"},
    {{203, 0, 113}, 24, "reserved"},
    {{224}, 4, "multicast"},
    {{240}, 4, "reserved"},
};

/* After the forms that carry an IPv4 address (see v6_class). */
static const range V6[] = {
    {{0xfc}, 7, "private"},
    {{0xfe, 0xc0}, 10, "private"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xff}, 8, "multicast"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "reserved"},
    {{0x20, 0x01}, 23, "reserved"},
};

static const unsigned char NAT64[12] = {0x00, 0x64, 0xff, 0x9b};

/* The first prefix bits of a and net are equal. */
static int in_prefix(const unsigned char *a, const unsigned char *net, int prefix)
{
    int whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)whole) != 0)
        return 0;
    unsigned mask = (0xffu << (8 - rest)) & 0xffu;
    return rest == 0 || (a[whole] & mask) == (net[whole] & mask);
}

static const char *v4_class(const unsigned char a[4])
{
    for (size_t i = 0; i < sizeof V4 / sizeof V4[0]; i++)
        if (in_prefix(a, V4[i].net, V4[i].prefix))
            return V4[i].cls;
    return NULL;
}

static int is_zero(const unsigned char *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != 0)
            return 0;
    return 1;
}

/* The IPv4 address an IPv6 one is mapped from (::ffff:a.b.c.d), or NULL. */
static const unsigned char *v4_mapped(const unsigned char a[16])
{
    return is_zero(a, 10) && a[10] == 0xff && a[11] == 0xff ? a + 12 : NULL;
}

static const char *v6_class(const unsigned char a[16])
{
    const unsigned char *v4 = v4_mapped(a);
    if (v4 != NULL)
        return v4_class(v4);
    if (is_zero(a, 12)) { /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d */
        if (is_zero(a + 12, 3) && a[15] <= 1)
            return a[15] == 0 ? "unspecified" : "loopback";
        const char *c = v4_class(a + 12);
        return c ? c : "reserved";
    }
    if (memcmp(a, NAT64, sizeof NAT64) == 0)
        return v4_class(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:aabb:ccdd::/48 */
        return v4_class(a + 2);
    for (size_t i = 0; i < sizeof V6 / sizeof V6[0]; i++)
        if (in_prefix(a, V6[i].net, V6[i].prefix))
            return V6[i].cls;
    return (a[0] & 0xe0) == 0x20 ? NULL : "reserved"; /* global unicast is 2000::/3 */
}

const char *sf_net_class(const struct sockaddr *sa, size_t len)
{
    if (sa != NULL && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
        return v4_class((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa != NULL && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return v6_class(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return "not an IP address";
}

/* ---- allowed CIDRs ------------------------------------------------------- */

/* One "address[/prefix]" item (already trimmed) into c. */
static sf_status parse_item(const char *item, sf_cidr *c, sf_err *err)
{
    char addr[ITEM_MAX];
    const char *slash = strchr(item, '/');
    size_t alen = slash ? (size_t)(slash - item) : strlen(item);
    if (alen == 0 || alen >= sizeof addr)
        return sf_err_set(err, SF_ERR_INVALID, "could not parse the allowed CIDR \"%s\": no address", item);
    memcpy(addr, item, alen);
    addr[alen] = '\0';
    memset(c, 0, sizeof *c);
    c->family = inet_pton(AF_INET, addr, c->addr) == 1    ? AF_INET
                : inet_pton(AF_INET6, addr, c->addr) == 1 ? AF_INET6
                                                          : 0;
    if (c->family == 0)
        return sf_err_set(err, SF_ERR_INVALID,
                          "could not parse the allowed CIDR \"%s\": \"%s\" is not an IPv4 or IPv6 address", item, addr);
    int max = c->family == AF_INET ? 32 : 128;
    c->prefix = max;
    if (slash == NULL)
        return SF_OK;
    const char *p = slash + 1;
    char *end = NULL;
    long v = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
    if (v < 0 || v > max || end == NULL || *end != '\0' || end - p > 3)
        return sf_err_set(err, SF_ERR_INVALID, "could not parse the allowed CIDR \"%s\": the prefix must be 0 to %d",
                          item, max);
    c->prefix = (int)v;
    return SF_OK;
}

/* The next comma-separated item of *s, trimmed, into item; 0 at the end. */
static int next_item(const char **s, char *item, size_t size, int *too_long)
{
    const char *p = *s;
    if (*p == '\0')
        return 0;
    const char *comma = strchr(p, ',');
    const char *end = comma ? comma : p + strlen(p);
    *s = comma ? comma + 1 : end;
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    *too_long = (size_t)(end - p) >= size;
    size_t n = *too_long ? size - 1 : (size_t)(end - p);
    memcpy(item, p, n);
    item[n] = '\0';
    return 1;
}

sf_status sf_netpolicy_parse(const char *list, sf_netpolicy *out, sf_err *err)
{
    memset(out, 0, sizeof *out);
    const char *s = list ? list : "";
    while (isspace((unsigned char)*s))
        s++;
    char item[ITEM_MAX];
    int too_long = 0;
    while (next_item(&s, item, sizeof item, &too_long)) {
        if (too_long)
            return sf_err_set(err, SF_ERR_INVALID, "could not parse the allowed CIDR \"%s...\": too long", item);
        if (item[0] == '\0')
            return sf_err_set(err, SF_ERR_INVALID, "could not parse the allowed CIDRs: an empty item");
        if (out->n >= SF_NETPOLICY_MAX_CIDRS)
            return sf_err_set(err, SF_ERR_LIMIT, "could not parse the allowed CIDRs: more than %d",
                              SF_NETPOLICY_MAX_CIDRS);
        sf_status st = parse_item(item, &out->allow[out->n], err);
        if (st != SF_OK)
            return st;
        out->n++;
    }
    return SF_OK;
}

static int allowed(const sf_netpolicy *p, int family, const unsigned char *a)
{
    for (int i = 0; p != NULL && i < p->n; i++)
        if (p->allow[i].family == family && in_prefix(a, p->allow[i].addr, p->allow[i].prefix))
            return 1;
    return 0;
}

sf_status sf_netpolicy_check(const sf_netpolicy *p, const struct sockaddr *sa, size_t len, sf_err *err)
{
    const char *cls = sf_net_class(sa, len);
    if (cls == NULL)
        return SF_OK;
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct in_addr *a = &((const struct sockaddr_in *)sa)->sin_addr;
        if (allowed(p, AF_INET, (const unsigned char *)a))
            return SF_OK;
        inet_ntop(AF_INET, a, text, sizeof text);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        const unsigned char *v4 = v4_mapped(a);
        if (allowed(p, AF_INET6, a) || (v4 && allowed(p, AF_INET, v4)))
            return SF_OK;
        inet_ntop(AF_INET6, a, text, sizeof text);
    }
    return sf_err_set(err, SF_ERR_INVALID, "address %s is not public (%s) and not in the allowed CIDRs", text, cls);
}
