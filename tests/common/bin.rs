//! Programs the tests start, the built binary first of all, run one way everywhere: the binary's
//! environment freed of the caller's `FLUX_*` and `RUST_LOG`, stdout and stderr collected while
//! it runs (so a full pipe never blocks it), a deadline on every wait, and the whole process
//! group killed and reaped on drop, so a failed assertion leaves nothing running.
//!
//! `start` runs on a port that was free a moment before, retried should another process take it
//! first, and counts as started once it answers on that port (see [`serving`]).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_flux-metrics-api");

/// Longest a command run to completion may take before it is killed and the test fails.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a started server may take to answer on its port, and to exit once stopped.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Removes this process's `FLUX_*` and `RUST_LOG` variables from `cmd`'s environment: a test
/// run inside a Flux instance, or with logging turned up, must not change what the binary does.
pub(crate) fn clean_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("FLUX_") || name == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The binary with `args`, in a clean environment.
pub(crate) fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    clean_env(&mut cmd);
    cmd
}

/// Runs the binary with `args` to completion (see [`run_command`]).
pub(crate) fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_command(command(args))
}

/// Runs `cmd` to completion, its stdin empty; kills it and fails the test after
/// [`RUN_TIMEOUT`].
pub(crate) fn run_command(cmd: Command) -> Output {
    Process::spawn(cmd).finish(RUN_TIMEOUT)
}

/// What a finished program printed.
#[derive(Debug)]
pub(crate) struct Output {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// Its standard output (everything, when it was sent to a log file).
    pub(crate) stdout: String,
    /// Its standard error (empty when it was sent to a log file).
    pub(crate) stderr: String,
    what: String,
}

impl Output {
    /// Asserts exit status 0 and no panic; returns `self`.
    pub(crate) fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "{} failed:\n{self}", self.what);
        self.assert_no_panic()
    }

    /// Asserts a non-zero exit status and no panic; returns `self`.
    pub(crate) fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success(),
            "{} succeeded where it should fail:\n{self}",
            self.what
        );
        self.assert_no_panic()
    }

    /// Asserts that nothing panicked: a bad input gets an error, never a panic.
    pub(crate) fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "{} panicked:\n{self}",
            self.what
        );
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n---- stdout ----\n{}---- stderr ----\n{}----",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A program running in a process group of its own. Its stdout and stderr are collected (or
/// written to a log file), complete stdout lines also arrive on a channel for
/// [`Process::until`]. Dropping it kills the whole group and reaps the program.
pub(crate) struct Process {
    child: Child,
    what: String,
    status: Option<ExitStatus>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    log: Option<PathBuf>,
}

impl Process {
    /// Starts `cmd` with stdin empty and stdout and stderr collected.
    pub(crate) fn spawn(mut cmd: Command) -> Process {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut p = Process::start(cmd, None);
        let (tx, lines) = mpsc::channel();
        p.lines = lines;
        let out = p.child.stdout.take().expect("a piped stdout");
        let err = p.child.stderr.take().expect("a piped stderr");
        p.readers = vec![
            collect(out, Arc::clone(&p.stdout), Some(tx)),
            collect(err, Arc::clone(&p.stderr), None),
        ];
        p
    }

    /// Starts `cmd` with stdin empty and stdout and stderr both written to `log`, so that their
    /// lines interleave as on a terminal.
    pub(crate) fn spawn_to(mut cmd: Command, log: &Path) -> Process {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = file.try_clone().expect("duplicating a log file");
        cmd.stdout(file).stderr(err);
        Process::start(cmd, Some(log.to_owned()))
    }

    fn start(mut cmd: Command, log: Option<PathBuf>) -> Process {
        let what = format!("`{}`", describe(&cmd));
        cmd.stdin(Stdio::null()).process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process {
            child,
            what,
            status: None,
            lines: mpsc::channel().1,
            stdout: Arc::default(),
            stderr: Arc::default(),
            readers: Vec::new(),
            log,
        }
    }

    /// Its process id (and process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, `STOP`, ...) to the program (not its group), through
    /// kill(1): the tests have no libc binding of their own.
    pub(crate) fn signal(&self, signal: &str) {
        send_signal(signal, self.pid());
    }

