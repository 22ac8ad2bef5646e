//! Re-runs the `console` blocks of README.md, docs/*.md and example/README.md and compares what
//! each command prints with what the block shows, so that a captured output cannot go stale; and
//! checks that every relative link of those files (and manifests/README.md) points to a file,
//! and a heading, that exists. docs/development.md explains the same conventions to writers.
//!
//! # How a `console` block is read
//!
//! - Only blocks fenced as ```` ```console ```` are run. Use `sh` for a command to copy and `text`
//!   for output that is not a command's (a log excerpt).
//! - A block whose last non-blank line before the fence is `<!-- not run: REASON -->` is not
//!   run and is counted as skipped for REASON: use it for blocks that need a Kubernetes cluster,
//!   docker, kind or a live Flux broker.
//! - A `$ ` line is a command (one line each); the lines after it up to the next `$ ` are what it
//!   prints, stdout and stderr together as a terminal shows them. A line `...` matches any number
//!   of lines. Trailing blanks of a line are not compared.
//! - The blocks of a file run in order, as one session: every command runs in its own
//!   `bash -c` in the repository root, so `cd` and variables do not carry over, files do.
//!   `flux-metrics-api` is the binary cargo built for this test; `cargo run -- ` is the same.
//! - `flux-metrics-api start ... --port 18451` as a plain command line (no pipe, redirection,
//!   quote or `$`) starts the file's server in the background. The test waits until it answers
//!   on its port (see [`serving`]); later commands talk to it until the next `start`; it is
//!   stopped at the next `start` and at the end of the file (and by a drop guard on panic). The lines shown under such a `start` are
//!   compared, when it stops, with what it printed, followed by an implied `...` (it goes on
//!   logging requests). A `start` in a pipeline (`start ... 2>&1 | tail -1`) is an ordinary
//!   command: it must exit by itself, as a start that fails does.
//! - The documents say port 18451. Each server gets a free port of its own, written for 18451
//!   in the commands and back to 18451 in the outputs, so that files (and several checkouts) run
//!   in parallel. Likewise `/tmp/` in a command is a scratch directory of the file's own,
//!   removed at the end.
//! - Before comparing, both sides are normalised (see [`normalise`]): RFC 3339 timestamps; the
//!   duration of `took 357us`; the numbers after `latency_us=`, `rounds: `, `"broker_rounds":`
//!   and `"answer_age_seconds":`; and the target of a log line (`INFO flux_metrics::server:`),
//!   which names a module and moves when modules do. Everything else must match exactly.
//! - Commands run without `FLUX_URI`, `FLUX_CORE_LIB`, `RUST_LOG` or any `FLUX_METRICS_*`
//!   variable, with `LC_ALL=C` and a `KUBECONFIG` that names no file.
//! - Every program a run block names must be on PATH. When one is missing (curl, jq, kubectl,
//!   openssl: `bash .ci/docs-deps.sh` installs them), the whole file is skipped with a SKIPPED
//!   line naming it, since its blocks build on each other.
//!
//! A difference fails the test with the file, the line of the command and a diff of the
//! normalised lines. `FLUX_METRICS_BLESS=1 cargo test --test docs` (the variable tests/deploy.rs
//! also reads) instead rewrites the expected output of every ordinary command that differs with
//! what it printed (review it with `git diff`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use common::TempDir;
use common::bin::{self, Process, Started, free_port};

