//! Errors of one Wasm execution, worded and coded as the IC words and codes them.

use cairn_types::{CanisterId, ErrorCode, UserError};

const DOC_BASE: &str = "https://internetcomputer.org/docs/current/references/execution-errors";
const TRAP_SUGGESTION: &str =
    "Consider gracefully handling failures from this canister or altering the canister to handle exceptions.";
const TOOLCHAIN_HELP: &str = "This is likely an error with the compiler/CDK toolchain being used to build the canister. Please report the error to IC devs on the forum: https://forum.dfinity.org and include which language/CDK was used to create the canister.";

/// Why an execution did not complete normally. Each maps to one IC error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HypervisorError {
    /// The canister called `ic0.trap`.
    #[error("Canister called `ic0.trap` with message: '{0}'")]
    CalledTrap(String),
    /// A Wasm trap (unreachable, out-of-bounds access, division by zero, stack overflow...).
    #[error("Canister trapped: {0}")]
    Trapped(String),
    /// A System API function was called in a context where it is not available.
    #[error("Canister violated contract: {0}")]
    WrongContext(String),
    /// A System API function was misused in another way.
    #[error("Canister violated contract: {0}")]
    ContractViolation(String),
    /// The instruction limit of this execution was reached.
    #[error("Canister exceeded the limit of {0} instructions for single message execution.")]
    InstructionLimitExceeded(u64),
    /// The Wasm memory grew beyond `wasm_memory_limit`.
    #[error(
        "Canister exceeded its current Wasm memory limit of {limit} bytes. The peak Wasm memory usage was {used} bytes. If the canister reaches 4GiB, then it may stop functioning and may become unrecoverable. Please reach out to the canister owner to investigate the reason for the increased memory usage. It might be necessary to move data from the Wasm memory to the stable memory. If such high Wasm memory usage is expected and safe, then the developer can increase the Wasm memory limit in the canister settings."
    )]
    WasmMemoryLimitExceeded { used: u64, limit: u64 },
    /// Memory could not be grown (subnet or engine limit).
    #[error("Canister cannot grow its memory usage.")]
    OutOfMemory,
    /// The requested method is not exported (`kind` is `update`, `query`, `composite_query` or `system`).
    #[error("Canister has no {kind} method '{name}'.")]
    MethodNotFound { kind: &'static str, name: String },
    /// The canister has no Wasm module.
    #[error("Attempted to execute a message, but the canister contains no Wasm module.")]
    WasmModuleNotFound,
    /// A callback named a table entry that does not exist.
    #[error("Canister requested to invoke a non-existent Wasm function {0} from table 0")]
    FunctionNotFound(u64),
    /// The module could not be compiled or instantiated.
    #[error("Canister's Wasm module is not valid: {0}")]
    InvalidWasm(String),
    /// An internal engine failure (should not happen).
    #[error("Canister encountered a Wasm engine error: {0}")]
    EngineError(String),
}

impl HypervisorError {
    /// The IC error code for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            HypervisorError::CalledTrap(_) => ErrorCode::CanisterCalledTrap,
            HypervisorError::Trapped(_) => ErrorCode::CanisterTrapped,
            HypervisorError::WrongContext(_) | HypervisorError::ContractViolation(_) => {
                ErrorCode::CanisterContractViolation
            }
            HypervisorError::InstructionLimitExceeded(_) => ErrorCode::CanisterInstructionLimitExceeded,
            HypervisorError::WasmMemoryLimitExceeded { .. } => ErrorCode::CanisterWasmMemoryLimitExceeded,
            HypervisorError::OutOfMemory => ErrorCode::CanisterOutOfMemory,
            HypervisorError::MethodNotFound { .. } => ErrorCode::CanisterMethodNotFound,
            HypervisorError::WasmModuleNotFound => ErrorCode::CanisterWasmModuleNotFound,
            HypervisorError::FunctionNotFound(_) => ErrorCode::CanisterFunctionNotFound,
            HypervisorError::InvalidWasm(_) => ErrorCode::CanisterInvalidWasm,
            HypervisorError::EngineError(_) => ErrorCode::CanisterWasmEngineError,
        }
    }

    /// The text the canister's log records for a trap (`[TRAP]: …`), if this is one.
    pub fn log_text(&self) -> Option<String> {
        match self {
            HypervisorError::CalledTrap(m) if m.is_empty() => Some("[TRAP]: (no message)".into()),
            HypervisorError::CalledTrap(m) => Some(format!("[TRAP]: {m}")),
            HypervisorError::Trapped(m) => Some(format!("[TRAP]: {m}")),
            _ => None,
        }
    }

    /// Help shown after the error: a suggestion and a documentation anchor, or toolchain advice.
    fn help(&self) -> Option<String> {
        let doc = |suggestion: &str, anchor: &str| Some(format!("{suggestion} See documentation: {DOC_BASE}#{anchor}"));
        match self {
            HypervisorError::CalledTrap(_) => doc(TRAP_SUGGESTION, "trapped-explicitly"),
            HypervisorError::Trapped(_) => doc(TRAP_SUGGESTION, "trapped"),
            HypervisorError::WrongContext(_) => doc(
                "Check the ICP documentation to make sure APIs are being called in the correct message types.",
                "calling-a-system-api-from-the-wrong-mode",
            ),
            HypervisorError::ContractViolation(_) | HypervisorError::FunctionNotFound(_) => {
                Some(TOOLCHAIN_HELP.to_string())
            }
            HypervisorError::InstructionLimitExceeded(_) => doc(
                "Try optimizing this method to consume fewer instructions or split the work across multiple messages.",
                "instruction-limit-exceeded",
            ),
            HypervisorError::MethodNotFound { .. } => {
                doc("Check that the method being called is exported by the target canister.", "method-not-found")
            }
            HypervisorError::WasmModuleNotFound => {
                doc("Please install code to this canister before calling it.", "wasm-module-not-found")
            }
            HypervisorError::OutOfMemory => doc("", "out-of-memory"),
            HypervisorError::WasmMemoryLimitExceeded { .. } => doc("", "wasm-memory-limit-exceeded"),
            HypervisorError::InvalidWasm(_) | HypervisorError::EngineError(_) => None,
        }
    }

    /// The user-facing error: `Error from Canister <id>: <text>` plus help.
    pub fn into_user_error(self, canister: &CanisterId) -> UserError {
        let code = self.error_code();
        let description = match self.help() {
            Some(help) => format!("Error from Canister {canister}: {self}.\n{}", help.trim_start()),
            None => format!("Error from Canister {canister}: {self}"),
        };
        UserError::new(code, description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ic_style_descriptions() {
        let id = CanisterId::from_u64(0);
        let e = HypervisorError::MethodNotFound { kind: "update", name: "foo".into() }.into_user_error(&id);
        assert_eq!(e.code, ErrorCode::CanisterMethodNotFound);
        assert!(e.description.starts_with(
            "Error from Canister rwlgt-iiaaa-aaaaa-aaaaa-cai: Canister has no update method 'foo'..\nCheck that"
        ));
        let e = HypervisorError::CalledTrap("boom".into()).into_user_error(&id);
        assert!(e.description.contains("Canister called `ic0.trap` with message: 'boom'.\nConsider"));
        assert_eq!(HypervisorError::CalledTrap(String::new()).log_text().unwrap(), "[TRAP]: (no message)");
    }
}
