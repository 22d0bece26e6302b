//! The PEER argument: `host` or `host:port`, where host is an IPv4 address, an IPv6
//! address (bracketed when a port follows) or a hostname; and its resolution to the one
//! socket address the session talks to.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use thiserror::Error;

/// The port the original program used on both sides, and the default here.
pub(crate) const DEFAULT_PORT: u16 = 12000;

/// The host part of PEER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    /// A literal IPv4 or IPv6 address: no resolution needed.
    Ip(IpAddr),
    /// A name to resolve with the system resolver.
    Name(String),
}

/// A parsed, not yet resolved, PEER argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerSpec {
    /// Where the peer is.
    pub(crate) host: Host,
    /// Its UDP port.
    pub(crate) port: u16,
}

/// Why PEER could not be turned into an address. Every variant is a usage error: the
/// caller reports it in one line and exits with status 2.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub(crate) enum PeerAddrError {
    /// Nothing was given.
    #[error("no peer address given (expected HOST or HOST:PORT, e.g. 127.0.0.1:12000)")]
    Empty,
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {port:?} in peer address {input:?}: expected a number from 1 to 65535")]
    BadPort {
        /// The whole argument.
        input: String,
        /// The port part.
        port: String,
    },
    /// The argument has a shape no address has (e.g. unbalanced brackets).
    #[error("invalid peer address {input:?}: {why}")]
    Malformed {
        /// The whole argument.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The resolver failed or found nothing.
    #[error("cannot resolve peer host {host:?}: {cause}")]
    Unresolvable {
        /// The hostname.
        host: String,
        /// The resolver's explanation.
        cause: String,
    },
    /// The peer's address family differs from the one `--bind` asks for.
    #[error("the peer {peer} is {peer_family} but --bind {bind} is {bind_family}")]
    FamilyMismatch {
        /// The resolved peer.
        peer: SocketAddr,
        /// Its family, "IPv4" or "IPv6".
        peer_family: &'static str,
        /// The local address asked for.
        bind: IpAddr,
        /// Its family.
        bind_family: &'static str,
    },
}

impl FromStr for PeerSpec {
    type Err = PeerAddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PeerAddrError::Empty);
        }
        let malformed = |why| PeerAddrError::Malformed {
            input: input.to_string(),
            why,
        };
        if let Some(rest) = s.strip_prefix('[') {
            // [v6] or [v6]:port
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| malformed("'[' without a matching ']'"))?;
            let ip: std::net::Ipv6Addr = inside
                .parse()
                .map_err(|_| malformed("brackets must hold an IPv6 address"))?;
            let port = match after {
                "" => DEFAULT_PORT,
                _ => match after.strip_prefix(':') {
                    Some(port) => parse_port(input, port)?,
                    None => return Err(malformed("expected ':PORT' after ']'")),
                },
            };
            return Ok(Self {
                host: Host::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            // A bare IPv4 address, or a bare IPv6 address such as ::1 (whose colons
            // cannot also carry a port).
            return Ok(Self {
                host: Host::Ip(ip),
                port: DEFAULT_PORT,
            });
        }
        let (host, port) = match s.split_once(':') {
            None => (s, DEFAULT_PORT),
            Some((host, port)) => {
                if port.contains(':') {
                    return Err(malformed(
                        "not an IPv6 address; write an IPv6 address with a port as [ADDR]:PORT",
                    ));
                }
                (host, parse_port(input, port)?)
            }
        };
        if host.is_empty() {
            return Err(malformed("the host is empty"));
        }
        if host.contains(char::is_whitespace) || host.contains(['[', ']', '/']) {
            return Err(malformed("not an IP address or a hostname"));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_string()),
        };
        Ok(Self { host, port })
    }
}

