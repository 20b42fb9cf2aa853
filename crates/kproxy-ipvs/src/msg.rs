//! Pure encoding of IPVS requests and parsing of the kernel's replies. Attribute
//! sets and their order are ipvsadm's (libipvs), so that tests/golden.rs can
//! compare our requests with ipvsadm's byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kproxy_netlink::{attrs, Attr, MsgBuffer, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

use crate::consts::*;
use crate::*;

/// Commands are acked one by one, so a pipeline can match results to ops.
pub const CMD_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// ipvsadm asks dumps for an ack too; the kernel sends none (NLMSG_DONE ends them).
pub const DUMP_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;

/// Starts a message of the IPVS family (`family` is its id, resolved per boot).
pub fn begin(b: &mut MsgBuffer, family: u16, cmd: u8, flags: u16, seq: u32) {
    b.begin_msg(family, flags, seq);
    b.put_raw(&[cmd, IPVS_GENL_VERSION, 0, 0]);
}

pub fn af(addr: &IpAddr) -> u16 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// union nf_inet_addr: always 16 bytes, as ipvsadm sends it; an IPv4 address fills the first 4.
fn inet_addr(addr: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// The kernel reads NETMASK as 4 raw bytes: a be32 mask for IPv4, a host-order prefix length for IPv6.
fn netmask_bytes(addr: &IpAddr, netmask: u32) -> [u8; 4] {
    if addr.is_ipv4() {
        netmask.to_be_bytes()
    } else {
        netmask.to_ne_bytes()
    }
}

fn put_service_ident(b: &mut MsgBuffer, key: &ServiceKey) {
    b.attr(IPVS_SVC_ATTR_AF, &af(&key.addr).to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_PROTOCOL, &u16::from(key.protocol).to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_ADDR, &inet_addr(&key.addr));
    b.attr(IPVS_SVC_ATTR_PORT, &key.port.to_be_bytes());
}

/// The whole service nest. NEW/SET_SERVICE need every field; for other commands
/// ipvsadm sends them too (empty scheduler, no flags), and so do we.
fn put_service(b: &mut MsgBuffer, s: &Service) {
    let nest = b.nest_start(IPVS_CMD_ATTR_SERVICE);
    put_service_ident(b, &s.key);
    b.attr_str(IPVS_SVC_ATTR_SCHED_NAME, &s.scheduler);
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&s.flags.to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes()); // mask: every flag is set as given
    b.attr(IPVS_SVC_ATTR_FLAGS, &flags);
    b.attr(IPVS_SVC_ATTR_TIMEOUT, &s.timeout.to_ne_bytes());
    b.attr(IPVS_SVC_ATTR_NETMASK, &netmask_bytes(&s.key.addr, s.netmask));
    b.nest_end(nest);
}

/// A service named by its key only, with the fillers ipvsadm sends.
fn put_service_key(b: &mut MsgBuffer, key: &ServiceKey) {
    put_service(b, &Service::new(*key, ""));
}

/// Every dest field, including the tunnel ones ipvsadm sends as zero (ipip, no port, no flags).
fn put_dest(b: &mut MsgBuffer, d: &Destination) {
    let nest = b.nest_start(IPVS_CMD_ATTR_DEST);
    b.attr(IPVS_DEST_ATTR_ADDR_FAMILY, &af(&d.key.addr).to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_ADDR, &inet_addr(&d.key.addr));
    b.attr(IPVS_DEST_ATTR_PORT, &d.key.port.to_be_bytes());
    b.attr(IPVS_DEST_ATTR_FWD_METHOD, &d.forward.code().to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_WEIGHT, &d.weight.to_ne_bytes());
    b.attr_u8(IPVS_DEST_ATTR_TUN_TYPE, 0);
    b.attr(IPVS_DEST_ATTR_TUN_PORT, &0u16.to_be_bytes());
    b.attr(IPVS_DEST_ATTR_TUN_FLAGS, &0u16.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_U_THRESH, &d.upper_threshold.to_ne_bytes());
    b.attr(IPVS_DEST_ATTR_L_THRESH, &d.lower_threshold.to_ne_bytes());
    b.nest_end(nest);
}

