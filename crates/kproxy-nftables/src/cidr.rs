//! An IP prefix, for `saddr != CIDR` matches.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }
    pub fn mask_bytes(&self) -> Vec<u8> {
        let n = self.bits() as usize / 8;
        let mut m = vec![0u8; n];
        for (i, byte) in m.iter_mut().enumerate() {
            let bits = (self.prefix as usize).saturating_sub(i * 8).min(8);
            *byte = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        m
    }
    pub fn network_bytes(&self) -> Vec<u8> {
        let raw = match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        raw.iter().zip(self.mask_bytes()).map(|(a, m)| a & m).collect()
    }
    /// Is `ip` inside this prefix (same family only)?
    pub fn contains(&self, ip: &IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let c = Cidr { addr: *ip, prefix: self.prefix };
        c.network_bytes() == self.network_bytes()
    }

    /// The prefix with host bits cleared, as nft prints it.
    pub fn network(&self) -> IpAddr {
        let b = self.network_bytes();
        match self.addr {
            IpAddr::V4(_) => IpAddr::from(<[u8; 4]>::try_from(b.as_slice()).unwrap_or([0; 4])),
            IpAddr::V6(_) => IpAddr::from(<[u8; 16]>::try_from(b.as_slice()).unwrap_or([0; 16])),
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("invalid CIDR {s:?}: missing /prefix"))?;
        let addr: IpAddr = a.parse().map_err(|_| format!("invalid CIDR {s:?}: bad address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("invalid CIDR {s:?}: bad prefix"))?;
        let c = Cidr { addr, prefix };
        if prefix > c.bits() {
            return Err(format!("invalid CIDR {s:?}: prefix too long"));
        }
        Ok(Cidr { addr: c.network(), prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks() {
        let c: Cidr = "10.244.3.7/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert_eq!(c.mask_bytes(), vec![255, 255, 0, 0]);
        let c6: Cidr = "fd00:244::/48".parse().unwrap();
        assert_eq!(c6.mask_bytes()[..7], [255, 255, 255, 255, 255, 255, 0]);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
    }
}
