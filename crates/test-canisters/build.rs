//! Builds the test canisters in `<workspace>/test-canisters/` from source and
//! copies `<name>.wasm` and `<name>.did` of each into `OUT_DIR`:
//!
//! * Rust canisters: a nested `cargo build --release --locked --target
//!   wasm32-unknown-unknown` of the separate `test-canisters` workspace, with
//!   its own target dir (`<target>/test-canisters`) so it never waits on the
//!   outer build's lock. Installs the wasm32 target with rustup if missing.
//! * Motoko actors: `node test-canisters/motoko/build.js` (npm `motoko`
//!   pinned in package-lock.json; `npm ci` first if node_modules is missing).
//!   Its output is cached in `<target>/test-canisters/motoko` with a stamp of
//!   the inputs, shared by every profile (moc takes seconds per actor), and
//!   guarded by a file lock against concurrent builds.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const RUST_CANISTERS: &[&str] = &["counter", "inter", "timers", "stable", "wallet", "hooks", "hostile"];
const MOTOKO_CANISTERS: &[&str] = &["mo_counter", "mo_inter"];

/// Environment variables the outer cargo sets (or a user sets for the outer
/// build) that must not leak into the nested build: flags meant for the host
/// workspace, clippy's wrapper, and target/target-dir overrides.
const LEAKY_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "OUT_DIR",
    "TARGET",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../..").canonicalize().unwrap();
    let canisters = workspace.join("test-canisters");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    rerun_if_changed(&canisters.join("Cargo.toml"));
    rerun_if_changed(&canisters.join("Cargo.lock"));
    rerun_if_changed(&canisters.join("rust"));
    rerun_if_changed(&canisters.join("shared"));
    let motoko = canisters.join("motoko");
    for input in motoko_inputs(&motoko) {
        rerun_if_changed(&input);
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    // Same target dir as the outer build, in a subdirectory of its own.
    let target_root = match env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let target_dir = target_root.join("test-canisters");

    build_rust(&canisters, &target_dir, &out_dir);
    build_motoko(&motoko, &target_dir.join("motoko"), &out_dir);
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

fn build_rust(canisters: &Path, target_dir: &Path, out_dir: &Path) {
    ensure_wasm_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(canisters)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(canisters.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        // The nested cargo's stdout must not be parsed as our `cargo:` lines.
        .stdout(Stdio::from(std::io::stderr()));
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    run(&mut cmd, "building the Rust test canisters (test-canisters/Cargo.toml)");

    let release = target_dir.join(WASM_TARGET).join("release");
    for name in RUST_CANISTERS {
        copy(&release.join(format!("{name}.wasm")), &out_dir.join(format!("{name}.wasm")));
        let did = canisters.join("rust").join(name).join(format!("{name}.did"));
        copy(&did, &out_dir.join(format!("{name}.did")));
    }
}

/// Installs the wasm32 standard library with rustup when the sysroot of the
/// `rustc` cargo uses lacks it.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc:?} --print sysroot: {e}"));
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib").is_dir() {
        return;
    }
    println!("cargo:warning=installing the {WASM_TARGET} target with rustup");
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]).stdout(Stdio::from(std::io::stderr()));
    run(&mut cmd, "installing the wasm32 target (run `rustup target add wasm32-unknown-unknown` or scripts/setup.sh)");
}

/// The files whose change means the Motoko canisters must be rebuilt.
fn motoko_inputs(motoko: &Path) -> Vec<PathBuf> {
    let mut inputs = vec![
        motoko.join("build.js"),
        motoko.join("package.json"),
        motoko.join("package-lock.json"),
        motoko.join("src"),
    ];
    let mut sources: Vec<PathBuf> = fs::read_dir(motoko.join("src"))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", motoko.join("src").display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("mo")))
        .collect();
    sources.sort();
    inputs.extend(sources);
    inputs
}

fn build_motoko(motoko: &Path, cache: &Path, out_dir: &Path) {
    fs::create_dir_all(cache).unwrap();
    let lock = fs::File::create(cache.join(".lock")).unwrap();
    lock.lock().unwrap();

    // A stamp of every input's contents: skip moc when nothing changed.
    let mut stamp = Vec::new();
    for input in motoko_inputs(motoko).iter().filter(|p| p.is_file()) {
        stamp.extend_from_slice(input.to_string_lossy().as_bytes());
        stamp.push(0);
        stamp.extend_from_slice(&fs::read(input).unwrap());
        stamp.push(0);
    }
    let stamp_path = cache.join("inputs.stamp");
    let outputs_exist = MOTOKO_CANISTERS.iter().all(|name| cache.join(format!("{name}.wasm")).is_file());
    if !outputs_exist || fs::read(&stamp_path).ok().as_deref() != Some(&stamp[..]) {
        compile_motoko(motoko, cache);
        fs::write(&stamp_path, stamp).unwrap();
    }
    for name in MOTOKO_CANISTERS {
        for ext in ["wasm", "did"] {
            let file = format!("{name}.{ext}");
            copy(&cache.join(&file), &out_dir.join(&file));
        }
    }
}

fn compile_motoko(motoko: &Path, dest: &Path) {
    let node_missing = |tool: &str| -> ! {
        panic!(
            "`{tool}` not found on PATH. The Motoko test canisters are compiled with the npm \
             package `motoko` (test-canisters/motoko); install Node.js >= 18 with npm \
             (e.g. `apt-get install nodejs npm`), then run scripts/setup.sh."
        )
    };
    if Command::new("node").arg("--version").output().is_err() {
        node_missing("node");
    }
    if !motoko.join("node_modules/motoko/package.json").is_file() {
        if Command::new("npm").arg("--version").output().is_err() {
            node_missing("npm");
        }
        println!("cargo:warning=running `npm ci` in test-canisters/motoko");
        let mut cmd = Command::new("npm");
        cmd.current_dir(motoko).args(["ci", "--no-audit", "--no-fund"]).stdout(Stdio::from(std::io::stderr()));
        run(&mut cmd, "npm ci in test-canisters/motoko");
    }

    let mut cmd = Command::new("node");
    cmd.current_dir(motoko).arg("build.js").arg(dest).args(MOTOKO_CANISTERS).stdout(Stdio::from(std::io::stderr()));
    run(&mut cmd, "compiling the Motoko test canisters (test-canisters/motoko/build.js)");
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    if !status.success() {
        panic!("{what}: {cmd:?} failed with {status}");
    }
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
