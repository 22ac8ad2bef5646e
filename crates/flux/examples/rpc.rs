//! Sends one RPC to the enclosing Flux instance and prints its JSON answer: a quick way to
//! check a broker end to end or to record an answer as a test fixture.
//!
//! Usage: `flux start cargo run -p flux --example rpc -- TOPIC [PAYLOAD] [NODEID]`, e.g.
//! `... -- resource.sched-status '{}' 0`. The broker is found through `FLUX_URI`, the
//! library through `FLUX_CORE_LIB` or the loader's search path; the answer is awaited 5 s.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(topic) = args.first() else {
        eprintln!("usage: rpc TOPIC [PAYLOAD] [NODEID]");
        return ExitCode::from(2);
    };
    let payload = args.get(1).map(String::as_str);
    let nodeid = match args.get(2).map(|n| n.parse::<u32>()) {
        None => flux::NODEID_ANY,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("error: NODEID: {e}");
            return ExitCode::from(2);
        }
    };
    match run(topic, payload, nodeid) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {topic}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(topic: &str, payload: Option<&str>, nodeid: u32) -> flux::Result<String> {
    let path = std::env::var_os("FLUX_CORE_LIB").map(std::path::PathBuf::from);
    let lib = flux::Library::load(path.as_deref())?;
    let handle = flux::Handle::open(&lib, None)?;
    let answer = handle
        .rpc(topic, payload, nodeid)?
        .get(Duration::from_secs(5))?;
    Ok(answer)
}
