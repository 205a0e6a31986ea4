/*
 * netpolicy: which IP addresses an outgoing connection may reach.
 *
 * A connection made on a user's behalf (a schedule's webhook) must not reach
 * the farm's own network: loopback, private, link-local, cloud metadata and
 * the other special-purpose ranges below are refused unless an allowed CIDR
 * contains the address. The check is on the resolved socket address the
 * caller is about to connect to (sf/http.h checks the exact sockaddr libcurl
 * connects to), so every spelling of a host name or a number (2130706433,
 * 0x7f000001, 0177.0.0.1, 127.1, [::ffff:127.0.0.1], a DNS name that
 * resolves or rebinds to 127.0.0.1) is judged by the address it becomes.
 *
 * Refused IPv4 ranges: 0.0.0.0/8 (unspecified: "this network"), 127.0.0.0/8
 * (loopback), 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (private),
 * 100.64.0.0/10 (shared, CGNAT), 169.254.0.0/16 (link-local; 169.254.169.254
 * is "cloud metadata"), 168.63.129.16 (cloud metadata), 192.0.0.0/24,
 * 192.0.2.0/24, 192.88.99.0/24, 198.18.0.0/15, 198.51.100.0/24,
 * 203.0.113.0/24, 240.0.0.0/4 (reserved), 224.0.0.0/4 (multicast) and
 * 255.255.255.255 (broadcast). IPv6: :: (unspecified), ::1 (loopback),
 * fc00::/7 and fec0::/10 (private), fe80::/10 (link-local), ff00::/8
 * (multicast), and everything outside global unicast 2000::/3 or in its
 * special blocks 2001::/23 and 2001:db8::/32 (reserved). An IPv6 address
 * that carries an IPv4 one (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
 * ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by that IPv4
 * address. Anything but AF_INET and AF_INET6 is refused.
 *
 * Allowed CIDRs: a comma-separated list, "10.1.0.0/16, 127.0.0.1/32, ::1";
 * a bare address is /32 or /128; host bits below the prefix are ignored.
 * An address is allowed when a CIDR of its family contains it; an
 * IPv4-mapped IPv6 address (the same IPv4 socket peer) also when an IPv4
 * CIDR contains its IPv4 address.
 *
 * Thread safety: pure functions; an sf_netpolicy is read-only after
 * sf_netpolicy_parse. Ownership: sf_netpolicy is caller storage (no heap).
 */
#ifndef SF_NETPOLICY_H
#define SF_NETPOLICY_H

#include <stddef.h>
#include <sys/socket.h>

#include "sf/err.h"

#define SF_NETPOLICY_MAX_CIDRS 64

typedef struct sf_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; 4 bytes used for AF_INET */
    int prefix;             /* 0..32 or 0..128 */
} sf_cidr;

typedef struct sf_netpolicy {
    int n; /* allowed CIDRs; 0 = only public addresses */
    sf_cidr allow[SF_NETPOLICY_MAX_CIDRS];
} sf_netpolicy;

/*
 * Parse the allowed CIDRs of list (NULL or "" = none) into out.
 * SF_ERR_INVALID naming the bad item ("could not parse the allowed CIDR
 * \"x\": ..."), SF_ERR_LIMIT above SF_NETPOLICY_MAX_CIDRS items.
 */
sf_status sf_netpolicy_parse(const char *list, sf_netpolicy *out, sf_err *err);

/*
 * Why sa is not a public address: "loopback", "private", "link-local",
 * "cloud metadata", "unspecified", "shared (CGNAT)", "multicast",
 * "broadcast", "reserved", "not an IP address"; NULL when it is public.
 * len is the size of *sa.
 */
const char *sf_net_class(const struct sockaddr *sa, size_t len);

/*
 * SF_OK when a connection to sa may be made: a public address, or one an
 * allowed CIDR of p (NULL = none) contains. Otherwise SF_ERR_INVALID with
 * "address 127.0.0.1 is not public (loopback) and not in the allowed CIDRs".
 */
sf_status sf_netpolicy_check(const sf_netpolicy *p, const struct sockaddr *sa, size_t len, sf_err *err);

#endif
