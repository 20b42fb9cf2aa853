//! userspace mode: the proxy in the addon (kproxy-userspace) accepts Service traffic on
//! the Service addresses themselves and relays it to an endpoint; no netfilter at all.
//! The Service addresses go on kproxy's dummy link, or on lo without the dummy driver.

pub mod build;
pub mod link;
pub mod proxy;
pub mod sync;
pub mod text;

pub use build::UserspaceConfig;
pub use sync::{UserspaceOutcome, UserspaceSync};
