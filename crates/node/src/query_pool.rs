//! Threads that run queries and ingress admission checks.
//!
//! Each thread has its own execution environment (its own sandboxes) over
//! the node's shared engine, so compiled modules are shared while instances
//! are not; queries run against a certified state and change nothing.

use cairn_execution::{ExecutionConfig, ExecutionEnvironment, Query};
use cairn_state_manager::CertifiedState;
use cairn_types::UserError;
use cairn_types::messages::{Ingress, WasmResult};
use cairn_wasm::WasmEngine;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Work for a query thread.
pub(crate) enum Job {
    Query { query: Query, state: Arc<CertifiedState>, reply: oneshot::Sender<Result<WasmResult, UserError>> },
    Inspect { ingress: Ingress, state: Arc<CertifiedState>, reply: oneshot::Sender<Result<(), UserError>> },
}

/// Starts `threads` query threads reading from one queue.
pub(crate) fn start(
    threads: usize,
    config: ExecutionConfig,
    engine: Arc<WasmEngine>,
) -> std::io::Result<(crossbeam_channel::Sender<Job>, Vec<std::thread::JoinHandle<()>>)> {
    let (tx, rx) = crossbeam_channel::bounded::<Job>(4096);
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let rx = rx.clone();
        let mut env = ExecutionEnvironment::with_engine(config.clone(), engine.clone());
        handles.push(cairn_wasm::spawn_execution_thread(format!("query-{i}"), move || {
            for job in rx {
                match job {
                    Job::Query { query, state, reply } => {
                        let certificate =
                            (!query.receiver.is_management()).then(|| state.data_certificate(&query.receiver));
                        let _ = reply.send(env.execute_query(&state.state, query, certificate));
                    }
                    Job::Inspect { ingress, state, reply } => {
                        let _ = reply.send(env.should_accept_ingress(&state.state, &ingress));
                    }
                }
            }
        })?);
    }
    Ok((tx, handles))
}
