//! The error catalogue: every error that leaves the Rust side has a stable code,
//! and the kernel's errno travels as a field (never inside the message only).
//! tests/fixtures/error-codes.txt lists the codes; the TS catalogue must match it.

use kproxy_nftables::NftError;
use kproxy_rtnetlink::RtnlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidOption,
    WireVersion,
    NetlinkIo,
    KernelRejected,
    GenerationChanged,
    BatchOversize,
    NoAck,
    Panic,
    Internal,
}

impl Code {
    pub const ALL: [Code; 9] = [
        Code::InvalidOption,
        Code::WireVersion,
        Code::NetlinkIo,
        Code::KernelRejected,
        Code::GenerationChanged,
        Code::BatchOversize,
        Code::NoAck,
        Code::Panic,
        Code::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidOption => "E_INVALID_OPTION",
            Code::WireVersion => "E_WIRE_VERSION",
            Code::NetlinkIo => "E_NETLINK_IO",
            Code::KernelRejected => "E_KERNEL_REJECTED",
            Code::GenerationChanged => "E_GENERATION_CHANGED",
            Code::BatchOversize => "E_BATCH_OVERSIZE",
            Code::NoAck => "E_NO_ACK",
            Code::Panic => "E_PANIC",
            Code::Internal => "E_INTERNAL",
        }
    }
}

/// An error with its code, message and (for kernel errors) errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxierError {
    pub code: Code,
    pub message: String,
    pub errno: Option<i32>,
}

impl ProxierError {
    pub fn new(code: Code, message: impl std::fmt::Display) -> Self {
        Self { code, message: message.to_string(), errno: None }
    }

    /// The JSON object that crosses N-API as the error's message: {"code","errno","message"}.
    pub fn to_json(&self) -> String {
        let errno = self.errno.map_or("null".to_string(), |e| e.to_string());
        format!("{{\"code\":\"{}\",\"errno\":{errno},\"message\":{}}}", self.code.as_str(), json_string(&self.message))
    }
}

impl std::fmt::Display for ProxierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code.as_str(), self.message)
    }
}

impl From<&NftError> for ProxierError {
    fn from(e: &NftError) -> Self {
        let code = match e {
            NftError::Io(_) => Code::NetlinkIo,
            NftError::Kernel { .. } => Code::KernelRejected,
            NftError::GenerationChanged => Code::GenerationChanged,
            NftError::Oversize => Code::BatchOversize,
            NftError::NoAck => Code::NoAck,
        };
        Self { code, message: e.to_string(), errno: e.errno() }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An rtnetlink failure (links, addresses) in the catalogue.
pub fn rtnl_error(e: RtnlError) -> ProxierError {
    match e {
        RtnlError::Io(e) => ProxierError::new(Code::NetlinkIo, format!("rtnetlink: {e}")),
        RtnlError::Kernel { errno, what } => {
            ProxierError { code: Code::KernelRejected, message: format!("rtnetlink {what}: errno {errno}"), errno: Some(errno) }
        }
        other => ProxierError::new(Code::NoAck, format!("rtnetlink: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_code_errno_and_escaped_message() {
        let e = ProxierError { code: Code::KernelRejected, message: "bad \"x\"\n".into(), errno: Some(17) };
        assert_eq!(e.to_json(), r#"{"code":"E_KERNEL_REJECTED","errno":17,"message":"bad \"x\"\n"}"#);
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["message"], "bad \"x\"\n");
    }

    #[test]
    fn the_shared_catalogue_lists_every_code() {
        let listed = include_str!("../../../tests/fixtures/error-codes.txt");
        let listed: Vec<&str> = listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let ours: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours, "tests/fixtures/error-codes.txt and error.rs differ");
    }
}
