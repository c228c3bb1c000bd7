/* addr: IPv4/IPv6 addresses and the address patterns of access rules
 * (exact, trailing wildcard such as 192.168.0.* or ::*, and CIDR). */
#ifndef MAILNODE_ADDR_H
#define MAILNODE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address in 128-bit form; IPv4 is kept as family AF_INET with the four
 * bytes in bytes[12..15] and ::ffff:0:0/96 in front, so IPv4-mapped IPv6
 * peers compare equal to their IPv4 form. */
struct addr {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 bytes[16];
};

/* A pattern: every address whose first `prefix` bits (of the 128-bit form)
 * equal net's. `any` matches every address of either family ("*"). */
struct addr_pattern {
	int	 family;	/* AF_INET, AF_INET6, or AF_UNSPEC with any */
	bool	 any;
	uint8_t	 net[16];
	unsigned prefix;	/* 0..128, counted on the 128-bit form */
};

#define ADDR_STRLEN	64	/* room for any formatted address or pattern */

/* "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "::ffff:192.0.2.1" (kept as IPv4). */
int	 addr_parse(const char *, struct addr *);
int	 addr_from_sockaddr(const struct sockaddr *, socklen_t, struct addr *);
/* Fill a sockaddr_storage for addr:port; returns its length, 0 on error. */
socklen_t addr_to_sockaddr(const struct addr *, uint16_t port, struct sockaddr_storage *);
int	 addr_format(const struct addr *, char *, size_t);

/* "*", exact addresses, "192.168.0.*", "192.*", "10.1.*.*", "::*",
 * "2001:db8:*", CIDR "192.168.0.1/16" (host bits ignored), "2001:db8::/32".
 * On error returns -1 and writes a one-line reason into err. */
int	 addr_pattern_parse(const char *, struct addr_pattern *, char *err, size_t errlen);
bool	 addr_pattern_match(const struct addr_pattern *, const struct addr *);
/* Canonical form: "*", "192.168.0.0/16", "2001:db8::/32", "192.0.2.1". */
int	 addr_pattern_format(const struct addr_pattern *, char *, size_t);

#endif