/// One op as one acked message.
pub fn encode_op(b: &mut MsgBuffer, family: u16, op: &Op, seq: u32) {
    match op {
        Op::AddService(s) | Op::EditService(s) => {
            let cmd = if matches!(op, Op::AddService(_)) { IPVS_CMD_NEW_SERVICE } else { IPVS_CMD_SET_SERVICE };
            begin(b, family, cmd, CMD_FLAGS, seq);
            put_service(b, s);
        }
        Op::DeleteService(k) => {
            begin(b, family, IPVS_CMD_DEL_SERVICE, CMD_FLAGS, seq);
            put_service_key(b, k);
        }
        Op::AddDest(k, d) | Op::EditDest(k, d) => {
            let cmd = if matches!(op, Op::AddDest(..)) { IPVS_CMD_NEW_DEST } else { IPVS_CMD_SET_DEST };
            begin(b, family, cmd, CMD_FLAGS, seq);
            put_service_key(b, k);
            put_dest(b, d);
        }
        Op::DeleteDest(k, dk) => {
            begin(b, family, IPVS_CMD_DEL_DEST, CMD_FLAGS, seq);
            put_service_key(b, k);
            // The kernel reads only the address here; the rest is ipvsadm's defaults (-g -w 1).
            put_dest(b, &Destination { forward: Forward::Route, ..Destination::masq(*dk, 1) });
        }
    }
    b.end_msg();
}

pub fn encode_dump_services(b: &mut MsgBuffer, family: u16, seq: u32) {
    begin(b, family, IPVS_CMD_GET_SERVICE, DUMP_FLAGS, seq);
    b.end_msg();
}

/// GET_DEST names its service by the identifying attributes alone, as ipvsadm does.
pub fn encode_dump_dests(b: &mut MsgBuffer, family: u16, seq: u32, key: &ServiceKey) {
    begin(b, family, IPVS_CMD_GET_DEST, DUMP_FLAGS, seq);
    let nest = b.nest_start(IPVS_CMD_ATTR_SERVICE);
    put_service_ident(b, key);
    b.nest_end(nest);
    b.end_msg();
}

pub fn encode_get_info(b: &mut MsgBuffer, family: u16, seq: u32) {
    begin(b, family, IPVS_CMD_GET_INFO, CMD_FLAGS, seq);
    b.end_msg();
}

pub fn encode_get_config(b: &mut MsgBuffer, family: u16, seq: u32) {
    begin(b, family, IPVS_CMD_GET_CONFIG, CMD_FLAGS, seq);
    b.end_msg();
}

/// All three timeouts, zeros included: the kernel leaves a zero one as it is.
pub fn encode_set_config(b: &mut MsgBuffer, family: u16, seq: u32, t: &Timeouts) {
    begin(b, family, IPVS_CMD_SET_CONFIG, CMD_FLAGS, seq);
    b.attr(IPVS_CMD_ATTR_TIMEOUT_TCP, &t.tcp.to_ne_bytes());
    b.attr(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, &t.tcp_fin.to_ne_bytes());
    b.attr(IPVS_CMD_ATTR_TIMEOUT_UDP, &t.udp.to_ne_bytes());
    b.end_msg();
}

fn ne_u16(a: &Attr<'_>) -> Option<u16> {
    Some(u16::from_ne_bytes(a.payload.get(0..2)?.try_into().ok()?))
}

fn ne_u32(a: &Attr<'_>) -> Option<u32> {
    Some(u32::from_ne_bytes(a.payload.get(0..4)?.try_into().ok()?))
}

fn be_u16(a: &Attr<'_>) -> Option<u16> {
    Some(u16::from_be_bytes(a.payload.get(0..2)?.try_into().ok()?))
}

fn parse_addr(family: u16, p: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(p.get(0..4)?).ok()?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(p.get(0..16)?).ok()?))),
        _ => None,
    }
}

/// The payload of the first nested attribute `ty` among `payload`'s attributes.
fn nest(payload: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(payload).find(|a| a.ty == ty).map(|a| a.payload)
}