/// The port the documents show.
const DOC_PORT: &str = "18451";
/// Longest an ordinary command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Words that start a shell construct rather than name a program.
const SHELL_WORDS: [&str; 16] = [
    "time", "do", "then", "else", "!", "{", "}", "for", "while", "until", "if", "elif", "done",
    "fi", "in", "case",
];
/// Bash builtins the documents use: no program to look for on PATH.
const BUILTINS: [&str; 10] = [
    "echo", "cd", "printf", "test", "[", "true", "false", "export", "set", "read",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, docs/*.md and example/README.md: the files whose console blocks are run.
fn documents() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("reading docs/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".md").then(|| format!("docs/{name}"))
        })
        .collect();
    docs.sort();
    docs.insert(0, "README.md".to_owned());
    docs.push("example/README.md".to_owned());
    docs
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// One `$ ` line of a block and the output shown under it.
#[derive(Debug)]
struct Cmd {
    /// 1-based line of the `$ ` line.
    line: usize,
    /// The command, without `$ `.
    text: String,
    /// The output lines shown, indentation of the block removed.
    expected: Vec<String>,
    /// 0-based index range of `expected` in the file's lines (for FLUX_METRICS_BLESS).
    span: std::ops::Range<usize>,
}

/// A ```` ```console ```` block.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The indentation of the fence, which every line of the block carries.
    indent: String,
    /// REASON of a preceding `<!-- not run: REASON -->`.
    not_run: Option<String>,
    cmds: Vec<Cmd>,
}

/// The reason of a `<!-- not run: REASON -->` line.
fn not_run_reason(line: &str) -> Option<String> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    Some(inner.strip_prefix("not run:")?.trim().to_owned())
}

/// The console blocks of `text` (the file `name`).
fn parse(name: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    let mut last_text: Option<(usize, &str)> = None;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            let indent = line[..line.len() - trimmed.len()].to_owned();
            let start = i;
            i += 1;
            while i < lines.len() && lines[i].trim() != "```" {
                i += 1;
            }
            assert!(i < lines.len(), "{name}:{}: unclosed code block", start + 1);
            let not_run = last_text.and_then(|(_, l)| not_run_reason(l));
            if info.trim() == "console" {
                let cmds = parse_console(name, &lines, start + 1..i, &indent);
                blocks.push(Block {
                    line: start + 1,
                    indent,
                    not_run,
                    cmds,
                });
            } else {
                assert!(
                    not_run.is_none(),
                    "{name}:{}: `<!-- not run -->` before a `{}` block: only console blocks are run",
                    start + 1,
                    info.trim()
                );
            }
            last_text = None;
        } else if !line.trim().is_empty() {
            if let Some((at, prev)) = last_text {
                assert!(
                    not_run_reason(prev).is_none(),
                    "{name}:{}: `<!-- not run -->` must come right before a ```console block",
                    at + 1
                );
            }
            last_text = Some((i, line));
        }
        i += 1;
    }
    blocks
}

/// The commands of the block body `body` (line indices into `lines`).
fn parse_console(
    name: &str,
    lines: &[&str],
    body: std::ops::Range<usize>,
    indent: &str,
) -> Vec<Cmd> {
    let mut cmds: Vec<Cmd> = Vec::new();
    for i in body {
        let line = lines[i]
            .strip_prefix(indent)
            .unwrap_or(lines[i].trim_start());
        if let Some(text) = line.strip_prefix("$ ") {
            cmds.push(Cmd {
                line: i + 1,
                text: text.trim().to_owned(),
                expected: Vec::new(),
                span: i + 1..i + 1,
            });
        } else {
            let cmd = cmds.last_mut().unwrap_or_else(|| {
                panic!(
                    "{name}:{}: a console block must start with a `$ ` command line",
                    i + 1
                )
            });
            cmd.expected.push(line.to_owned());
            cmd.span.end = i + 1;
        }
    }
    cmds
}

// ---------------------------------------------------------------------------------------------
// Normalising and comparing

/// Whether `s[at..]` starts with an RFC 3339 timestamp; its length if so.
fn timestamp_len(s: &[u8], at: usize) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if s.len() < at + shape.len() {
        return None;
    }
    for (k, &c) in shape.iter().enumerate() {
        let b = s[at + k];
        let ok = if c == b'd' {
            b.is_ascii_digit()
        } else {
            b == c
        };
        if !ok {
            return None;
        }
    }
    let mut end = at + shape.len();
    if s.get(end) == Some(&b'.') && s.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end += 1;
        while s.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    match s.get(end) {
        Some(b'Z') => Some(end + 1 - at),
        Some(b'+' | b'-') if s.len() >= end + 6 && s[end + 3] == b':' => Some(end + 6 - at),
        _ => Some(end - at),
    }
}

/// `line` with every RFC 3339 timestamp written `<time>`.
fn normalise_timestamps(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_digit();
        if boundary && let Some(n) = timestamp_len(bytes, i) {
            out.push_str("<time>");
            i += n;
            continue;
        }
        let c = line[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `line` with the number (and, with `unit`, the unit letters) after every `prefix` written
/// `<n>`.
fn normalise_after(line: &str, prefix: &str, unit: bool) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(after.len());
        out.push_str(&rest[..at + prefix.len()]);
        if digits == 0 {
            rest = after;
            continue;
        }
        let mut end = digits;
        if unit {
            end += after[digits..]
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(after.len() - digits);
        }
        out.push_str("<n>");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `line` (timestamps already normalised) with the target of a log line written `<target>`:
/// `<time>  INFO flux_metrics::server: ...` → `<time>  INFO <target>: ...`.
fn normalise_log_target(line: &str) -> String {
    let Some(rest) = line.strip_prefix("<time>") else {
        return line.to_owned();
    };
    let after_space = rest.trim_start();
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        let Some(tail) = after_space.strip_prefix(level) else {
            continue;
        };
        let Some(tail) = tail.strip_prefix(' ') else {
            continue;
        };
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let target = &tail[..end];
        if let Some(target) = target.strip_suffix(':')
            && !target.is_empty()
            && tail[end..].starts_with(' ')
        {
            let head = &line[..line.len() - tail.len()];
            return format!("{head}<target>:{}", &tail[end..]);
        }
    }
    line.to_owned()
}

/// `line` with the hex digits of a commit after every `prefix` written `<commit>`.
fn normalise_commit(line: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let hex = after
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len());
        out.push_str(&rest[..at + prefix.len()]);
        if hex >= 7 {
            out.push_str("<commit>");
        } else {
            out.push_str(&after[..hex]);
        }
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

/// One line as it is compared: timestamps, commits, varying durations and counters, and log
/// targets replaced by placeholders, trailing blanks dropped.
fn normalise(line: &str) -> String {
    let mut l = normalise_timestamps(line.trim_end());
    for prefix in ["\"gitCommit\":\"", "(commit ", "revision=\""] {
        l = normalise_commit(&l, prefix);
    }
    l = normalise_after(&l, "took ", true);
    for prefix in [
        "latency_us=",
        "rounds: ",
        "\"broker_rounds\":",
        "\"answer_age_seconds\":",
    ] {
        l = normalise_after(&l, prefix, false);
    }
    normalise_log_target(&l)
}

/// Whether `got` matches `expected`, where an expected line `...` matches any number of lines
/// (glob matching over lines, backtracking to the last `...`).
fn matches(expected: &[String], got: &[String]) -> bool {
    let (mut e, mut g) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while g < got.len() {
        if e < expected.len() && expected[e] == "..." {
            star = Some((e, g));
            e += 1;
        } else if e < expected.len() && expected[e] == got[g] {
            e += 1;
            g += 1;
        } else if let Some((se, sg)) = star {
            e = se + 1;
            g = sg + 1;
            star = Some((se, sg + 1));
        } else {
            return false;
        }
    }
    expected[e..].iter().all(|l| l == "...")
}

/// A line diff of `expected` and `got` (longest common subsequence; `...` shown as is).
fn diff(expected: &[String], got: &[String]) -> String {
    let (n, m) = (expected.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == got[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    // The line just removed, to point at where a changed line changes.
    let mut removed: Option<&str> = None;
    while i < n || j < m {
        if i < n && j < m && expected[i] == got[j] {
            let _ = writeln!(out, "      {}", expected[i]);
            removed = None;
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "    - {}", expected[i]);
            removed = Some(&expected[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "    + {}", got[j]);
            if let Some(old) = removed.take() {
                let _ = writeln!(out, "{}", first_difference(old, &got[j]));
            }
            j += 1;
        }
    }
    out
}

/// Where two lines first differ, with a little context, for lines too long to compare by eye.
fn first_difference(expected: &str, got: &str) -> String {
    let at = expected
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map_or(expected.len().min(got.len()), |((i, _), _)| i);
    let around = |s: &str| -> String {
        let start = s[..at.min(s.len())]
            .char_indices()
            .rev()
            .nth(20)
            .map_or(0, |(i, _)| i);
        s[start..].chars().take(50).collect()
    };
    format!(
        "      (column {}: - ...{}  + ...{})",
        at + 1,
        around(expected),
        around(got)
    )
}

// ---------------------------------------------------------------------------------------------
// Which programs a command line runs

/// The simple commands of a command line: split at `|`, `;`, `&&`, `||` and `&` outside quotes;
/// `$( ... )` contents are commands of their own.
fn simple_commands(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if single {
            single = c != '\'';
        } else if c == '\'' && !double {
            single = true;
        } else if c == '"' {
            double = !double;
        } else if c == '$' && chars.get(i + 1) == Some(&'(') {
            let mut depth = 0;
            let mut j = i + 1;
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
            out.extend(simple_commands(&inner));
            current.push('X');
            i = j + 1;
            continue;
        } else if !double && matches!(c, '|' | ';' | '&') {
            let redirection =
                c == '&' && (i > 0 && chars[i - 1] == '>' || chars.get(i + 1) == Some(&'>'));
            if !redirection {
                out.push(std::mem::take(&mut current));
                i += 1;
                continue;
            }
        }
        current.push(c);
        i += 1;
    }
    out.push(current);
    out.retain(|c| !c.trim().is_empty());
    out
}

/// Whether `word` is `NAME=value`.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The programs a command line runs (not builtins or shell keywords).
fn programs(line: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for cmd in simple_commands(line) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if words.first().is_some_and(|w| matches!(*w, "for" | "case")) {
            continue;
        }
        let program = words
            .iter()
            .find(|w| !is_assignment(w) && !SHELL_WORDS.contains(w));
        if let Some(p) = program
            && !BUILTINS.contains(p)
        {
            out.insert((*p).to_owned());
        }
    }
    out
}

/// Whether `program` can be run: a path that exists, or a name found on PATH.
fn on_path(program: &str) -> bool {
    if program == "flux-metrics-api" {
        return true;
    }
    if program.contains('/') {
        return root().join(program).exists();
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let p = dir.join(program);
            std::fs::metadata(&p).is_ok_and(|m| m.is_file())
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Running

/// A scratch directory of one document: `bin/flux-metrics-api` (the binary under test), `tmp/`
/// (what `/tmp/` means in its commands) and the output files. Removed on drop.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new(index: usize) -> Scratch {
        let dir = TempDir::new(&format!("docs-{index}"));
        std::fs::create_dir_all(dir.path().join("bin")).expect("creating the scratch directory");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("creating the scratch directory");
        std::os::unix::fs::symlink(bin::BIN, dir.path().join("bin/flux-metrics-api"))
            .expect("linking the binary into the scratch directory");
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn tmp(&self) -> String {
        format!("{}/tmp", self.path().display())
    }

    /// A command prepared to run as the documents' commands do.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        bin::clean_env(&mut cmd).current_dir(root());
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.path().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("a valid PATH"))
            .env("LC_ALL", "C")
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", self.path().join("no-kubeconfig"))
            .env("KUBECACHEDIR", self.path().join("kube-cache"));
        cmd
    }

    /// Runs `cmd` with stdout and stderr in the output file `name`, so their lines interleave as
    /// on a terminal.
    fn spawn(&self, cmd: Command, name: &str) -> Process {
        Process::spawn_to(cmd, &self.path().join(name))
    }
}

/// `s` with every `from` not part of a longer number replaced by `to`.
fn replace_number(s: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(from) {
        let before = if at > 0 {
            rest[..at].chars().last()
        } else {
            out.chars().last()
        };
        let before_digit = before.is_some_and(|c| c.is_ascii_digit());
        let after_digit = rest[at + from.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit());
        out.push_str(&rest[..at]);
        out.push_str(if before_digit || after_digit {
            from
        } else {
            to
        });
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` runs `flux-metrics-api start` (in the background or not).
fn is_start(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.contains(&"flux-metrics-api") && words.contains(&"start")
}

/// The words of a background `start` line, or `None` if `text` is not one.
fn background_start(text: &str) -> Option<Vec<String>> {
    if text.contains(['|', '>', '<', ';', '&', '\'', '"', '$', '`']) {
        return None;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let program = words.iter().position(|w| !is_assignment(w))?;
    if words[program] != "flux-metrics-api" {
        return None;
    }
    let sub = words[program + 1..].iter().find(|w| !w.starts_with('-'))?;
    (*sub == "start").then(|| words.iter().map(|w| (*w).to_owned()).collect())
}

/// The server a `start` line started, killed on drop (also when a panic unwinds).
struct Server {
    started: Started,
    line: usize,
    expected: Vec<String>,
}

impl Server {
    /// Starts `words` (assignments, `flux-metrics-api`, arguments) with `--port 18451` replaced
    /// by a free port, and waits until it serves. `Err` holds what it printed if it exited
    /// first.
    fn start(scratch: &Scratch, words: &[String], cmd: &Cmd) -> Result<Server, String> {
        if !words.iter().any(|w| w == DOC_PORT) {
            return Err(format!(
                "a background `start` must listen on --port {DOC_PORT}, which the test replaces with a free port"
            ));
        }
        let mut attempt = 0;
        let started = bin::try_start(|port| {
            attempt += 1;
            let mut command = scratch.command(bin::BIN);
            command.arg0("flux-metrics-api");
            let mut args = words.iter().skip_while(|w| is_assignment(w));
            for w in words.iter().take_while(|w| is_assignment(w)) {
                let (k, v) = w.split_once('=').expect("an assignment");
                command.env(k, v.replace("/tmp/", &format!("{}/", scratch.tmp())));
            }
            args.next(); // flux-metrics-api
            for a in args {
                let a = replace_number(a, DOC_PORT, &port.to_string());
                command.arg(a.replace("/tmp/", &format!("{}/", scratch.tmp())));
            }
            scratch.spawn(command, &format!("server-{}-{attempt}.log", cmd.line))
        })?;
        Ok(Server {
            started,
            line: cmd.line,
            expected: cmd.expected.clone(),
        })
    }

    fn port(&self) -> u16 {
        self.started.port
    }

    /// Stops the server and compares what it printed with the lines shown under its `start`.
    fn stop(mut self, run: &mut Run<'_>) {
        self.started.process.kill();
        if self.expected.is_empty() {
            return;
        }
        let printed = self.started.process.stdout();
        let got = run.output_lines(&printed, Some(self.port()));
        let mut expected: Vec<String> = self.expected.iter().map(|l| normalise(l)).collect();
        expected.push("...".to_owned());
        if !matches(&expected, &got) {
            run.failures.push(format!(
                "{}:{}: what the server printed differs from the lines under its `start` (followed by an implied `...`):\n{}",
                run.name,
                self.line,
                diff(&expected, &got)
            ));
        }
    }
}

/// What one document's run found.
#[derive(Default)]
struct Report {
    ran: usize,
    commands: usize,
    /// (line of the block, reason).
    skipped: Vec<(usize, String)>,
    /// A SKIPPED line for the whole file.
    file_skipped: Option<String>,
    failures: Vec<String>,
    blessed: usize,
}

/// The run of one document.
struct Run<'a> {
    name: &'a str,
    scratch: Scratch,
    failures: Vec<String>,
    /// Expected-output replacements for FLUX_METRICS_BLESS: (span, new lines, indent).
    bless: Vec<(std::ops::Range<usize>, Vec<String>, String)>,
}

impl Run<'_> {
    /// `text` as the document would show it: the server's port written 18451, the scratch
    /// directory written `/tmp`, and without the trailing empty lines.
    fn doc_form(&self, text: &str, port: Option<u16>) -> Vec<String> {
        let mut text = text.replace(&self.scratch.tmp(), "/tmp");
        if let Some(port) = port {
            text = replace_number(&text, &port.to_string(), DOC_PORT);
        }
        let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_owned()).collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }

    /// `text` in document form, normalised.
    fn output_lines(&self, text: &str, port: Option<u16>) -> Vec<String> {
        self.doc_form(text, port)
            .iter()
            .map(|l| normalise(l))
            .collect()
    }

    /// Runs an ordinary command line and compares its output.
    fn run_command(&mut self, cmd: &Cmd, indent: &str, port: u16) {
        let text = cmd
            .text
            .replace("/tmp/", &format!("{}/", self.scratch.tmp()));
        let text = replace_number(&text, DOC_PORT, &port.to_string());
        let mut bash = self.scratch.command("bash");
        bash.arg("-c").arg(&text);
        let mut child = self
            .scratch
            .spawn(bash, &format!("command-{}.out", cmd.line));
        let status = child.wait_for(COMMAND_TIMEOUT);
        child.kill();
        let printed = child.stdout();
        let got = self.output_lines(&printed, Some(port));
        let expected: Vec<String> = cmd.expected.iter().map(|l| normalise(l)).collect();
        if matches(&expected, &got) {
            return;
        }
        if std::env::var_os("FLUX_METRICS_BLESS").is_some() {
            self.bless.push((
                cmd.span.clone(),
                self.doc_form(&printed, Some(port)),
                indent.to_owned(),
            ));
            return;
        }
        let status = match status {
            Some(s) => describe(s),
            None => format!("killed after {COMMAND_TIMEOUT:?}"),
        };
        self.failures.push(format!(
            "{}:{}: the output of `{}` differs ({status}); - expected (line {}), + got:\n{}",
            self.name,
            cmd.line,
            cmd.text,
            cmd.span.start + 1,
            diff(&expected, &got)
        ));
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// Runs the console blocks of document `name`.
fn run_document(index: usize, name: &str) -> Report {
    let path = root().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let blocks = parse(name, &text);
    let mut report = Report::default();

    let missing: BTreeSet<String> = blocks
        .iter()
        .filter(|b| b.not_run.is_none())
        .flat_map(|b| b.cmds.iter().flat_map(|c| programs(&c.text)))
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        let tools: Vec<_> = missing.into_iter().collect();
        report.file_skipped = Some(format!(
            "SKIPPED: tests/docs.rs {name}: needs {}, not on PATH (bash .ci/docs-deps.sh installs curl, jq, kubectl and openssl)",
            tools.join(", ")
        ));
        report.skipped = blocks
            .iter()
            .map(|b| {
                let reason = b
                    .not_run
                    .clone()
                    .unwrap_or_else(|| format!("needs {}", tools.join(", ")));
                (b.line, reason)
            })
            .collect();
        return report;
    }

    let mut run = Run {
        name,
        scratch: Scratch::new(index),
        failures: Vec::new(),
        bless: Vec::new(),
    };
    let mut server: Option<Server> = None;
    for block in &blocks {
        if let Some(reason) = &block.not_run {
            report.skipped.push((block.line, reason.clone()));
            continue;
        }
        report.ran += 1;
        for cmd in &block.cmds {
            report.commands += 1;
            let text = cmd.text.strip_prefix("cargo run -- ").map_or_else(
                || cmd.text.clone(),
                |rest| format!("flux-metrics-api {rest}"),
            );
            let cmd = Cmd {
                text,
                line: cmd.line,
                expected: cmd.expected.clone(),
                span: cmd.span.clone(),
            };
            if let Some(words) = background_start(&cmd.text) {
                if let Some(previous) = server.take() {
                    previous.stop(&mut run);
                }
                match Server::start(&run.scratch, &words, &cmd) {
                    Ok(s) => server = Some(s),
                    Err(e) => run
                        .failures
                        .push(format!("{name}:{}: `{}`: {e}", cmd.line, cmd.text)),
                }
            } else {
                // A start that is to fail gets a port of its own: should it serve after all, it
                // must not take another file's port (or 18451, which a person may be using).
                let port = match &server {
                    Some(s) if !is_start(&cmd.text) => s.port(),
                    _ => free_port(),
                };
                run.run_command(&cmd, &block.indent, port);
            }
        }
    }
    if let Some(s) = server.take() {
        s.stop(&mut run);
    }

    if !run.bless.is_empty() {
        report.blessed = run.bless.len();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        run.bless
            .sort_by_key(|(span, _, _)| std::cmp::Reverse(span.start));
        for (span, new, indent) in run.bless {
            let new: Vec<String> = new
                .iter()
                .map(|l| format!("{indent}{l}").trim_end().to_owned())
                .collect();
            lines.splice(span, new);
        }
        let mut out = lines.join("\n");
        out.push('\n');
        std::fs::write(&path, out).unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }
    report.failures = run.failures;
    report
}

/// `n` and `noun`, plural when `n` is not 1.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[test]
fn console_blocks_print_what_they_show() {
    let docs = documents();
    let reports: Vec<(String, Report)> = std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .iter()
            .enumerate()
            .map(|(i, name)| (name, scope.spawn(move || run_document(i, name))))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let report = h.join().unwrap_or_else(|panic| {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    Report {
                        failures: vec![format!("{name}: panicked: {msg}")],
                        ..Report::default()
                    }
                });
                (name.clone(), report)
            })
            .collect()
    });

    // Written to the real stderr, past libtest's capture, so that .ci/run's summary shows it.
    let mut summary = String::new();
    let (mut ran, mut commands, mut blessed) = (0, 0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, r) in &reports {
        ran += r.ran;
        commands += r.commands;
        blessed += r.blessed;
        if let Some(line) = &r.file_skipped {
            let _ = writeln!(summary, "{line}");
        }
        let _ = writeln!(
            summary,
            "docs: {name}: ran {} ({}), skipped {}{}",
            count(r.ran, "console block"),
            count(r.commands, "command"),
            r.skipped.len(),
            if r.blessed > 0 {
                format!(
                    ", rewrote {} (FLUX_METRICS_BLESS)",
                    count(r.blessed, "output")
                )
            } else {
                String::new()
            }
        );
        for (_, reason) in &r.skipped {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
        failures.extend(r.failures.iter().cloned());
    }
    let skipped: usize = reasons.values().sum();
    let _ = writeln!(
        summary,
        "docs: ran {} ({}), skipped {skipped}{}",
        count(ran, "console block"),
        count(commands, "command"),
        if blessed > 0 {
            format!(", rewrote {}", count(blessed, "output"))
        } else {
            String::new()
        }
    );
    for (reason, n) in &reasons {
        let _ = writeln!(summary, "docs:   skipped {n}: {reason}");
    }
    let _ = std::io::stderr().write_all(summary.as_bytes());
    assert!(ran > 0, "no console block was run");
    assert!(
        failures.is_empty(),
        "{} console command(s) differ from their documents (FLUX_METRICS_BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Links

/// The anchor GitHub gives a heading: lower-case, punctuation but `-` and `_` dropped, spaces
/// made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of the headings of a Markdown text (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code blocks
/// and code spans, with their 1-based lines.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: odd-numbered pieces between backticks.
        let plain: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn relative_links_point_to_files_and_headings_that_exist() {
    let mut docs = documents();
    docs.push("manifests/README.md".to_owned());
    let mut broken = Vec::new();
    for name in &docs {
        let text = std::fs::read_to_string(root().join(name)).expect("reading a document");
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                root().join(name)
            } else {
                root().join(dir).join(file)
            };
            if !path.exists() {
                broken.push(format!("{name}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{name}:{line}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The harness's own rules

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

#[test]
fn dots_match_any_number_of_lines() {
    let got = strings(&["a", "b", "c", "d"]);
    assert!(matches(&strings(&["a", "...", "d"]), &got));
    assert!(matches(&strings(&["...", "c", "..."]), &got));
    assert!(matches(&strings(&["...", "a", "b", "c", "d", "..."]), &got));
    assert!(matches(&strings(&["..."]), &[]));
    assert!(!matches(&strings(&["a", "...", "c"]), &got));
    assert!(!matches(&strings(&["a", "b", "c"]), &got));
    assert!(!matches(&[], &got));
}

#[test]
fn normalising_hides_what_varies_and_nothing_else() {
    assert_eq!(
        normalise(r#"{"timestamp":"2026-11-24T05:22:24Z","value":"5"}"#),
        r#"{"timestamp":"<time>","value":"5"}"#
    );
    assert_eq!(
        normalise("2026-11-24T05:22:20.410061Z  WARN flux_metrics::server: REPLAY MODE: x=1"),
        "<time>  WARN <target>: REPLAY MODE: x=1"
    );
    assert_eq!(
        normalise("    rounds: 2, failed rounds: 0, last round took 357us"),
        "    rounds: <n>, failed rounds: <n>, last round took <n>"
    );
    assert_eq!(
        normalise(r#"{"answer_age_seconds":0.266,"broker_rounds":2,"bytes":928}"#),
        r#"{"answer_age_seconds":<n>,"broker_rounds":<n>,"bytes":928}"#
    );
    assert_eq!(
        normalise("status=200 latency_us=91 "),
        "status=200 latency_us=<n>"
    );
    assert_eq!(
        normalise("since 2026-11-24T05:22:24+01:00."),
        "since <time>."
    );
    assert_eq!(
        normalise("window=300 took a while"),
        "window=300 took a while"
    );
    assert_eq!(
        normalise(r#"{"gitCommit":"457c281e461f2b3c","buildDate":"2026-12-02T14:16:39Z"}"#),
        r#"{"gitCommit":"<commit>","buildDate":"<time>"}"#
    );
    assert_eq!(
        normalise("flux-metrics-api 0.1.0 (commit 457c281e461f, built 2026-12-02T14:16:39Z)"),
        "flux-metrics-api 0.1.0 (commit <commit>, built <time>)"
    );
    assert_eq!(normalise("(commit abc, fine)"), "(commit abc, fine)");
}

#[test]
fn programs_of_a_command_line() {
    let p = programs(
        r#"curl -sk -H "Authorization: Bearer $(cat token)" https://x/ | jq -c '[.a[] | .b] | .[-4:]' 2>&1; sleep 1"#,
    );
    assert_eq!(
        p.into_iter().collect::<Vec<_>>(),
        ["cat", "curl", "jq", "sleep"]
    );
    let p =
        programs("FLUX_CORE_LIB=/x flux-metrics-api start && for cn in a b; do openssl x; done");
    assert_eq!(
        p.into_iter().collect::<Vec<_>>(),
        ["flux-metrics-api", "openssl"]
    );
    assert!(background_start("FLUX_CORE_LIB=/x flux-metrics-api start --port 18451").is_some());
    assert!(background_start("flux-metrics-api --quiet start --port 18451").is_some());
    assert!(background_start("flux-metrics-api start --port 18451 2>&1 | tail -1").is_none());
    assert!(background_start("flux-metrics-api get --replay x").is_none());
}

#[test]
fn a_changed_line_says_where_it_changes() {
    let d = diff(
        &strings(&["a", r#"{"value":"4"}"#]),
        &strings(&["a", r#"{"value":"5"}"#]),
    );
    assert!(d.contains("column 11"), "{d}");
}

#[test]
fn ports_are_replaced_only_as_whole_numbers() {
    assert_eq!(
        replace_number("https://127.0.0.1:18451/x 184512 118451", "18451", "40000"),
        "https://127.0.0.1:40000/x 184512 118451"
    );
}
