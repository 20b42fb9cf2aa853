//! Generic netlink's controller: a family's id, which the kernel assigns at
//! registration (so it differs between boots and kernels), from its name.

use kproxy_netlink::{attrs, MsgBuffer, NetlinkSocket};

use crate::consts::*;
use crate::error::ENOENT;
use crate::reply::ReplyReader;
use crate::IpvsError;

/// The sequence number of the lookup; `Seq` never hands out 0, so nothing else answers to it.
pub const RESOLVE_SEQ: u32 = 0;

/// CTRL_CMD_GETFAMILY by name, acked, as libnl's genl_ctrl_resolve sends it.
pub fn encode_get_family(b: &mut MsgBuffer, seq: u32, name: &str) {
    b.begin_msg(GENL_ID_CTRL, crate::msg::CMD_FLAGS, seq);
    b.put_raw(&[CTRL_CMD_GETFAMILY, CTRL_VERSION, 0, 0]);
    b.attr_str(CTRL_ATTR_FAMILY_NAME, name);
    b.end_msg();
}

/// CTRL_ATTR_FAMILY_ID of a CTRL_CMD_NEWFAMILY reply (`payload`: after the genl header).
pub fn parse_family_id(payload: &[u8]) -> Option<u16> {
    let a = attrs(payload).find(|a| a.ty == CTRL_ATTR_FAMILY_ID)?;
    Some(u16::from_ne_bytes(a.payload.get(0..2)?.try_into().ok()?))
}

/// The id of generic-netlink family `name`, or None when the kernel has no such
/// family. The kernel tries to load the family's module first (MODULE_ALIAS_GENL_FAMILY).
pub fn resolve_family(sock: &mut NetlinkSocket, name: &str) -> Result<Option<u16>, IpvsError> {
    let mut b = MsgBuffer::default();
    encode_get_family(&mut b, RESOLVE_SEQ, name);
    sock.send(b.as_bytes())?;
    let mut reader = ReplyReader::new(RESOLVE_SEQ, GENL_ID_CTRL, "family lookup");
    let mut id = None;
    loop {
        let Some(dgram) = sock.recv(false)? else { return Err(IpvsError::NoReply("family lookup")) };
        let done = reader.feed(dgram, |cmd, payload| {
            if cmd == CTRL_CMD_NEWFAMILY {
                id = parse_family_id(payload);
            }
            Ok(())
        });
        match done {
            Ok(true) => break,
            Ok(false) => {}
            Err(IpvsError::Kernel { errno: ENOENT, .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    id.map(Some).ok_or(IpvsError::Malformed("family lookup answered without CTRL_ATTR_FAMILY_ID"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn the_lookup_names_the_family_and_reads_its_id() {
        let mut b = MsgBuffer::default();
        encode_get_family(&mut b, 9, "IPVS");
        assert_eq!(hex(b.as_bytes()), "20000000 10000500 09000000 00000000 03010000 09000200 49505653 00000000");

        // The reply carries the id among the family's other attributes (version, ops, ...).
        let mut r = MsgBuffer::default();
        r.attr_str(CTRL_ATTR_FAMILY_NAME, "IPVS");
        r.attr(CTRL_ATTR_FAMILY_ID, &0x20u16.to_ne_bytes());
        r.attr(3, &1u32.to_ne_bytes());
        assert_eq!(parse_family_id(r.as_bytes()), Some(0x20));
        assert_eq!(parse_family_id(&[]), None);
    }
}
