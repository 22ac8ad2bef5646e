//! Simulated broker faults, a testing aid of replay mode: the file `fault` in a replay directory
//! makes every round misbehave as a sick broker would, until it is removed.

use std::time::Duration;

/// Name of the file in a replay directory that simulates a misbehaving broker (a testing aid).
pub const FAULT_FILE: &str = "fault";

/// A simulated broker fault, read from [`FAULT_FILE`] at the start of every replayed round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The broker is gone: rounds fail at once as a refused connection would.
    Unavailable,
    /// The broker accepts requests and never answers: rounds run into the timeout.
    Hang,
    /// The broker answers after a delay.
    Delay(Duration),
    /// The broker answers every RPC with this error.
    Error(String),
}

impl Fault {
    /// Parses the fault file: `unavailable`, `hang`, `delay <duration>` or `error <message>`.
    ///
    /// # Errors
    /// Text naming the accepted forms.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let text = text.trim();
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        match (word, rest.trim()) {
            ("unavailable", "") => Ok(Fault::Unavailable),
            ("hang", "") => Ok(Fault::Hang),
            ("delay", d) => crate::util::duration::parse(d).map(Fault::Delay),
            ("error", m) if !m.is_empty() => Ok(Fault::Error(m.to_owned())),
            _ => Err(format!(
                "invalid fault {text:?}: write one of `unavailable`, `hang`, `delay <duration>`, `error <message>`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_file_syntax() {
        assert_eq!(Fault::parse("hang\n"), Ok(Fault::Hang));
        assert_eq!(
            Fault::parse("delay 2s"),
            Ok(Fault::Delay(Duration::from_secs(2)))
        );
        assert_eq!(Fault::parse("error boom"), Ok(Fault::Error("boom".into())));
        assert!(Fault::parse("explode").is_err());
        assert!(Fault::parse("error").is_err());
    }
}