/// One service of a GET_SERVICE reply (`payload`: after the genl header).
/// Ok(None) for fwmark services, which this crate does not model.
pub fn parse_service(payload: &[u8]) -> Result<Option<Service>, IpvsError> {
    let nested = nest(payload, IPVS_CMD_ATTR_SERVICE).ok_or(IpvsError::Malformed("service without IPVS_CMD_ATTR_SERVICE"))?;
    let (mut family, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, false);
    let (mut scheduler, mut flags, mut timeout, mut netmask) = (None, 0, 0, None);
    for a in attrs(nested) {
        match a.ty {
            IPVS_SVC_ATTR_AF => family = ne_u16(&a),
            IPVS_SVC_ATTR_PROTOCOL => protocol = ne_u16(&a),
            IPVS_SVC_ATTR_ADDR => addr = Some(a.payload),
            IPVS_SVC_ATTR_PORT => port = be_u16(&a),
            IPVS_SVC_ATTR_FWMARK => fwmark = true,
            IPVS_SVC_ATTR_SCHED_NAME => scheduler = a.str(),
            IPVS_SVC_ATTR_FLAGS => flags = ne_u32(&a).unwrap_or(0),
            IPVS_SVC_ATTR_TIMEOUT => timeout = ne_u32(&a).unwrap_or(0),
            IPVS_SVC_ATTR_NETMASK => netmask = a.payload.get(0..4).map(|b| <[u8; 4]>::try_from(b).unwrap_or_default()),
            _ => {}
        }
    }
    if fwmark {
        return Ok(None);
    }
    let family = family.ok_or(IpvsError::Malformed("service without AF"))?;
    let addr = addr.and_then(|p| parse_addr(family, p)).ok_or(IpvsError::Malformed("service address"))?;
    let protocol = protocol.and_then(|p| u8::try_from(p).ok()).ok_or(IpvsError::Malformed("service protocol"))?;
    let port = port.ok_or(IpvsError::Malformed("service without port"))?;
    let netmask = match netmask {
        Some(b) if addr.is_ipv4() => u32::from_be_bytes(b),
        Some(b) => u32::from_ne_bytes(b),
        None => full_netmask(&addr),
    };
    Ok(Some(Service {
        key: ServiceKey { addr, protocol, port },
        scheduler: scheduler.unwrap_or("none").to_owned(),
        // HASHED only says the kernel holds the service in its table: always, for a dumped one.
        flags: flags & !FLAG_HASHED,
        timeout,
        netmask,
    }))
}

/// One destination of a GET_DEST reply. Kernels before 4.2 send no ADDR_FAMILY:
/// the address is then of the service's family.
pub fn parse_dest(payload: &[u8], service_family: u16) -> Result<DestinationState, IpvsError> {
    let nested = nest(payload, IPVS_CMD_ATTR_DEST).ok_or(IpvsError::Malformed("destination without IPVS_CMD_ATTR_DEST"))?;
    let (mut family, mut addr, mut port, mut forward) = (service_family, None, None, None);
    let mut d = Destination::masq(DestKey { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: 0 }, 0);
    let mut stats = DestStats::default();
    for a in attrs(nested) {
        let v = ne_u32(&a).unwrap_or(0);
        match a.ty {
            IPVS_DEST_ATTR_ADDR_FAMILY => family = ne_u16(&a).unwrap_or(service_family),
            IPVS_DEST_ATTR_ADDR => addr = Some(a.payload),
            IPVS_DEST_ATTR_PORT => port = be_u16(&a),
            IPVS_DEST_ATTR_FWD_METHOD => forward = Forward::from_code(v),
            IPVS_DEST_ATTR_WEIGHT => d.weight = v,
            IPVS_DEST_ATTR_U_THRESH => d.upper_threshold = v,
            IPVS_DEST_ATTR_L_THRESH => d.lower_threshold = v,
            IPVS_DEST_ATTR_ACTIVE_CONNS => stats.active_conns = v,
            IPVS_DEST_ATTR_INACT_CONNS => stats.inactive_conns = v,
            IPVS_DEST_ATTR_PERSIST_CONNS => stats.persist_conns = v,
            _ => {}
        }
    }
    d.key.addr = addr.and_then(|p| parse_addr(family, p)).ok_or(IpvsError::Malformed("destination address"))?;
    d.key.port = port.ok_or(IpvsError::Malformed("destination without port"))?;
    d.forward = forward.ok_or(IpvsError::Malformed("destination forwarding method"))?;
    Ok(DestinationState { dest: d, stats })
}

/// GET_INFO's reply: the attributes sit at the top level.
pub fn parse_info(payload: &[u8]) -> Result<Info, IpvsError> {
    let (mut version, mut conn_tab_size) = (None, None);
    for a in attrs(payload) {
        match a.ty {
            IPVS_INFO_ATTR_VERSION => version = ne_u32(&a),
            IPVS_INFO_ATTR_CONN_TAB_SIZE => conn_tab_size = ne_u32(&a),
            _ => {}
        }
    }
    match (version, conn_tab_size) {
        (Some(version), Some(conn_tab_size)) => Ok(Info { version, conn_tab_size }),
        _ => Err(IpvsError::Malformed("info without version or table size")),
    }
}

/// GET_CONFIG's reply. A kernel built without TCP or UDP support leaves those out: 0.
pub fn parse_timeouts(payload: &[u8]) -> Timeouts {
    let mut t = Timeouts::default();
    for a in attrs(payload) {
        let v = ne_u32(&a).unwrap_or(0);
        match a.ty {
            IPVS_CMD_ATTR_TIMEOUT_TCP => t.tcp = v,
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => t.tcp_fin = v,
            IPVS_CMD_ATTR_TIMEOUT_UDP => t.udp = v,
            _ => {}
        }
    }
    t
}

#[cfg(test)]
#[path = "msg_tests.rs"]
mod tests;
