/* netpolicy: the classification of every special-purpose range (and its
 * edges), every numeric spelling of 127.0.0.1 as the resolver turns it into
 * a socket address, the IPv6 forms that carry an IPv4 address, the allowed
 * CIDRs and their parsing errors. Addresses go through getaddrinfo
 * (AI_NUMERICHOST), as a connection's do. */
#include <criterion/criterion.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "sf/netpolicy.h"

/* The socket address the resolver makes of a numeric host. */
static void resolve(const char *host, struct sockaddr_storage *ss, size_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, "80", &hints, &ai);
    cr_assert_eq(rc, 0, "getaddrinfo(%s): %s", host, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

/* The class of host, "public" for NULL. */
static const char *cls(const char *host)
{
    struct sockaddr_storage ss;
    size_t len = 0;
    resolve(host, &ss, &len);
    const char *c = sf_net_class((const struct sockaddr *)&ss, len);
    return c ? c : "public";
}

static void expect(const char *host, const char *want)
{
    const char *got = cls(host);
    cr_expect_str_eq(got, want, "%s: got %s, want %s", host, got, want);
}

/* sf_netpolicy_check of host under the allowed list; its status. */
static sf_status check(const char *list, const char *host, sf_err *err)
{
    sf_netpolicy p;
    cr_assert_eq(sf_netpolicy_parse(list, &p, err), SF_OK, "%s", err->msg);
    struct sockaddr_storage ss;
    size_t len = 0;
    resolve(host, &ss, &len);
    return sf_netpolicy_check(&p, (const struct sockaddr *)&ss, len, err);
}

static void allowed(const char *list, const char *host)
{
    sf_err err = {0};
    cr_expect_eq(check(list, host, &err), SF_OK, "allow \"%s\": %s refused: %s", list, host, err.msg);
}

static void refused(const char *list, const char *host)
{
    sf_err err = {0};
    cr_expect_eq(check(list, host, &err), SF_ERR_INVALID, "allow \"%s\": %s let through", list, host);
}

Test(netpolicy, every_numeric_spelling_of_127_0_0_1_is_loopback)
{
    const char *spellings[] = {"127.0.0.1",
                               "2130706433",
                               "0x7f000001",
                               "0x7F.0.0.1",
                               "0177.0.0.1",
                               "0177.0000.0000.0001",
                               "127.1",
                               "127.0.1",
                               "::ffff:127.0.0.1",
                               "::ffff:7f00:1",
                               "0:0:0:0:0:ffff:127.0.0.1",
                               "::127.0.0.1",
                               "::1",
                               "0:0:0:0:0:0:0:1",
                               "64:ff9b::127.0.0.1",
                               "2002:7f00:1::1",
                               "127.255.255.254"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++)
        expect(spellings[i], "loopback");
}

Test(netpolicy, every_special_purpose_ipv4_range_and_its_edges)
{
    expect("0.0.0.0", "unspecified");
    expect("0", "unspecified");
    expect("0.255.255.255", "unspecified");
    expect("1.0.0.0", "public");
    expect("126.255.255.255", "public");
    expect("128.0.0.0", "public");
    expect("10.0.0.0", "private");
    expect("10.255.255.255", "private");
    expect("167772161", "private"); /* 10.0.0.1 */
    expect("11.0.0.0", "public");
    expect("9.255.255.255", "public");
    expect("172.15.255.255", "public");
    expect("172.16.0.0", "private");
    expect("172.31.255.255", "private");
    expect("172.32.0.0", "public");
    expect("192.167.255.255", "public");
    expect("192.168.0.1", "private");
    expect("0xc0a80101", "private");
    expect("192.169.0.0", "public");
    expect("100.63.255.255", "public");
    expect("100.64.0.0", "shared (CGNAT)");
    expect("100.100.100.200", "shared (CGNAT)"); /* a cloud's metadata service */
    expect("100.127.255.255", "shared (CGNAT)");
    expect("100.128.0.0", "public");
    expect("169.253.255.255", "public");
    expect("169.254.0.1", "link-local");
    expect("169.254.169.254", "cloud metadata");
    expect("2852039166", "cloud metadata"); /* 169.254.169.254 in decimal */
    expect("0xa9.0xfe.0xa9.0xfe", "cloud metadata");
    expect("0251.0376.0251.0376", "cloud metadata");
    expect("169.254.43518", "cloud metadata");
    expect("169.254.255.255", "link-local");
    expect("169.255.0.0", "public");
    expect("168.63.129.16", "cloud metadata");
    expect("168.63.129.17", "public");
    expect("192.0.0.8", "reserved");
    expect("192.0.2.1", "reserved");
    expect("192.88.99.1", "reserved");
    expect("198.18.0.1", "reserved");
    expect("198.19.255.255", "reserved");
    expect("198.20.0.0", "public");
    expect("198.51.100.7", "reserved");
    expect("203.0.113.9", "reserved");
    expect("223.255.255.255", "public");
    expect("224.0.0.1", "multicast");
    expect("239.255.255.250", "multicast");
    expect("240.0.0.1", "reserved");
    expect("255.255.255.254", "reserved");
    expect("255.255.255.255", "broadcast");
    expect("4294967295", "broadcast");
    expect("8.8.8.8", "public");
    expect("93.184.216.34", "public");
}

Test(netpolicy, ipv6_ranges_and_the_forms_that_carry_an_ipv4_address)
{
    expect("::", "unspecified");
    expect("::1", "loopback");
    expect("::2", "unspecified");    /* IPv4-compatible 0.0.0.2 */
    expect("::8.8.8.8", "reserved"); /* IPv4-compatible, deprecated */
    expect("::10.0.0.1", "private");
    expect("::ffff:0.0.0.0", "unspecified");
    expect("::ffff:10.1.2.3", "private");
    expect("::ffff:169.254.169.254", "cloud metadata");
    expect("::ffff:a9fe:a9fe", "cloud metadata");
    expect("::ffff:100.64.0.1", "shared (CGNAT)");
    expect("::ffff:224.0.0.1", "multicast");
    expect("::ffff:8.8.8.8", "public");
    expect("64:ff9b::10.0.0.1", "private");
    expect("64:ff9b::8.8.8.8", "public");
    expect("2002:c0a8:0101::1", "private"); /* 6to4 of 192.168.1.1 */
    expect("2002:0808:0808::1", "public");
    expect("fc00::1", "private");
    expect("fd00:ec2::254", "private"); /* a cloud's IPv6 metadata service */
    expect("fdff:ffff::1", "private");
    expect("fec0::1", "private");
    expect("fe80::1", "link-local");
    expect("fe80::1%1", "link-local");
    expect("febf:ffff::1", "link-local");
    expect("ff02::1", "multicast");
    expect("ff0e::1", "multicast");
    expect("2001:db8::1", "reserved");
    expect("2001::1", "reserved"); /* Teredo */
    expect("2001:1ff::1", "reserved");
    expect("2001:200::1", "public");
    expect("100::1", "reserved");       /* discard */
    expect("1fff:ffff::1", "reserved"); /* outside 2000::/3 */
    expect("4000::1", "reserved");
    expect("2606:4700:4700::1111", "public");
    expect("2a00:1450:4001::200e", "public");
    expect("3fff:ffff::1", "public");
}

Test(netpolicy, only_ip_socket_addresses_are_classified)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    cr_assert_str_eq(sf_net_class((const struct sockaddr *)&un, sizeof un), "not an IP address");
    struct sockaddr_in in = {.sin_family = AF_INET};
    cr_assert_str_eq(sf_net_class((const struct sockaddr *)&in, sizeof in - 1), "not an IP address");
    cr_assert_str_eq(sf_net_class(NULL, 0), "not an IP address");
    sf_netpolicy p;
    cr_assert_eq(sf_netpolicy_parse("0.0.0.0/0, ::/0", &p, NULL), SF_OK);
    cr_assert_eq(sf_netpolicy_check(&p, (const struct sockaddr *)&un, sizeof un, NULL), SF_ERR_INVALID);
}

