//! nftables mode: one `ip`/`ip6` table named like upstream's, static chains,
//! and sets/maps that carry every Service (see docs/design.md).

mod collect;
pub mod layout;
pub mod names;
pub mod objects;
pub mod own;
pub mod plan;
pub mod shared;
pub mod trace;

use kproxy_nftables::{Family, Op, Transaction};

pub use layout::{LayoutConfig, LocalDetector};
pub use plan::Planner;

use crate::desired::Desired;
use crate::sync::Mode;

pub struct NftablesMode {
    planner: Planner,
}

impl NftablesMode {
    pub fn new(cfg: LayoutConfig) -> Self {
        Self { planner: Planner::new(cfg) }
    }
}

impl Mode for NftablesMode {
    fn family(&self) -> Family {
        self.planner.config().family
    }

    fn table(&self) -> &'static str {
        layout::TABLE
    }

    fn plan(&mut self, desired: &mut Desired, force_full: bool) -> (Transaction, bool) {
        self.planner.plan(desired, force_full)
    }

    fn invalidate(&mut self) {
        self.planner.invalidate();
    }

    fn render_text(&self, desired: &Desired) -> String {
        self.planner.render_text(desired)
    }

    fn full_transaction(&self, desired: &Desired) -> Transaction {
        self.planner.full_transaction(desired)
    }

    fn after_commit(&mut self, read: &mut crate::sync::ReadSet<'_>) -> Result<Option<Transaction>, kproxy_nftables::NftError> {
        self.planner.after_commit(read)
    }

    fn after_commit_failed(&mut self) {
        self.planner.after_commit_failed();
    }

    fn next_plan_full(&self, desired: &Desired) -> bool {
        self.planner.next_plan_full(desired)
    }

    fn after_commit_due(&self) -> bool {
        self.planner.after_commit_due()
    }

    fn cleanup(&self) -> Transaction {
        let mut tx = Transaction::new(self.family(), layout::TABLE);
        tx.push(Op::DeleteTable);
        tx
    }
}
