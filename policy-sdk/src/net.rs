//! IP networks in CIDR notation, for policies that admit clients by address.
//!
//! ```
//! use keygate_policy_sdk::net::Cidr;
//!
//! let net: Cidr = "10.0.0.0/8".parse().unwrap();
//! assert!(net.contains("10.1.2.3".parse().unwrap()));
//! assert!(!net.contains("192.0.2.1".parse().unwrap()));
//! assert!("10.0.0.1/8".parse::<Cidr>().is_err()); // host bits set
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address and a prefix length, with no bits
/// set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDRESS/PREFIX` (`10.0.0.0/8`, `2001:db8::/32`) or a bare
    /// address, which is a network of that one address. A network with host
    /// bits set (`10.0.0.1/8`) is refused rather than silently widened: the
    /// error suggests the network that was probably meant.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let Some((addr, len)) = text.split_once('/') else {
            let ip = text
                .parse()
                .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
            return Ok(Cidr::host(ip));
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid address in CIDR `{text}`"))?;
        let max = max_prefix(ip);
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("invalid prefix length in CIDR `{text}` (0 to {max})"))?;
        let network = mask(ip, prefix);
        if network != ip {
            return Err(format!(
                "CIDR `{text}` has host bits set; did you mean `{network}/{prefix}`?"
            ));
        }
        Ok(Cidr { network, prefix })
    }

    /// The network holding exactly one address.
    pub fn host(ip: IpAddr) -> Cidr {
        Cidr {
            network: ip,
            prefix: max_prefix(ip),
        }
    }

    /// The network's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`) is taken as the IPv4 address it carries; other
    /// addresses never match a network of the other family.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        Cidr::parse(text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with every bit past the first `len` cleared.
fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cidr;

    fn contains(net: &str, ip: &str) -> bool {
        Cidr::parse(net).unwrap().contains(ip.parse().unwrap())
    }

    #[test]
    fn matches_by_prefix() {
        assert!(contains("10.0.0.0/8", "10.255.0.1"));
        assert!(!contains("10.0.0.0/8", "11.0.0.1"));
        assert!(contains("0.0.0.0/0", "192.0.2.1"));
        assert!(contains("192.0.2.7", "192.0.2.7"));
        assert!(!contains("192.0.2.7", "192.0.2.8"));
        assert!(contains("fd00::/8", "fd12:3456::1"));
        assert!(!contains("fd00::/8", "fe80::1"));
        assert!(contains("::/0", "2001:db8::1"));
        assert!(contains("2001:db8::1/128", "2001:db8::1"));
    }

    #[test]
    fn families_do_not_mix_except_mapped_ipv4() {
        assert!(!contains("0.0.0.0/0", "::1"));
        assert!(!contains("::/0", "127.0.0.1"));
        assert!(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
    }

    #[test]
    fn refuses_malformed_networks() {
        let err = |text: &str| Cidr::parse(text).unwrap_err();
        assert!(err("10.0.0.1/8").contains("did you mean `10.0.0.0/8`"));
        assert!(err("10.0.0.0/33").contains("0 to 32"));
        assert!(err("fd00::/129").contains("0 to 128"));
        assert!(err("10.0.0.0/").contains("invalid prefix length"));
        assert!(err("10.0.0/8").contains("invalid address"));
        assert!(err("example.com").contains("not an IP address"));
    }

    #[test]
    fn displays_as_written() {
        for text in ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32", "::/0"] {
            assert_eq!(Cidr::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            "192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
    }
}