    /// Its exit status, waiting at most `within`; `None` if it still runs then.
    pub(crate) fn wait_for(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => break,
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
        }
        self.status
    }

    /// Its exit status, waiting at most `within`; fails the test (and kills it) if it still
    /// runs then.
    pub(crate) fn wait(&mut self, within: Duration) -> ExitStatus {
        match self.wait_for(within) {
            Some(status) => status,
            None => {
                self.kill();
                panic!(
                    "{} still ran after {within:?}, and was killed\n{}",
                    self.what,
                    self.report()
                );
            }
        }
    }

    /// Whether it has exited (without waiting).
    pub(crate) fn has_exited(&mut self) -> bool {
        self.wait_for(Duration::ZERO).is_some()
    }

    /// Reads stdout lines until one starts with `prefix`; returns the lines before it and that
    /// line. Fails the test if none comes before `deadline` or the program ends first.
    pub(crate) fn until(&mut self, prefix: &str, deadline: Instant) -> (Vec<String>, String) {
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return (before, line),
                Ok(line) => before.push(line),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no line starting with {prefix:?} in time\n{}",
                    self.what,
                    self.report()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_for(Duration::from_secs(5));
                    panic!(
                        "{} ended ({status:?}) before printing a line starting with {prefix:?}\n{}",
                        self.what,
                        self.report()
                    )
                }
            }
        }
    }

    /// What it printed on stdout so far (or in its log file).
    pub(crate) fn stdout(&self) -> String {
        match &self.log {
            Some(log) => std::fs::read_to_string(log).unwrap_or_default(),
            None => text(&self.stdout),
        }
    }

    /// What it printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// Everything it printed so far, for failure messages.
    pub(crate) fn report(&self) -> String {
        format!(
            "---- stdout of {} so far ----\n{}---- stderr so far ----\n{}----",
            self.what,
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits (at most `within`, failing the test after that) for it to exit, and returns what
    /// it printed.
    pub(crate) fn finish(mut self, within: Duration) -> Output {
        let status = self.wait(within);
        // The pipes close when the program exits, unless something it started holds them: the
        // readers get a moment, not a hang.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Output {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
            what: self.what.clone(),
        }
    }

    /// Sends `signal`, then waits (at most [`START_TIMEOUT`]) for it to exit and returns what
    /// it printed.
    pub(crate) fn stop(self, signal: &str) -> Output {
        self.signal(signal);
        self.finish(START_TIMEOUT)
    }

    /// Kills its whole process group and reaps it.
    pub(crate) fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        // A negative pid names the process group: the program and everything it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A thread copying `from` into `into`, sending each complete line on `lines`.
fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    lines: Option<Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        let mut line = Vec::new();
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut buf) = into.lock() {
                buf.extend_from_slice(&chunk[..n]);
            }
            let Some(tx) = &lines else { continue };
            for &b in &chunk[..n] {
                if b == b'\n' {
                    let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                    line.clear();
                } else {
                    line.push(b);
                }
            }
        }
    })
}

fn text(buf: &Mutex<Vec<u8>>) -> String {
    buf.lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `cmd` as a command line, for messages.
fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let name = if program == Path::new(BIN) {
        "flux-metrics-api".into()
    } else {
        program.to_string_lossy()
    };
    std::iter::once(name)
        .chain(cmd.get_args().map(OsStr::to_string_lossy))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends `signal` to `pid` through kill(1); fails the test if kill does.
pub(crate) fn send_signal(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// A TCP port that was free when asked (another process may take it before it is used:
/// [`try_start`] retries).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding port 0")
}

/// Whether a server accepts connections on `port`. A bound port is not enough: `main` binds
/// before the server loads its certificates and scripts, and the kernel completes connections
/// to a bound port by itself. So this sends a record no TLS or HTTP server accepts and waits
/// for the answer (an alert, an error or a close) that only an accepting server gives; it
/// reaches no handler and is not logged as a request.
pub(crate) fn serving(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    if stream
        .write_all(b"\x16\x03\x01\x00\x01\x00\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut byte = [0u8; 1];
    // Any answer will do: a byte (of an alert), or end of file or a reset (a close).
    match stream.read_exact(&mut byte) {
        Ok(()) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A server started by [`start`], killed on drop unless stopped first.
pub(crate) struct Started {
    /// The running program.
    pub(crate) process: Process,
    /// The port it serves on (on 127.0.0.1).
    pub(crate) port: u16,
}

impl Started {
    /// Sends `signal` and returns what it printed once it exited (see [`Process::stop`]).
    pub(crate) fn stop(self, signal: &str) -> Output {
        self.process.stop(signal)
    }
}

/// Starts a server with `spawn(port)` on a free port, and waits until it answers there (at most
/// [`START_TIMEOUT`]). Should the port be taken meanwhile, tries again on another.
///
/// # Errors
/// What the server printed if it exited before serving, or a time-out.
pub(crate) fn try_start(mut spawn: impl FnMut(u16) -> Process) -> Result<Started, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut process = spawn(port);
        let deadline = Instant::now() + START_TIMEOUT;
        while !serving(port) {
            if process.has_exited() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not answer on its port within {START_TIMEOUT:?}\n{}",
                    process.report()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !process.has_exited() {
            return Ok(Started { process, port });
        }
        last = format!(
            "the server exited ({:?}) before serving\n{}",
            process.status,
            process.report()
        );
        if !last.contains("in use") {
            break;
        }
    }
    Err(last)
}

/// [`try_start`], failing the test if the server does not serve.
pub(crate) fn start(spawn: impl FnMut(u16) -> Process) -> Started {
    try_start(spawn).unwrap_or_else(|e| panic!("{e}"))
}

/// `start --insecure-http` on 127.0.0.1, replaying `replay`, with `extra` arguments.
pub(crate) fn start_replay(replay: &Path, extra: &[&str]) -> Started {
    start(|port| {
        let mut cmd = command(["start", "--insecure-http", "--host", "127.0.0.1"]);
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--replay")
            .arg(replay)
            .args(extra);
        Process::spawn(cmd)
    })
}

/// `GET path` over plain HTTP/1.0 (so the body is neither chunked nor kept alive) to
/// 127.0.0.1:`port`: the status code and the body. Gives up after 30 s without an answer.
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    Ok((status, body.to_owned()))
}
