//! Plain data types shared by every Cairn layer.
//!
//! Nothing in this crate performs I/O or reads clocks: everything here may be
//! used on the replicated path, where determinism is required.

pub mod cycles;
pub mod error;
pub mod fees;
pub mod ids;
pub mod messages;
pub mod principal;
pub mod routing;
pub mod time;

pub use cycles::Cycles;
pub use error::{ErrorCode, RejectCode, UserError};
pub use fees::CostSchedule;
pub use ids::{CanisterId, NodeId, SubnetId};
pub use messages::MessageId;
pub use principal::{Principal, PrincipalError};
pub use routing::{CanisterIdRange, RoutingTable};
pub use time::{Height, RegistryVersion, Time};
