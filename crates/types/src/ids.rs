//! Typed principals: canister, subnet and node ids.
//!
//! They are distinct types so a subnet id can never be passed where a canister
//! id is expected, but each is just a [`Principal`] underneath.

use crate::principal::{Principal, PrincipalError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! principal_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub Principal);

        impl $name {
            /// The underlying principal.
            pub fn get(&self) -> Principal {
                self.0
            }
            /// Raw bytes of the underlying principal.
            pub fn as_slice(&self) -> &[u8] {
                self.0.as_slice()
            }
        }

        impl From<Principal> for $name {
            fn from(p: Principal) -> Self {
                $name(p)
            }
        }

        impl From<$name> for Principal {
            fn from(id: $name) -> Principal {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = PrincipalError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Principal::from_text(s).map($name)
            }
        }
    };
}

principal_newtype!(
    /// The id of a canister; the management canister is `aaaaa-aa`.
    CanisterId
);
principal_newtype!(
    /// The id of a subnet: the self-authenticating principal of its public key.
    SubnetId
);
principal_newtype!(
    /// The id of a node: the self-authenticating principal of its signing key.
    NodeId
);

impl CanisterId {
    /// The management canister `aaaaa-aa`.
    pub const MANAGEMENT: CanisterId = CanisterId(Principal::MANAGEMENT);

    /// The canonical opaque canister id for index `n`: `u64_be(n) · 01 · 01`.
    pub fn from_u64(n: u64) -> Self {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8] = 1;
        bytes[9] = 1;
        CanisterId(Principal::try_from_slice(&bytes).expect("10 bytes fit"))
    }

    /// The index `n` if this id has the canonical form `u64_be(n) · 01 · 01`.
    pub fn as_u64(&self) -> Option<u64> {
        let s = self.0.as_slice();
        if s.len() == 10 && s[8] == 1 && s[9] == 1 {
            Some(u64::from_be_bytes(s[..8].try_into().expect("8 bytes")))
        } else {
            None
        }
    }

    /// Whether this is the management canister.
    pub fn is_management(&self) -> bool {
        self.0.is_management()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canister_id_from_index() {
        assert_eq!(CanisterId::from_u64(0).to_string(), "rwlgt-iiaaa-aaaaa-aaaaa-cai");
        assert_eq!(CanisterId::from_u64(1).to_string(), "rrkah-fqaaa-aaaaa-aaaaq-cai");
        assert_eq!(CanisterId::from_u64(12345).as_u64(), Some(12345));
        assert_eq!(CanisterId::MANAGEMENT.as_u64(), None);
        // Canonical ids sort by index, which routing ranges rely on.
        assert!(CanisterId::from_u64(255) < CanisterId::from_u64(256));
    }
}
