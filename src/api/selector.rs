//! Kubernetes label selector strings (`labelSelector`, `metricLabelSelector` query
//! parameters), parsed and validated the way apimachinery's `labels.Parse` does.
//! This file owns syntax and label matching; which keys the server supports is the
//! caller's business.

use std::collections::BTreeMap;
use std::fmt;

use crate::util::dns::NameError;

/// How much of a bad selector an error quotes, so that errors stay small.
const EXCERPT_CHARS: usize = 128;
/// Longest label name and label value (apimachinery `validation.LabelValueMaxLength`).
const NAME_MAX: usize = 63;

/// The comparison a [`Requirement`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value` or `key==value`: the label is present with this value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>3`: the label is present and, read as an integer, greater.
    GreaterThan,
    /// `key<3`: the label is present and, read as an integer, smaller.
    LessThan,
}

/// One comma-separated term of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key, a qualified name such as `queue` or `flux-framework.org/queue`.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// Empty for `Exists`/`DoesNotExist`; one value for `Equals`, `NotEquals`, `GreaterThan`
    /// and `LessThan`; one or more, sorted and deduplicated, for `In`/`NotIn`.
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key);
        let listed = |v: &String| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::Equals | Operator::In => label.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !label.is_some_and(listed),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(label), [bound]) = (label, self.values.as_slice()) else {
                    return false;
                };
                match (label.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(l), Ok(b)) if self.operator == Operator::GreaterThan => l > b,
                    (Ok(l), Ok(b)) => l < b,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// The apimachinery spelling: `!key`, `key`, `key=v`, `key!=v`, `key in (a,b)`,
    /// `key notin (a,b)`, `key>3`, `key<3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map_or("", String::as_str);
        match self.operator {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A parsed label selector: the conjunction of its requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, sorted by key (stable, so repeated keys keep their order), as
    /// apimachinery sorts them.
    pub requirements: Vec<Requirement>,
}

/// Why a selector string was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid label selector {input:?}: {reason}")]
pub struct SelectorError {
    /// The selector text (cut to its first 128 characters).
    pub input: String,
    /// What was found where, and what was expected.
    pub reason: String,
}

impl Selector {
    /// Parses like apimachinery `labels.Parse`: `""`, `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>3`, `a<3`, comma-separated, with spaces allowed around
    /// tokens. `a=` and `a in ()` mean the empty value.
    ///
    /// Keys are qualified names (an optional DNS-subdomain prefix and `/`, then a name of at
    /// most 63 characters of `[A-Za-z0-9._-]` with alphanumerics at both ends); values are
    /// at most 63 characters of the same set, or empty. `>`/`<` need an integer value.
    ///
    /// # Errors
    /// A [`SelectorError`] naming the byte position, what was found there and what was
    /// expected, or the key or value that is not valid.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let fail = |reason: String| SelectorError {
            input: excerpt(s),
            reason,
        };
        let tokens = lex(s).map_err(fail)?;
        let mut parser = Parser { tokens, next: 0 };
        let mut requirements = parser.selector().map_err(fail)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// True for the selector that selects everything (`""`).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirement on `key`, if any (the first, should the selector repeat the key).
    pub fn get(&self, key: &str) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.key == key)
    }

    /// True when the selector accepts a label map (for matching a series' labels).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    /// Canonical text, e.g. `queue=batch` or `queue in (a,b),!x`; parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn excerpt(s: &str) -> String {
    crate::util::text::excerpt(s, EXCERPT_CHARS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// A run of characters that are neither whitespace nor one of `=!(),<>`. Whether it is
    /// `in`/`notin` or a key/value depends on where it stands, as in apimachinery.
    Word(&'a str),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
    End,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "{:?}", excerpt(w)),
            Tok::Eq => f.write_str("'='"),
            Tok::DoubleEq => f.write_str("'=='"),
            Tok::NotEq => f.write_str("'!='"),
            Tok::Bang => f.write_str("'!'"),
            Tok::Open => f.write_str("'('"),
            Tok::Close => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::Gt => f.write_str("'>'"),
            Tok::Lt => f.write_str("'<'"),
            Tok::End => f.write_str("the end"),
        }
    }
}

