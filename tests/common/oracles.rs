//! nginx versions other than Debian's, built from the release-tag archives in
//! `../shared/oracles/` (`NGINX_ORACLE_SOURCES` to look elsewhere) into `<target>/oracles/` once,
//! and reused by every later run: `nginx_bin("1.18.0")` is the path of that build's binary.
//!
//! Test binaries run in parallel: an exclusive lock on `<target>/oracles/nginx-V.lock` lets one
//! build a version while the others wait for it, and a version counts as built only once its
//! `built` marker exists (an interrupted build is redone). The build needs a C compiler, make,
//! PCRE (Debian's `libpcre3-dev` for 1.18, `libpcre2-dev` from 1.21.5 on: `return` is in the
//! rewrite module, which needs it); scripts/test installs them. Modules the oracle test does
//! not use are left out (about 20 s a version on 2 cores).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `configure` switches: what tests/nginx_oracle.rs's configuration needs (rewrite's `return`,
/// proxy, FastCGI, limit_req, upstreams, the uwsgi and scgi temp paths tests/common/nginx.rs
/// sets), without the rest.
const CONFIGURE: &[&str] = &[
    // 1.18 predates gcc 12's warnings.
    "--with-cc-opt=-Wno-error",
    "--without-http_gzip_module",
    "--without-http_charset_module",
    "--without-http_ssi_module",
    "--without-http_userid_module",
    "--without-http_access_module",
    "--without-http_auth_basic_module",
    "--without-http_mirror_module",
    "--without-http_autoindex_module",
    "--without-http_geo_module",
    "--without-http_map_module",
    "--without-http_split_clients_module",
    "--without-http_referer_module",
    "--without-http_grpc_module",
    "--without-http_memcached_module",
    "--without-http_limit_conn_module",
    "--without-http_empty_gif_module",
    "--without-http_browser_module",
    "--without-http_upstream_hash_module",
    "--without-http_upstream_ip_hash_module",
    "--without-http_upstream_least_conn_module",
    "--without-http_upstream_random_module",
    "--without-http_upstream_keepalive_module",
    "--without-http_upstream_zone_module",
];

/// Where the archives are: `NGINX_ORACLE_SOURCES`, else `../shared/oracles` beside the checkout.
fn sources() -> PathBuf {
    std::env::var_os("NGINX_ORACLE_SOURCES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/oracles"))
}

/// `<target>/oracles` (the parent of cargo's CARGO_TARGET_TMPDIR, `<target>/tmp`).
fn cache() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("oracles")
}

/// The binary of nginx `version`, built from `nginx-<version>.tar.gz` unless already built.
pub fn nginx_bin(version: &str) -> PathBuf {
    let cache = cache();
    let prefix = cache.join(format!("nginx-{version}-bin"));
    let bin = prefix.join("sbin/nginx");
    let built = prefix.join("built");
    if built.exists() {
        return bin;
    }
    std::fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
    let lock_path = cache.join(format!("nginx-{version}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", lock_path.display()));
    // Released when `lock` is dropped (or the process ends).
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    if !built.exists() {
        build(version, &cache, &prefix);
        std::fs::write(&built, version).expect("write the built marker");
    }
    bin
}

fn build(version: &str, cache: &Path, prefix: &Path) {
    let archive = sources().join(format!("nginx-{version}.tar.gz"));
    assert!(
        archive.is_file(),
        "{} is missing: the oracle test builds nginx {version} from it (see ../shared/oracles/README.md)",
        archive.display()
    );
    let src = cache.join(format!("nginx-{version}"));
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(prefix);
    let log = cache.join(format!("nginx-{version}-build.log"));
    let started = std::time::Instant::now();
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(cache),
        &log,
    );
    // The archive is the repository's layout: `auto/configure`, not `./configure`.
    run(
        Command::new("auto/configure")
            .arg(format!("--prefix={}", prefix.display()))
            .args(CONFIGURE)
            .current_dir(&src),
        &log,
    );
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    run(
        Command::new("make")
            .arg(format!("-j{jobs}"))
            .current_dir(&src),
        &log,
    );
    run(Command::new("make").arg("install").current_dir(&src), &log);
    let _ = std::fs::remove_dir_all(&src);
    eprintln!(
        "built nginx {version} into {} in {:?}",
        prefix.display(),
        started.elapsed()
    );
}

/// Runs a build step with its output appended to `log`; panics with the log's end on failure.
fn run(cmd: &mut Command, log: &Path) {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out.try_clone().expect("clone the log file");
    let status = cmd
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !status.success() {
        let text = std::fs::read(log).unwrap_or_default();
        let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(3000)..]).into_owned();
        panic!(
            "{cmd:?}: {status}; the end of {}:\n{tail}\n(scripts/test installs what the build \
             needs: build-essential, libpcre3-dev, libpcre2-dev)",
            log.display()
        );
    }
}