Test(netpolicy, nothing_but_public_addresses_without_allowed_cidrs)
{
    const char *blocked[] = {"127.0.0.1",        "2130706433", "0x7f000001",      "0177.0.0.1", "127.1",
                             "::ffff:127.0.0.1", "::1",        "169.254.169.254", "10.0.0.1",   "172.16.5.4",
                             "192.168.1.1",      "100.64.0.1", "0.0.0.0",         "::",         "fe80::1",
                             "fc00::1",          "224.0.0.1",  "255.255.255.255"};
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++) {
        refused("", blocked[i]);
        refused(NULL, blocked[i]);
    }
    allowed("", "8.8.8.8");
    allowed("", "2606:4700:4700::1111");
    sf_err err = {0};
    cr_assert_eq(check("", "2130706433", &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "address 127.0.0.1 is not public (loopback) and not in the allowed CIDRs");
    cr_assert_eq(check("", "::ffff:169.254.169.254", &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg,
                     "address ::ffff:169.254.169.254 is not public (cloud metadata) and not in the allowed CIDRs");
    sf_netpolicy none = {0};
    struct sockaddr_storage ss;
    size_t len = 0;
    resolve("::1", &ss, &len);
    cr_assert_eq(sf_netpolicy_check(NULL, (const struct sockaddr *)&ss, len, NULL), SF_ERR_INVALID);
    cr_assert_eq(sf_netpolicy_check(&none, (const struct sockaddr *)&ss, len, NULL), SF_ERR_INVALID);
}

Test(netpolicy, an_allowed_cidr_lets_exactly_its_addresses_through)
{
    const char *one[] = {"127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        allowed("127.0.0.1/32", one[i]);
    refused("127.0.0.1/32", "127.0.0.2");
    refused("127.0.0.1/32", "::1");         /* another family, another address */
    refused("127.0.0.1/32", "::127.0.0.1"); /* IPv4-compatible is not the IPv4 peer */
    refused("127.0.0.1/32", "64:ff9b::127.0.0.1");
    refused("127.0.0.1/32", "169.254.169.254");
    allowed("127.0.0.1", "127.0.0.1"); /* a bare address is /32 */
    refused("127.0.0.1", "127.0.0.2");
    allowed("::1", "::1");
    refused("::1", "127.0.0.1");
    allowed("10.1.2.3/8", "10.200.0.1"); /* host bits are ignored */
    refused("10.1.2.3/8", "192.168.0.1");
    allowed(" 10.0.0.0/8 ,192.168.0.0/16,\t::1/128 ", "192.168.7.7");
    allowed(" 10.0.0.0/8 ,192.168.0.0/16,\t::1/128 ", "::1");
    refused(" 10.0.0.0/8 ,192.168.0.0/16,\t::1/128 ", "172.16.0.1");
    allowed("172.16.0.0/12", "172.31.255.255");
    allowed("172.16.0.0/12", "172.32.0.0"); /* public: allowed without a CIDR */
    allowed("fd00::/8", "fd00:ec2::254");
    refused("fd00::/8", "fc00::1");
    allowed("fe80::/10", "fe80::1%1");
    allowed("::ffff:127.0.0.1/128", "::ffff:127.0.0.1");
    refused("::ffff:127.0.0.1/128", "127.0.0.1"); /* an IPv6 CIDR matches IPv6 addresses */
    allowed("0.0.0.0/0", "169.254.169.254");
    refused("0.0.0.0/0", "::1");
    allowed("::/0", "::1");
    allowed("169.254.169.254/32", "169.254.169.254");
    refused("169.254.169.254/32", "169.254.169.253");
    allowed("100.64.0.0/10,", "100.127.0.1"); /* a trailing comma ends the list */
}

Test(netpolicy, a_bad_allowed_cidr_is_named_in_the_error)
{
    struct {
        const char *list, *msg;
    } bad[] = {
        {"127.0.0.1/33", "could not parse the allowed CIDR \"127.0.0.1/33\": the prefix must be 0 to 32"},
        {"::1/129", "could not parse the allowed CIDR \"::1/129\": the prefix must be 0 to 128"},
        {"10.0.0.0/", "could not parse the allowed CIDR \"10.0.0.0/\": the prefix must be 0 to 32"},
        {"10.0.0.0/-1", "could not parse the allowed CIDR \"10.0.0.0/-1\": the prefix must be 0 to 32"},
        {"10.0.0.0/8x", "could not parse the allowed CIDR \"10.0.0.0/8x\": the prefix must be 0 to 32"},
        {"10.0.0.0/ 8", "could not parse the allowed CIDR \"10.0.0.0/ 8\": the prefix must be 0 to 32"},
        {"2130706433/32", "could not parse the allowed CIDR \"2130706433/32\": \"2130706433\" is not an IPv4 or "
                          "IPv6 address"},
        {"127.1", "could not parse the allowed CIDR \"127.1\": \"127.1\" is not an IPv4 or IPv6 address"},
        {"localhost", "could not parse the allowed CIDR \"localhost\": \"localhost\" is not an IPv4 or IPv6 "
                      "address"},
        {"/8", "could not parse the allowed CIDR \"/8\": no address"},
        {"10.0.0.0/8,,::1", "could not parse the allowed CIDRs: an empty item"},
        {"10.0.0.0/8; ::1", "could not parse the allowed CIDR \"10.0.0.0/8; ::1\": the prefix must be 0 to 32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sf_netpolicy p;
        sf_err err = {0};
        cr_expect_eq(sf_netpolicy_parse(bad[i].list, &p, &err), SF_ERR_INVALID, "%s", bad[i].list);
        cr_expect_str_eq(err.msg, bad[i].msg);
    }
    char many[4096] = "";
    size_t at = 0;
    for (int i = 0; i <= SF_NETPOLICY_MAX_CIDRS; i++)
        at += (size_t)snprintf(many + at, sizeof many - at, "10.0.%d.0/24,", i);
    sf_netpolicy p;
    sf_err err = {0};
    cr_assert_eq(sf_netpolicy_parse(many, &p, &err), SF_ERR_LIMIT, "%s", err.msg);
    many[at - 1 - strlen("10.0.64.0/24")] = '\0'; /* exactly the maximum */
    cr_assert_eq(sf_netpolicy_parse(many, &p, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(p.n, SF_NETPOLICY_MAX_CIDRS);
    cr_assert_eq(sf_netpolicy_parse("  ", &p, &err), SF_OK);
    cr_assert_eq(p.n, 0);
}
