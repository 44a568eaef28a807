//! One `redis-server` OS process: port choice, launch, watchdog, signals, teardown.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{SpawnError, SpawnErrorKind};

/// Ports at or above this are refused: a cluster node's bus port is `port + 10000`.
pub(crate) const MAX_PORT: u16 = 55535;

/// How many kernel-assigned ports to look at before giving up on finding one below
/// [`MAX_PORT`].
const PORT_CANDIDATES: usize = 64;

/// A free loopback port below [`MAX_PORT`]: bind `127.0.0.1:0`, read the port, drop the listener.
///
/// Ports that are too high stay bound until a good one is found so the kernel does not hand them
/// out again.
pub(crate) fn free_port() -> Result<u16, SpawnError> {
    let mut too_high = Vec::new();
    for _ in 0..PORT_CANDIDATES {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| SpawnError::io("binding 127.0.0.1:0 to pick a port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| SpawnError::io("reading the picked port", e))?
            .port();
        if port < MAX_PORT {
            return Ok(port);
        }
        too_high.push(listener);
    }
    Err(SpawnError::new(
        SpawnErrorKind::NoFreePort,
        format!("no free loopback port below {MAX_PORT} after {PORT_CANDIDATES} tries"),
    ))
}

/// Everything needed to (re)start the server, except the port.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) bin: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) extra_args: Vec<OsString>,
    /// `--tls-cert-file ...` and the rest of a TLS server's arguments (its port apart).
    pub(crate) tls_args: Vec<OsString>,
}

impl Launch {
    /// The full argument list for `port` (and `tls_port` for a TLS server).
    ///
    /// Order: config file, overridable defaults (`--save ""`, `--appendonly no`), the caller's
    /// extra arguments, then the enforced ones (`--port`, `--bind 127.0.0.1`, `--daemonize no`,
    /// `--dir`, `--logfile`, and `--tls-port` with the certificate files), which therefore
    /// always win.
    pub(crate) fn args(&self, port: u16, tls_port: Option<u16>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(conf) = &self.config_file {
            args.push(conf.into());
        }
        args.extend(["--save", "", "--appendonly", "no"].map(OsString::from));
        args.extend(self.extra_args.iter().cloned());
        args.extend(
            [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
            ]
            .map(OsString::from),
        );
        args.push("--dir".into());
        args.push(self.dir.clone().into());
        args.push("--logfile".into());
        args.push(self.log_path.clone().into());
        if let Some(tls_port) = tls_port {
            args.push("--tls-port".into());
            args.push(tls_port.to_string().into());
            args.extend(self.tls_args.iter().cloned());
        }
        args
    }
}

/// A running (or exited but not yet reaped) `redis-server` and its watchdog.
///
/// Dropping it SIGCONTs (if stopped), SIGKILLs and reaps the server, then the watchdog.
#[derive(Debug)]
pub(crate) struct Process {
    child: Child,
    watchdog: Option<Child>,
    stopped: bool,
}

impl Process {
    /// Starts the server on `port`; stdout and stderr are appended to the log file, so errors
    /// printed before the log file is opened (bad arguments) end up there too.
    pub(crate) fn start(launch: &Launch, port: u16, tls_port: Option<u16>) -> io::Result<Self> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&launch.log_path)?;
        let child = Command::new(&launch.bin)
            .args(launch.args(port, tls_port))
            .current_dir(&launch.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let watchdog = spawn_watchdog(child.id(), &launch.dir);
        Ok(Self {
            child,
            watchdog,
            stopped: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (a stopped process has not).
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// SIGSTOP.
    pub(crate) fn stop(&mut self) -> io::Result<()> {
        signal(self.pid(), "STOP")?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self) -> io::Result<()> {
        signal(self.pid(), "CONT")?;
        self.stopped = false;
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The watchdog first, so it can never fire at a pid that has been reused.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.stopped && !self.has_exited() {
            let _ = signal(self.pid(), "CONT");
        }
        // Fails only if the child was already reaped; `wait` then returns the cached status.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sh` that blocks reading a pipe whose write end only this process holds (it is
/// close-on-exec), and at end of file, i.e. once this process has exited, SIGKILLs `pid` and
/// removes `dir` (the server's `TempDir`, whose destructor will not run either).
///
/// This is what cleans up servers kept in `static`s, which are never dropped. On a normal drop
/// the watchdog is killed first and does nothing. Best effort: without `sh` there is no watchdog
/// and such servers outlive the test.
fn spawn_watchdog(pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .args([
            "-c",
            r#"read _ ; kill -9 "$1" 2>/dev/null ; rm -rf -- "$2""#,
            "cachette-redis-watchdog",
        ])
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Sends `SIG<name>` to `pid` with the shell's `kill` (no `unsafe`, no extra crate).
pub(crate) fn signal(pid: u32, name: &str) -> io::Result<()> {
    let output = Command::new("sh")
        .args(["-c", r#"kill -s "$1" "$2""#, "sh", name])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {name} {pid} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// The log file's contents (lossy UTF-8), or an empty string if it does not exist yet.
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
