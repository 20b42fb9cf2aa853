//! Builds netlink messages back to back in one contiguous buffer, so a whole
//! nf_tables batch goes to the kernel in a single `send()`.

use crate::{align4, NLA_F_NESTED, NLA_HDRLEN};

/// A growing buffer of netlink messages. Header fields are native-endian, as
/// netlink requires; payload byte order is the caller's business.
#[derive(Default)]
pub struct MsgBuffer {
    buf: Vec<u8>,
    msg_start: Option<usize>,
    last_msg_start: Option<usize>,
    messages: usize,
    /// Set when an attribute or nest outgrew nla_len (u16). The batch is then unusable.
    overflow: bool,
}

impl MsgBuffer {
    pub fn with_capacity(cap: usize) -> Self {
        Self { buf: Vec::with_capacity(cap), ..Default::default() }
    }

    /// Starts a message; its length is fixed up by `end_msg`.
    pub fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32) {
        debug_assert!(self.msg_start.is_none(), "begin_msg inside a message");
        self.msg_start = Some(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    }

    pub fn end_msg(&mut self) {
        if let Some(start) = self.msg_start.take() {
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
            self.last_msg_start = Some(start);
            self.messages += 1;
        }
    }

    /// ORs `flags` into the last finished message's header (e.g. NLM_F_ACK).
    pub fn or_last_msg_flags(&mut self, flags: u16) {
        if let Some(at) = self.last_msg_start {
            let old = u16::from_ne_bytes([self.buf[at + 6], self.buf[at + 7]]);
            self.buf[at + 6..at + 8].copy_from_slice(&(old | flags).to_ne_bytes());
        }
    }

    /// Raw fixed header bytes (e.g. nfgenmsg), padded to 4.
    pub fn put_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.pad();
    }

    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = NLA_HDRLEN + payload.len();
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    pub fn attr_u32_be(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let len = NLA_HDRLEN + s.len() + 1;
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute; pass the returned offset to `nest_end`.
    pub fn nest_start(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    pub fn nest_end(&mut self, at: usize) {
        let len = self.buf.len() - at;
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }

    /// Bytes of the message being built so far (to decide when to split).
    pub fn current_msg_len(&self) -> usize {
        self.msg_start.map(|s| self.buf.len() - s).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn message_count(&self) -> usize {
        self.messages
    }

    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    fn pad(&mut self) {
        let target = align4(self.buf.len());
        self.buf.resize(target, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_attributes_are_framed_and_padded() {
        let mut b = MsgBuffer::default();
        b.begin_msg(0x0a00, 0x0401, 7);
        b.put_raw(&[2, 0, 0, 0]); // nfgenmsg: AF_INET, v0, res_id 0
        b.attr_str(1, "kube-proxy"); // 4 + 11 = 15, padded to 16
        let n = b.nest_start(3);
        b.attr_u32_be(1, 0x0102_0304);
        b.nest_end(n);
        b.end_msg();
        let bytes = b.as_bytes();
        assert_eq!(bytes.len(), 16 + 4 + 16 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 48);
        assert_eq!(u16::from_ne_bytes(bytes[4..6].try_into().unwrap()), 0x0a00);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        // the string attribute: len 15, type 1, "kube-proxy\0" + 1 pad byte
        assert_eq!(u16::from_ne_bytes(bytes[20..22].try_into().unwrap()), 15);
        assert_eq!(&bytes[24..35], b"kube-proxy\0");
        assert_eq!(bytes[35], 0);
        // the nest: len 12, type 3 | NLA_F_NESTED, then a big-endian u32
        assert_eq!(u16::from_ne_bytes(bytes[36..38].try_into().unwrap()), 12);
        assert_eq!(u16::from_ne_bytes(bytes[38..40].try_into().unwrap()), 3 | NLA_F_NESTED);
        assert_eq!(&bytes[44..48], &[1, 2, 3, 4]);
        assert_eq!(b.message_count(), 1);
        assert!(!b.overflowed());
    }

    #[test]
    fn oversized_nest_is_flagged() {
        let mut b = MsgBuffer::default();
        b.begin_msg(1, 0, 0);
        let n = b.nest_start(1);
        for _ in 0..20_000 {
            b.attr_u32_be(1, 0);
        }
        b.nest_end(n);
        b.end_msg();
        assert!(b.overflowed());
    }
}