fn parse_port(input: &str, port: &str) -> Result<u16, PeerAddrError> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(PeerAddrError::BadPort {
            input: input.to_string(),
            port: port.to_string(),
        }),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl PeerSpec {
    /// Resolves to one socket address. A literal address is used as is. A hostname
    /// takes its first address of `bind`'s family when `--bind` is given, otherwise its
    /// first IPv4 address (what most peers listen on), otherwise its first address.
    pub(crate) fn resolve(&self, bind: Option<IpAddr>) -> Result<SocketAddr, PeerAddrError> {
        let addr = match &self.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.port),
            Host::Name(name) => {
                let unresolvable = |cause: String| PeerAddrError::Unresolvable {
                    host: name.clone(),
                    cause,
                };
                let all: Vec<SocketAddr> = (name.as_str(), self.port)
                    .to_socket_addrs()
                    .map_err(|e| unresolvable(e.to_string()))?
                    .collect();
                let pick = match bind {
                    Some(b) => all.iter().find(|a| a.is_ipv4() == b.is_ipv4()),
                    None => all.iter().find(|a| a.is_ipv4()),
                };
                *pick
                    .or_else(|| all.first())
                    .ok_or_else(|| unresolvable("no addresses found".to_string()))?
            }
        };
        if let Some(b) = bind {
            if b.is_ipv4() != addr.is_ipv4() {
                return Err(PeerAddrError::FamilyMismatch {
                    peer: addr,
                    peer_family: family(addr.ip()),
                    bind: b,
                    bind_family: family(b),
                });
            }
        }
        Ok(addr)
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PeerSpec {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn bare_ipv4_uses_the_default_port() {
        assert_eq!(
            spec("127.0.0.1"),
            PeerSpec {
                host: ip("127.0.0.1"),
                port: 12000
            }
        );
    }

    #[test]
    fn ipv4_with_port() {
        assert_eq!(spec("10.0.0.2:12001").port, 12001);
        assert_eq!(spec(" 10.0.0.2:12001\n").host, ip("10.0.0.2"));
    }

    #[test]
    fn bracketed_ipv6_with_and_without_port() {
        assert_eq!(
            spec("[::1]:12001"),
            PeerSpec {
                host: ip("::1"),
                port: 12001
            }
        );
        assert_eq!(spec("[fe80::1]").port, 12000);
    }

    #[test]
    fn bare_ipv6_uses_the_default_port() {
        assert_eq!(
            spec("::1"),
            PeerSpec {
                host: ip("::1"),
                port: 12000
            }
        );
        assert_eq!(spec("2001:db8::7").host, ip("2001:db8::7"));
    }

    #[test]
    fn hostname_with_and_without_port() {
        assert_eq!(
            spec("example.org"),
            PeerSpec {
                host: Host::Name("example.org".into()),
                port: 12000
            }
        );
        assert_eq!(spec("localhost:9").port, 9);
    }

    #[test]
    fn bad_ports_are_refused_naming_the_port() {
        for (input, port) in [
            ("127.0.0.1:99999", "99999"),
            ("127.0.0.1:0", "0"),
            ("127.0.0.1:", ""),
            ("host:abc", "abc"),
            ("[::1]:x", "x"),
            ("[::1]:-1", "-1"),
        ] {
            assert_eq!(
                input.parse::<PeerSpec>(),
                Err(PeerAddrError::BadPort {
                    input: input.into(),
                    port: port.into()
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for input in ["[::1", "[nope]:1", "[::1]x", "1:2:3:zz", ":12000", "a b"] {
            assert!(
                matches!(
                    input.parse::<PeerSpec>(),
                    Err(PeerAddrError::Malformed { .. })
                ),
                "{input}"
            );
        }
        assert_eq!("  ".parse::<PeerSpec>(), Err(PeerAddrError::Empty));
    }

    #[test]
    fn literal_addresses_resolve_without_a_lookup() {
        assert_eq!(
            spec("[::1]:5").resolve(None).unwrap(),
            "[::1]:5".parse().unwrap()
        );
        assert_eq!(
            spec("127.0.0.1").resolve(Some("0.0.0.0".parse().unwrap())),
            Ok("127.0.0.1:12000".parse().unwrap())
        );
    }

    #[test]
    fn bind_family_must_match() {
        let err = spec("127.0.0.1")
            .resolve(Some("::".parse().unwrap()))
            .unwrap_err();
        assert!(matches!(err, PeerAddrError::FamilyMismatch { .. }));
        assert_eq!(
            err.to_string(),
            "the peer 127.0.0.1:12000 is IPv4 but --bind :: is IPv6"
        );
    }

    #[test]
    fn localhost_prefers_ipv4_unless_bind_says_otherwise() {
        let v4 = spec("localhost:7").resolve(None).unwrap();
        assert_eq!(v4, "127.0.0.1:7".parse().unwrap());
    }

    #[test]
    fn display_round_trips() {
        for s in ["127.0.0.1:1", "[::1]:2", "example.org:3"] {
            assert_eq!(spec(s).to_string(), s);
        }
    }
}
