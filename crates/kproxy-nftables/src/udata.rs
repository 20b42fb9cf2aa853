//! nft's userdata TLVs (type u8, length u8, value): comments on tables, sets,
//! rules and elements. The kernel stores them opaquely; nft reads them back.

/// Comment TLV type for tables, rules and elements.
pub const COMMENT: u8 = 0;
/// Comment TLV type inside set userdata.
pub const SET_COMMENT: u8 = 7;

/// Appends a NUL-terminated string TLV. Comments longer than 254 bytes are cut,
/// as the length is one byte (nft limits comments to 128 characters anyway).
pub fn put_str(out: &mut Vec<u8>, ty: u8, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len().min(253);
    out.push(ty);
    out.push((n + 1) as u8);
    out.extend_from_slice(&bytes[..n]);
    out.push(0);
}

pub fn comment(ty: u8, s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 3);
    put_str(&mut v, ty, s);
    v
}
