//! The nf_tables error catalogue: every error has a stable code.

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("netlink I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel rejected `{what}`: {} (errno {errno}){}", errno_text(*errno), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Kernel { errno: i32, what: String, detail: Option<String> },
    #[error("the ruleset generation changed while the batch was built (ERESTART); someone else changed nftables")]
    GenerationChanged,
    #[error("batch is malformed: an attribute exceeds netlink's 64 KiB limit")]
    Oversize,
    #[error("the kernel did not acknowledge the batch")]
    NoAck,
}

pub const ERESTART: i32 = 85;

fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)"; the errno is printed once, by the caller.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if errno == EPERM {
        format!("{text}; programming nftables needs CAP_NET_ADMIN (run as root)")
    } else {
        text
    }
}

const EPERM: i32 = 1;

impl NftError {
    pub fn code(&self) -> &'static str {
        match self {
            NftError::Io(_) => "E_NETLINK_IO",
            NftError::Kernel { .. } => "E_KERNEL_REJECTED",
            NftError::GenerationChanged => "E_GENERATION_CHANGED",
            NftError::Oversize => "E_BATCH_OVERSIZE",
            NftError::NoAck => "E_NO_ACK",
        }
    }
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Io(e) => e.raw_os_error(),
            NftError::Kernel { errno, .. } => Some(*errno),
            NftError::GenerationChanged => Some(ERESTART),
            _ => None,
        }
    }
}
