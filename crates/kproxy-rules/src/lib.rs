//! The proxy rule model: turns ServicePorts and their endpoints into the
//! desired nftables state of one family's table, and plans the transaction
//! (full replace or partial diff) that moves the kernel there.
#![forbid(unsafe_code)]

pub mod layout;
pub mod model;
pub mod service;

pub use layout::LayoutConfig;
pub use model::{Model, Rejected};
pub use service::ServicePortSpec;