/// apimachinery's lexer skips exactly these.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '<' | '>')
}

/// Splits `s` into (byte position, token) pairs, ending with [`Tok::End`].
fn lex(s: &str) -> Result<Vec<(usize, Tok<'_>)>, String> {
    let mut tokens = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let next_is_eq = chars.peek().is_some_and(|&(_, n)| n == '=');
        let tok = match c {
            c if is_space(c) => continue,
            '=' if next_is_eq => {
                chars.next();
                Tok::DoubleEq
            }
            '!' if next_is_eq => {
                chars.next();
                Tok::NotEq
            }
            '=' => Tok::Eq,
            '!' => Tok::Bang,
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            // apimachinery stops at NUL as if the input ended there; refusing it is safer
            // than silently ignoring the rest of the selector.
            '\0' => return Err(format!("NUL character at position {pos}")),
            _ => {
                let mut end = s.len();
                while let Some(&(i, n)) = chars.peek() {
                    if is_space(n) || is_special(n) || n == '\0' {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                Tok::Word(&s[pos..end])
            }
        };
        tokens.push((pos, tok));
    }
    tokens.push((s.len(), Tok::End));
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<(usize, Tok<'a>)>,
    next: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> (usize, Tok<'a>) {
        // `lex` always ends the list with `End`, and `bump` never moves past it.
        self.tokens
            .get(self.next)
            .or(self.tokens.last())
            .copied()
            .unwrap_or((0, Tok::End))
    }

    fn bump(&mut self) -> (usize, Tok<'a>) {
        let t = self.peek();
        if t.1 != Tok::End {
            self.next += 1;
        }
        t
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        if self.peek().1 == Tok::End {
            return Ok(requirements);
        }
        loop {
            requirements.push(self.requirement()?);
            match self.bump() {
                (_, Tok::End) => return Ok(requirements),
                (_, Tok::Comma) => {}
                (pos, t) => {
                    return Err(format!(
                        "found {t} at position {pos}, expected ',' or the end"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = self.peek().1 == Tok::Bang;
        if negated {
            self.bump();
        }
        let key = match self.bump() {
            (pos, Tok::Word(w)) => {
                validate_key(w).map_err(|e| format!("key {w:?} at position {pos}: {e}"))?;
                w.to_owned()
            }
            (pos, t) => {
                let after = if negated { " after '!'" } else { "" };
                return Err(format!(
                    "found {t} at position {pos}, expected a label key{after}"
                ));
            }
        };
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        let (pos, tok) = self.peek();
        let operator = match tok {
            Tok::End | Tok::Comma => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: Vec::new(),
                });
            }
            Tok::Eq | Tok::DoubleEq => Operator::Equals,
            Tok::NotEq => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            Tok::Word("in") => Operator::In,
            Tok::Word("notin") => Operator::NotIn,
            t => {
                return Err(format!(
                    "found {t} at position {pos}, expected an operator \
                     (=, ==, !=, in, notin, >, <), ',' or the end"
                ));
            }
        };
        self.bump();
        let values = match operator {
            Operator::In | Operator::NotIn => {
                let mut values = self.value_list()?;
                values.sort();
                values.dedup();
                values
            }
            _ => vec![self.exact_value()?],
        };
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            let v = values.first().map_or("", String::as_str);
            if v.parse::<i64>().is_err() {
                return Err(format!(
                    "value {v:?} for '>' or '<' on key {key:?}: expected an integer"
                ));
            }
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// The value after `=`, `==`, `!=`, `>`, `<`: a word, or empty before ',' or the end.
    fn exact_value(&mut self) -> Result<String, String> {
        match self.peek() {
            (_, Tok::End | Tok::Comma) => Ok(String::new()),
            (pos, Tok::Word(w)) => {
                self.bump();
                validate_value(w).map_err(|e| format!("value {w:?} at position {pos}: {e}"))?;
                Ok(w.to_owned())
            }
            (pos, t) => Err(format!(
                "found {t} at position {pos}, expected a label value, ',' or the end"
            )),
        }
    }

    /// `(a,b)` after `in`/`notin`. As in apimachinery, an element may be empty: `()` and
    /// `(a,)` hold the empty value.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        match self.bump() {
            (_, Tok::Open) => {}
            (pos, t) => return Err(format!("found {t} at position {pos}, expected '('")),
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                (pos, Tok::Word(w)) => {
                    self.bump();
                    validate_value(w).map_err(|e| format!("value {w:?} at position {pos}: {e}"))?;
                    values.push(w.to_owned());
                }
                (_, Tok::Comma | Tok::Close) => values.push(String::new()),
                (pos, t) => {
                    return Err(format!(
                        "found {t} at position {pos}, expected a label value, ',' or ')'"
                    ));
                }
            }
            match self.bump() {
                (_, Tok::Comma) => {}
                (_, Tok::Close) => return Ok(values),
                (pos, t) => {
                    return Err(format!("found {t} at position {pos}, expected ',' or ')'"));
                }
            }
        }
    }
}

/// A label name or non-empty value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn validate_name(s: &str, what: &str) -> Result<(), String> {
    if s.len() > NAME_MAX {
        return Err(format!("{what} must be at most {NAME_MAX} characters"));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_ok = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !s.chars().all(ok_char) || !ends_ok {
        return Err(format!(
            "{what} must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A label value: empty, or as [`validate_name`].
fn validate_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    validate_name(s, "a label value")
}

/// A label key: a qualified name, `[prefix/]name`, where the prefix is a DNS-1123 subdomain.
fn validate_key(s: &str) -> Result<(), String> {
    let name = match s.split_once('/') {
        None => s,
        Some((prefix, name)) => {
            if name.contains('/') {
                return Err("a qualified name must have at most one '/'".to_owned());
            }
            validate_dns_subdomain(prefix)?;
            name
        }
    };
    if name.is_empty() {
        return Err("the name part must not be empty".to_owned());
    }
    validate_name(name, "the name part")
}

fn validate_dns_subdomain(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the prefix before '/' must not be empty".to_owned());
    }
    crate::util::dns::subdomain(prefix).map_err(|e| match e {
        NameError::TooLong { max } => format!("the prefix must be at most {max} characters"),
        NameError::Invalid(_) => "the prefix must be a DNS subdomain: lowercase alphanumerics, \
                                  '-' and '.', each part starting and ending with an alphanumeric \
                                  character"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_owned(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn one(s: &str) -> Requirement {
        let sel = Selector::parse(s).unwrap();
        assert_eq!(sel.requirements.len(), 1, "{s:?}");
        sel.requirements.into_iter().next().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        assert!(Selector::parse("").unwrap().is_empty());
        assert!(Selector::parse("  \t ").unwrap().is_empty());
        assert_eq!(one("a=b"), req("a", Operator::Equals, &["b"]));
        assert_eq!(one("a==b"), req("a", Operator::Equals, &["b"]));
        assert_eq!(one("a!=b"), req("a", Operator::NotEquals, &["b"]));
        assert_eq!(one("a in (y,x,y)"), req("a", Operator::In, &["x", "y"]));
        assert_eq!(one("a notin (x)"), req("a", Operator::NotIn, &["x"]));
        assert_eq!(one("a"), req("a", Operator::Exists, &[]));
        assert_eq!(one("!a"), req("a", Operator::DoesNotExist, &[]));
        assert_eq!(one("a>3"), req("a", Operator::GreaterThan, &["3"]));
        assert_eq!(one("a<03"), req("a", Operator::LessThan, &["03"]));
    }

    #[test]
    fn parses_spacing_empty_values_and_qualified_keys() {
        assert_eq!(one("  a  =  b  "), req("a", Operator::Equals, &["b"]));
        assert_eq!(one("a="), req("a", Operator::Equals, &[""]));
        assert_eq!(one("a in ()"), req("a", Operator::In, &[""]));
        assert_eq!(one("a in (x,)"), req("a", Operator::In, &["", "x"]));
        assert_eq!(one("a in(,x,,y)"), req("a", Operator::In, &["", "x", "y"]));
        assert_eq!(one("a=in"), req("a", Operator::Equals, &["in"]));
        assert_eq!(one("in in (notin)"), req("in", Operator::In, &["notin"]));
        assert_eq!(
            one("flux-framework.org/queue=batch"),
            req("flux-framework.org/queue", Operator::Equals, &["batch"])
        );
        assert_eq!(
            one("A.b_c-D=X.y_z-9"),
            req("A.b_c-D", Operator::Equals, &["X.y_z-9"])
        );
        let max = "k".repeat(63);
        assert_eq!(one(&format!("{max}={max}")).key, max);
    }

    #[test]
    fn sorts_requirements_by_key_like_apimachinery() {
        let sel = Selector::parse("z=1, !b ,m in (q,p),b!=2").unwrap();
        assert_eq!(
            sel.requirements,
            [
                req("b", Operator::DoesNotExist, &[]),
                req("b", Operator::NotEquals, &["2"]),
                req("m", Operator::In, &["p", "q"]),
                req("z", Operator::Equals, &["1"]),
            ]
        );
        assert_eq!(sel.to_string(), "!b,b!=2,m in (p,q),z=1");
        assert_eq!(sel.get("b"), Some(&req("b", Operator::DoesNotExist, &[])));
        assert_eq!(sel.get("nope"), None);
    }

    #[test]
    fn displays_canonical_text() {
        for (input, canonical) in [
            ("queue=batch", "queue=batch"),
            ("queue==batch", "queue=batch"),
            ("queue in (b, a)", "queue in (a,b)"),
            ("queue notin ( a )", "queue notin (a)"),
            ("a , !b", "a,!b"),
            ("a>3,b < 4", "a>3,b<4"),
            ("a=", "a="),
            ("a in ()", "a in ()"),
        ] {
            let sel = Selector::parse(input).unwrap();
            assert_eq!(sel.to_string(), canonical, "{input:?}");
            assert_eq!(Selector::parse(canonical).unwrap(), sel);
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        let long = "k".repeat(64);
        let long_prefix = format!("{}/a", "p".repeat(254));
        for (input, reason_part) in [
            ("a in (x", "expected ',' or ')'"),
            ("a in x)", "expected '('"),
            ("a in x", "expected '('"),
            ("a in", "expected '('"),
            ("a in (x))", "expected ',' or the end"),
            ("a notin x", "expected '('"),
            ("a in ((x))", "expected a label value, ',' or ')'"),
            ("=b", "expected a label key"),
            ("!", "expected a label key after '!'"),
            ("!=b", "expected a label key"),
            ("!a=b", "found '=' at position 2, expected ',' or the end"),
            ("a,", "found the end at position 2, expected a label key"),
            (",a", "expected a label key"),
            ("a,,b", "expected a label key"),
            ("a b", "found \"b\" at position 2, expected an operator"),
            ("a=b c", "expected ',' or the end"),
            ("a=b=c", "expected ',' or the end"),
            ("a=(b)", "expected a label value"),
            ("a>", "expected an integer"),
            ("a>x", "expected an integer"),
            ("a<3.5", "expected an integer"),
            ("a>99999999999999999999", "expected an integer"),
            ("a>+3", "must consist of"),
            // apimachinery checks '>'/'<' values as label values too, so no negative bounds.
            ("a<-3", "must consist of"),
            ("-a", "must consist of"),
            ("a-", "must consist of"),
            ("a$b", "must consist of"),
            ("a=b$", "must consist of"),
            ("a=-b", "must consist of"),
            ("é=b", "must consist of"),
            ("a=b\u{a0}", "must consist of"),
            (&long, "at most 63"),
            (&format!("a={long}"), "at most 63"),
            (&format!("a in (x,{long})"), "at most 63"),
            ("/a", "prefix before '/' must not be empty"),
            ("p/", "name part must not be empty"),
            ("a/b/c", "at most one '/'"),
            ("Upper.case/a", "DNS subdomain"),
            ("a..b/c", "DNS subdomain"),
            ("-a.b/c", "DNS subdomain"),
            (&long_prefix, "at most 253"),
            ("a\0=b", "NUL"),
            ("a=b\0", "NUL"),
        ] {
            match Selector::parse(input) {
                Err(e) => {
                    assert!(e.reason.contains(reason_part), "{input:?}: {}", e.reason);
                    assert!(e.to_string().starts_with("invalid label selector"));
                }
                Ok(s) => panic!("{input:?} parsed as {s:?}"),
            }
        }
    }

    #[test]
    fn errors_name_input_position_and_expectation() {
        let e = Selector::parse("queue in batch").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid label selector "queue in batch": found "batch" at position 9, expected '('"#
        );
        let huge = "a,".repeat(10_000) + "$";
        assert!(Selector::parse(&huge).unwrap_err().to_string().len() < 400);
    }

    #[test]
    fn matches_label_maps_like_apimachinery() {
        let l = labels(&[("queue", "batch"), ("size", "4"), ("empty", "")]);
        let yes = [
            "",
            "queue",
            "!missing",
            "queue=batch",
            "queue!=debug",
            "missing!=x",
            "queue in (batch,debug)",
            "queue notin (debug)",
            "missing notin (x)",
            "size>3",
            "size<5",
            "size>03",
            "empty=",
            "empty in ()",
            "queue=batch,size>3",
        ];
        let no = [
            "missing",
            "!queue",
            "queue=debug",
            "missing=",
            "queue!=batch",
            "queue in (debug)",
            "missing in (x)",
            "queue notin (batch)",
            "size>4",
            "size<4",
            "missing>1",
            "queue>1",
            "queue=batch,size>4",
        ];
        for s in yes {
            assert!(
                Selector::parse(s).unwrap().matches(&l),
                "{s:?} should match"
            );
        }
        for s in no {
            assert!(
                !Selector::parse(s).unwrap().matches(&l),
                "{s:?} should not match"
            );
        }
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
    }

    fn arb_key() -> impl Strategy<Value = String> {
        (
            prop::option::of("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,3}"),
            arb_name(),
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn arb_value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), arb_name()]
    }

    fn arb_requirement() -> impl Strategy<Value = Requirement> {
        let single = prop_oneof![Just(Operator::Equals), Just(Operator::NotEquals)];
        let set = prop_oneof![Just(Operator::In), Just(Operator::NotIn)];
        let bare = prop_oneof![Just(Operator::Exists), Just(Operator::DoesNotExist)];
        let order = prop_oneof![Just(Operator::GreaterThan), Just(Operator::LessThan)];
        prop_oneof![
            (arb_key(), single, arb_value()).prop_map(|(key, operator, v)| Requirement {
                key,
                operator,
                values: vec![v],
            }),
            (
                arb_key(),
                set,
                prop::collection::btree_set(arb_value(), 1..4)
            )
                .prop_map(|(key, operator, v)| Requirement {
                    key,
                    operator,
                    values: v.into_iter().collect(),
                }),
            (arb_key(), bare).prop_map(|(key, operator)| Requirement {
                key,
                operator,
                values: Vec::new(),
            }),
            (arb_key(), order, 0i64..1_000_000).prop_map(|(key, operator, n)| Requirement {
                key,
                operator,
                values: vec![n.to_string()],
            }),
        ]
    }

    fn arb_selector() -> impl Strategy<Value = Selector> {
        prop::collection::vec(arb_requirement(), 0..5).prop_map(|mut requirements| {
            requirements.sort_by(|a, b| a.key.cmp(&b.key));
            Selector { requirements }
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_selector_like_text(s in "([a-z/.=!(),<> -]|in|notin|[0-9]){0,40}") {
            if let Ok(sel) = Selector::parse(&s) {
                // Whatever parses has a canonical text that parses back to it.
                prop_assert_eq!(Selector::parse(&sel.to_string()), Ok(sel));
            }
        }

        #[test]
        fn canonical_text_round_trips(sel in arb_selector()) {
            let text = sel.to_string();
            prop_assert_eq!(Selector::parse(&text), Ok(sel.clone()), "{}", text);
            // Spaces around tokens change nothing.
            let spaced = format!(" {} ", text.replace(',', " , ").replace('(', " ( ").replace(')', " ) "));
            prop_assert_eq!(Selector::parse(&spaced), Ok(sel), "{}", spaced);
        }
    }
}
