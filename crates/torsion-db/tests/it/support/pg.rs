//! A throwaway PostgreSQL server for the tests: one cluster per test process, in a fresh
//! temporary folder, on a free port and a private Unix socket folder.
//!
//! - `TORSION_PG_URL` set: that server is used instead (nothing is started).
//! - The binaries are looked for in `/usr/lib/postgresql/*/bin`; if missing, Debian's
//!   `postgresql` package is installed, once per machine (under `flock`, with a marker that
//!   stops every later run from retrying a failed install).
//! - `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user
//!   (`runuser`).
//! - A guardian process stops the server (`pg_ctl stop -m immediate`) and removes the folder
//!   once the test process has exited, however it exits (success, failed test, abort).
//!
//! When none of this works, [`postgres_url`] says why, loudly, and returns `None`.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const INSTALL_LOCK: &str = "/tmp/torsion-postgresql-install.lock";
const INSTALL_FAILED: &str = "/tmp/torsion-postgresql-install.failed";

/// The URL of this process's PostgreSQL server, started on first call; `None` (after
/// saying why on stderr) if there can be none.
pub fn postgres_url() -> Option<String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(start) {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            torsion::testing::skip(
                torsion::testing::Missing::Peer,
                format!(
                    "no PostgreSQL server for this test: {why} \
                     (set TORSION_PG_URL=postgres://... to use an existing server)"
                ),
            );
            None
        }
    }
}

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("TORSION_PG_URL") {
        return Ok(url);
    }
    let bin = find_bin().or_else(|_| {
        install()?;
        find_bin()
    })?;
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let dir = std::env::temp_dir().join(format!("torsion-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    if as_root {
        let (uid, gid) = postgres_ids()?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    run(
        as_root,
        &bin.join("initdb"),
        &[
            "-D",
            path(&data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )?;
    guard(&bin, &dir, as_root);
    let mut last = String::new();
    // The free port may be taken between finding and binding it: try a few.
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300",
            path(&dir)
        );
        let log = dir.join("server.log");
        match run(
            as_root,
            &bin.join("pg_ctl"),
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        ) {
            Ok(()) => return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres")),
            Err(e) => {
                last = format!(
                    "{e}; server log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        }
    }
    Err(last)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb` and `pg_ctl`.
fn find_bin() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb/pg_ctl in /usr/lib/postgresql/*/bin".to_owned())
}

/// Installs Debian's `postgresql`, once per machine: concurrent test processes wait on a
/// lock, and a failed attempt leaves a marker so later runs fail fast instead of retrying.
fn install() -> Result<(), String> {
    eprintln!(
        "PostgreSQL is missing: installing Debian's postgresql package (once per machine)..."
    );
    let script = format!(
        "ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0; \
         if [ -e {INSTALL_FAILED} ]; then echo 'an earlier install failed (remove {INSTALL_FAILED} to retry)'; exit 1; fi; \
         (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
         || {{ touch {INSTALL_FAILED}; exit 1; }}"
    );
    let out = Command::new("flock")
        .args([INSTALL_LOCK, "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run flock/apt-get: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "installing postgresql failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn postgres_ids() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "no `postgres` user to run the server as (initdb refuses root)".to_owned())
    };
    Ok((id("-u")?, id("-g")?))
}

/// Runs a PostgreSQL program (as the `postgres` user when we are root).
fn run(as_root: bool, program: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts a detached process that waits for this process to exit, then stops the server and
/// removes its folder.
fn guard(bin: &Path, dir: &Path, as_root: bool) {
    let pg_ctl = bin.join("pg_ctl");
    let runner = if as_root {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
         {runner}{pg_ctl} -D {data} stop -m immediate -w >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = pg_ctl.display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        let _ = writeln!(
            std::io::stderr(),
            "warning: cannot start the PostgreSQL guardian ({e}); stop the server in {} by hand",
            dir.display()
        );
    }
}
