//! `cargo bench -p cairn-bench`: the same program as the `exec-bench` binary.

fn main() {
    cairn_bench::cli::main();
}
